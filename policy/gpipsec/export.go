package gpipsec

import (
	"crypto/sha256"
	"fmt"
	"net/netip"

	"github.com/iked/iked/policy"
)

// ExportOptions says how iked's policy becomes directory objects.
type ExportOptions struct {
	// DomainDN is the domain's naming context ("DC=corp,DC=example").
	DomainDN string
	// Auth maps a configured authentication method's name to the method
	// a Windows rule names: Kerberos, or a certificate by its CA. ok is
	// false for methods that cannot be exported (a pre-shared key, whose
	// secret iked does not hand out).
	Auth func(name string) (m AuthMethod, ok bool)
}

// Export writes a policy as the MS-GPIPSEC objects a Windows administrator
// imports into CN=IP Security: one ipsecPolicy, its ipsecISAKMPPolicy, an
// ipsecNFA and ipsecNegotiationPolicy per rule (and for the default
// response rule) and an ipsecFilter per filter list. Object GUIDs are
// derived from the policy's name, so exporting the same policy again
// writes the same DNs. What the format cannot carry is in the notes.
func Export(p *policy.Policy, opts ExportOptions) ([]*Object, []Note) {
	e := &exporter{p: p, opts: opts, filters: map[*policy.FilterList]*Object{}}
	return e.run()
}

type exporter struct {
	p       *policy.Policy
	opts    ExportOptions
	objs    []*Object
	notes   []Note
	filters map[*policy.FilterList]*Object
}

func (e *exporter) guid(role string) GUID {
	h := sha256.Sum256([]byte("iked/" + e.p.Name + "/" + role))
	var g GUID
	copy(g[:], h[:16])
	return g
}

func (e *exporter) object(class, role string) *Object {
	g := e.guid(role)
	o := &Object{Class: class, ID: g.String(), DataType: "598",
		DN: fmt.Sprintf("CN=%s%s,CN=IP Security,CN=System,%s", class, g, e.opts.DomainDN)}
	e.objs = append(e.objs, o)
	return o
}

func (e *exporter) note(o *Object, format string, args ...any) {
	e.notes = append(e.notes, Note{DN: o.DN, Msg: fmt.Sprintf(format, args...)})
}

func (e *exporter) run() ([]*Object, []Note) {
	po := e.object(ClassPolicy, "policy")
	po.Name, po.Description = e.p.Name, e.p.Description
	po.Data = PolicyData{PollingInterval: DefaultPollingInterval}.Encode()
	io := e.object(ClassISAKMP, "isakmp")
	io.OwnersRefs = []string{po.DN}
	isakmpID, _ := ParseGUID(io.ID)
	io.Data = ISAKMPData{Instance: isakmpID, Methods: []MMMethod{{Encryption: 3, EncryptionKeyBits: 192, Hash: 2, HashKeyBits: 160,
		OakleyGroup: OakleyGroup14, LifetimeSecs: 28800}}}.Encode()
	e.note(io, "main mode: written as 3DES/SHA-1/DH14, the strongest MS-GPIPSEC can name; iked itself negotiates IKEv2 with its own proposals")
	po.ISAKMPRef = io.DN
	for i, r := range e.p.Rules {
		po.NFARefs = append(po.NFARefs, e.rule(po, fmt.Sprintf("rule%d", i), r).DN)
	}
	dr := e.p.DefaultResponse
	nfa := e.object(ClassNFA, "default-response")
	nfa.OwnersRefs = []string{po.DN}
	neg := e.object(ClassNegotiation, "default-response-action")
	neg.OwnersRefs = []string{nfa.DN}
	neg.NegotiationType, neg.NegotiationAction = TypeDefaultResponse.String(), ActionSecure.String()
	neg.Data = NegotiationData{Offers: e.offers(neg, dr.Methods, false, false)}.Encode()
	nfa.NegotiationRef = neg.DN
	nfa.Data = NFAData{Auth: e.auth(nfa, dr.Auth), Interface: InterfaceAll, Active: dr.Active, AltAuth: true}.Encode()
	po.NFARefs = append(po.NFARefs, nfa.DN)
	return e.objs, e.notes
}

func (e *exporter) rule(po *Object, role string, r *policy.Rule) *Object {
	nfa := e.object(ClassNFA, role)
	nfa.Name = r.Name
	nfa.OwnersRefs = []string{po.DN}
	neg := e.object(ClassNegotiation, role+"-action")
	neg.Name = r.Name + " (" + r.Action.String() + ")"
	neg.OwnersRefs = []string{nfa.DN}
	neg.NegotiationType = TypeStandard.String()
	data := NFAData{Interface: InterfaceAll, Active: true, AltAuth: true}
	switch r.Connection {
	case policy.LAN:
		data.Interface = InterfaceLAN
	case policy.RemoteAccess:
		data.Interface = InterfaceDialUp
	}
	switch r.Action {
	case policy.Block:
		neg.NegotiationAction = ActionBlock.String()
		neg.Data = NegotiationData{}.Encode()
	case policy.Permit:
		neg.NegotiationAction = ActionPermit.String()
		neg.Data = NegotiationData{}.Encode()
	default:
		neg.NegotiationAction = ActionSecure.String()
		if r.AcceptUnsecured {
			neg.NegotiationAction = ActionPassThrough.String()
		}
		neg.Data = NegotiationData{Offers: e.offers(neg, r.Methods, r.PFS, r.Fallback)}.Encode()
		data.Auth = e.auth(nfa, r.Auth)
		if r.Tunnel.IsValid() {
			data.IsTunnel, data.Tunnel = true, r.Tunnel
		}
		if r.Fallback && r.FallbackDelayOrDefault() != policy.DefaultFallbackDelay {
			e.note(nfa, "fallback delay %s: Windows has no such setting (it waits 3s)", r.FallbackDelayOrDefault())
		}
	}
	nfa.NegotiationRef = neg.DN
	nfa.Data = data.Encode()
	fo := e.filterList(r.Filters)
	fo.OwnersRefs = append(fo.OwnersRefs, nfa.DN)
	nfa.FilterRefs = []string{fo.DN}
	return nfa
}

// offers writes a negotiate action's security methods: MS-GPIPSEC names
// no algorithm iked negotiates, so one ESP 3DES/SHA-1 offer carries the
// first method's lifetimes and the PFS setting, and an offer without
// algorithms says "fall back to clear".
func (e *exporter) offers(o *Object, methods []policy.SecurityMethod, pfs, fallback bool) []SecurityOffer {
	off := SecurityOffer{PFS: pfs, Algorithms: []Algorithm{{Type: OfferESP, ID: 3, Integrity: 2}}}
	if len(methods) > 0 {
		off.LifetimeSecs = uint32(methods[0].Lifetime.Seconds())
		off.LifetimeKB = uint32(methods[0].LifetimeBytes / 1024)
		var names []string
		for _, m := range methods {
			names = append(names, m.Proposal)
		}
		e.note(o, "security methods %v have no MS-GPIPSEC encoding: written as ESP 3DES/SHA-1 (iked reads it back as its configured security methods)", names)
	}
	out := []SecurityOffer{off}
	if fallback {
		out = append(out, SecurityOffer{})
	}
	return out
}

func (e *exporter) auth(o *Object, names []string) []AuthMethod {
	var out []AuthMethod
	for _, n := range names {
		m, ok := AuthMethod{}, false
		if e.opts.Auth != nil {
			m, ok = e.opts.Auth(n)
		}
		if !ok {
			e.note(o, "authentication method %s is not exported (a pre-shared key's secret is not handed out): add it in the Windows console", n)
			continue
		}
		if !containsAuth(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func containsAuth(list []AuthMethod, m AuthMethod) bool {
	for _, x := range list {
		if x.Type == m.Type && x.Value == m.Value {
			return true
		}
	}
	return false
}

func (e *exporter) filterList(fl *policy.FilterList) *Object {
	if o, ok := e.filters[fl]; ok {
		return o
	}
	o := e.object(ClassFilter, "filters/"+fl.Name)
	o.Name, o.Description = fl.Name, fl.Description
	e.filters[fl] = o
	d := FilterData{HasV2: true}
	for i, f := range fl.Filters {
		id := e.guid(fmt.Sprintf("filters/%s/%d", fl.Name, i))
		if l, ok := legacyOf(f); ok {
			l.ID = id
			d.Legacy = append(d.Legacy, l)
		}
		d.V2 = append(d.V2, FilterV2{Description: f.Description, ID: id, Mirrored: f.Mirrored, Src: addrSpecOf(f.Src), Dst: addrSpecOf(f.Dst),
			SrcPort: portSpecOf(f.SrcPort), DstPort: portSpecOf(f.DstPort), Protocol: uint32(f.Protocol)})
	}
	o.Data = d.Encode()
	return o
}

// legacyOf writes a filter in the legacy (IPv4) format, when it fits.
func legacyOf(f policy.Filter) (LegacyFilter, bool) {
	l := LegacyFilter{Description: f.Description, Mirrored: f.Mirrored, Protocol: uint32(f.Protocol), SrcPort: f.SrcPort, DstPort: f.DstPort}
	set := func(a policy.Address, addr, mask *[4]byte) bool {
		switch a.Kind {
		case policy.AnyAddress:
			return true
		case policy.MyAddress:
			*mask = [4]byte{255, 255, 255, 255}
			return true
		case policy.Host, policy.Subnet:
			if !a.Prefix.Addr().Is4() {
				return false
			}
			*addr = a.Prefix.Addr().As4()
			bits := uint32(0xffffffff) << (32 - a.Prefix.Bits())
			if a.Prefix.Bits() == 0 {
				bits = 0
			}
			*mask = [4]byte{byte(bits >> 24), byte(bits >> 16), byte(bits >> 8), byte(bits)}
			return true
		}
		return false
	}
	return l, set(f.Src, &l.Src, &l.SrcMask) && set(f.Dst, &l.Dst, &l.DstMask)
}

func addrSpecOf(a policy.Address) AddressSpec {
	var s AddressSpec
	put := func(dst *[16]byte, ip netip.Addr) {
		if ip.Is4() {
			s.Version = 1
			b := ip.As4()
			copy(dst[:], b[:])
		} else {
			s.Version = 2
			*dst = ip.As16()
		}
	}
	switch a.Kind {
	case policy.AnyAddress:
		s.Type, s.Version = AddrAny, 1
	case policy.MyAddress:
		s.Type, s.Version = AddrMe, 3
	case policy.Host:
		s.Type = AddrSingle
		put(&s.Addr, a.Prefix.Addr())
	case policy.Subnet:
		s.Type = AddrSubnet
		put(&s.Addr, a.Prefix.Addr())
		if s.Version == 1 {
			bits := uint32(0xffffffff) << (32 - a.Prefix.Bits())
			if a.Prefix.Bits() == 0 {
				bits = 0
			}
			s.Secondary = [16]byte{byte(bits >> 24), byte(bits >> 16), byte(bits >> 8), byte(bits)}
		} else {
			s.Secondary[0] = byte(a.Prefix.Bits())
		}
	case policy.Range:
		s.Type = AddrRange
		put(&s.Addr, a.From)
		put(&s.Secondary, a.To)
	}
	return s
}

func portSpecOf(p uint16) PortSpec {
	if p == 0 {
		return PortSpec{}
	}
	return PortSpec{Type: 1, Port: p}
}
