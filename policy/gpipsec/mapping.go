package gpipsec

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/iked/iked/policy"
)

// Configured is an authentication method of iked's configuration that a
// directory rule may name.
type Configured struct {
	// Name is its name under authentication.
	Name string
	// Kind is "kerberos", "cert" or "psk".
	Kind string
	// CAs are a cert method's trust anchors' subjects, as RFC 4514
	// strings.
	CAs []string
}

// MapOptions says how a directory policy meets the configuration.
type MapOptions struct {
	// Auth are the configured authentication methods, in preference
	// order: a rule's Kerberos method becomes every configured kerberos
	// method, a certificate method every configured cert method that
	// trusts its CA.
	Auth []Configured
	// SecurityMethods replace the directory's security methods, none of
	// which iked can negotiate (MS-GPIPSEC knows DES, 3DES, MD5 and
	// SHA-1 only); default policy.DefaultSecurityMethods.
	SecurityMethods []policy.SecurityMethod
}

// PSK is a pre-shared key method a directory rule carries: the daemon
// makes a psk method of it, named Name. Secret never reaches a log.
type PSK struct {
	Name   string
	Secret string
}

// Note is something of the directory's policy that iked's policy model
// does not express, or expresses differently: shown by ikectl and logged,
// never silently dropped.
type Note struct {
	DN  string
	Msg string
}

func (n Note) String() string { return n.DN + ": " + n.Msg }

// Mapped is a directory policy in iked's model.
type Mapped struct {
	Policy *policy.Policy
	PSKs   []PSK
	Notes  []Note
	// PollingInterval is the policy's own polling interval.
	PollingInterval time.Duration
}

type mapper struct {
	opts  MapOptions
	out   *Mapped
	psks  map[string]string // secret → name
	lists map[string]*policy.FilterList
}

func (m *mapper) note(o *Object, format string, args ...any) {
	m.out.Notes = append(m.out.Notes, Note{DN: o.DN, Msg: fmt.Sprintf(format, args...)})
}

// Map turns a resolved directory policy into iked's policy model. Rules
// iked cannot enforce as written are refused with an error naming their
// DN (a negotiate rule without an authentication method iked has, a rule
// none of whose filters iked can express); what is narrower or different
// is in Notes.
func Map(p *Policy, opts MapOptions) (*Mapped, error) {
	if len(opts.SecurityMethods) == 0 {
		opts.SecurityMethods = policy.DefaultSecurityMethods()
	}
	m := &mapper{opts: opts, out: &Mapped{}, psks: map[string]string{}, lists: map[string]*policy.FilterList{}}
	po := p.Object
	pol := &policy.Policy{Name: po.Name, Description: po.Description}
	if pol.Name == "" {
		pol.Name = po.ID
	}
	interval := p.Data.PollingInterval
	if interval == 0 {
		interval = DefaultPollingInterval
	}
	m.out.PollingInterval = time.Duration(interval) * time.Second
	m.isakmpNotes(p.ISAKMP)
	var errs []error
	haveDR := false
	for _, r := range p.Rules {
		if r.Action.Type == TypeDefaultResponse {
			if haveDR {
				errs = append(errs, r.Object.errorf("a second default response rule"))
				continue
			}
			haveDR = true
			dr, err := m.defaultResponse(r)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			pol.DefaultResponse = dr
			continue
		}
		rule, err := m.rule(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rule != nil {
			pol.Rules = append(pol.Rules, rule)
		}
	}
	if !haveDR {
		m.note(po, "the policy has no default response rule: it is off")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := pol.Validate(); err != nil {
		return nil, po.errorf("%v", err)
	}
	m.out.Policy = pol
	return m.out, nil
}

func (m *mapper) isakmpNotes(i *ISAKMP) {
	d := i.Data
	var parts []string
	for _, mm := range d.Methods {
		parts = append(parts, mmName(mm))
	}
	m.note(i.Object, "main mode security methods [%s] are IKEv1 settings: iked negotiates IKEv2 with its own IKE proposals", strings.Join(parts, "; "))
	if d.MasterPFS {
		m.note(i.Object, "master key PFS is not applied (IKEv2 rekeys its IKE SA with a fresh Diffie-Hellman exchange anyway)")
	}
	if d.Options&1 != 0 {
		m.note(i.Object, "certificate-to-account mapping is not applied")
	}
}

func mmName(mm MMMethod) string {
	enc := map[uint32]string{0: "none", 1: "DES", 2: "3DES", 3: "3DES"}[mm.Encryption]
	hash := map[uint32]string{0: "none", 1: "MD5", 2: "SHA-1"}[mm.Hash]
	group := map[uint32]string{0: "-", 1: "DH1", 2: "DH2", OakleyGroup14: "DH14"}[mm.OakleyGroup]
	return enc + "/" + hash + "/" + group
}

func (m *mapper) defaultResponse(r *Rule) (policy.DefaultResponse, error) {
	var dr policy.DefaultResponse
	if !r.Data.Active {
		m.note(r.Object, "the default response rule is inactive: it is off")
		return dr, nil
	}
	if r.Action.Kind != ActionSecure && r.Action.Kind != ActionPassThrough {
		m.note(r.Action.Object, "a default response rule whose action is not to negotiate security: it is off")
		return dr, nil
	}
	dr.Active = true
	dr.Methods, _ = m.methods(r.Action)
	auth, err := m.auth(r)
	if err != nil {
		return dr, err
	}
	dr.Auth = auth
	return dr, nil
}

func (m *mapper) rule(r *Rule) (*policy.Rule, error) {
	name := r.Object.Name
	if name == "" {
		name = r.Object.ID
	}
	if !r.Data.Active {
		m.note(r.Object, "rule %q is inactive in the directory: not applied", name)
		return nil, nil
	}
	fl, err := m.filterList(r)
	if err != nil {
		return nil, err
	}
	rule := &policy.Rule{Name: name, Filters: fl}
	switch r.Data.Interface {
	case InterfaceLAN:
		rule.Connection = policy.LAN
	case InterfaceDialUp:
		rule.Connection = policy.RemoteAccess
	}
	if r.Data.InterfaceName != "" {
		m.note(r.Object, "interface name %q is not applied: the rule applies on every interface of its connection type", r.Data.InterfaceName)
	}
	switch r.Action.Kind {
	case ActionBlock:
		rule.Action = policy.Block
	case ActionPermit:
		rule.Action = policy.Permit
	default:
		rule.Action = policy.Negotiate
		rule.AcceptUnsecured = r.Action.Kind == ActionPassThrough
		var pfs []bool
		rule.Methods, pfs = m.methods(r.Action)
		for _, o := range r.Action.Data.Offers {
			if len(o.Algorithms) == 0 {
				rule.Fallback = true
			}
		}
		if len(pfs) > 0 {
			rule.PFS = pfs[0]
			if slices.Contains(pfs, !pfs[0]) {
				m.note(r.Action.Object, "security methods differ in session key PFS: iked uses the first one's (%v) for the rule", pfs[0])
			}
		}
		if rule.Auth, err = m.auth(r); err != nil {
			return nil, err
		}
		if r.Data.IsTunnel {
			if !r.Data.Tunnel.IsValid() || r.Data.Tunnel.IsUnspecified() {
				return nil, r.Object.errorf("rule %q: a tunnel rule without a tunnel endpoint address", name)
			}
			rule.Tunnel = r.Data.Tunnel
		}
		if r.Data.TunnelName != "" {
			m.note(r.Object, "tunnel endpoint name %q is not used: the address is", r.Data.TunnelName)
		}
		return rule, nil
	}
	if r.Data.IsTunnel {
		m.note(r.Object, "rule %q: a tunnel endpoint on a %s rule means nothing to iked: ignored", name, rule.Action)
	}
	return rule, nil
}

// methods maps the action's offers; iked negotiates none of the
// algorithms MS-GPIPSEC can name, so they are replaced by the configured
// security methods, and said so. It returns the offers' PFS settings.
func (m *mapper) methods(a *Action) ([]policy.SecurityMethod, []bool) {
	var names []string
	var pfs []bool
	for _, o := range a.Data.Offers {
		if len(o.Algorithms) == 0 {
			continue
		}
		var algs []string
		for _, alg := range o.Algorithms {
			algs = append(algs, alg.String())
		}
		names = append(names, strings.Join(algs, "+"))
		pfs = append(pfs, o.PFS)
	}
	if len(names) > 0 {
		var subst []string
		for _, s := range m.opts.SecurityMethods {
			subst = append(subst, s.Proposal)
		}
		m.note(a.Object, "security methods [%s] cannot be negotiated by iked (no DES, 3DES, MD5 or SHA-1): using [%s] instead", strings.Join(names, "; "), strings.Join(subst, ", "))
	}
	return slices.Clone(m.opts.SecurityMethods), pfs
}

// auth maps a rule's authentication methods to configured ones.
func (m *mapper) auth(r *Rule) ([]string, error) {
	var out []string
	add := func(n string) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for i, am := range r.Data.Auth {
		found := false
		switch am.Type {
		case AuthKerberos:
			for _, c := range m.opts.Auth {
				if c.Kind == "kerberos" {
					add(c.Name)
					found = true
				}
			}
		case AuthCertificate:
			for _, c := range m.opts.Auth {
				if c.Kind == "cert" && slices.ContainsFunc(c.CAs, func(ca string) bool { return sameDN(ca, am.Value) }) {
					add(c.Name)
					found = true
				}
			}
		case AuthPSK:
			name, ok := m.psks[am.Value]
			if !ok {
				name = fmt.Sprintf("gpo-psk-%d", len(m.psks)+1)
				m.psks[am.Value] = name
				m.out.PSKs = append(m.out.PSKs, PSK{Name: name, Secret: am.Value})
			}
			add(name)
			found = true
		}
		if !found {
			what := am.Type.String()
			if am.Type == AuthCertificate {
				what += " issued by " + am.Value
			}
			m.note(r.Object, "authentication method %d (%s): no configured authentication method matches it", i+1, what)
		}
		if am.Flags&1 != 0 {
			m.note(r.Object, "authentication method %d: certificate-to-account mapping is not applied", i+1)
		}
	}
	if len(out) == 0 {
		return nil, r.Object.errorf("rule %q: none of its authentication methods is configured in iked (add a kerberos or cert method under authentication)", r.Object.Name)
	}
	return out, nil
}

// sameDN compares two distinguished names as sets of attribute=value
// pairs: Windows writes CA names most significant first, Go least.
func sameDN(a, b string) bool {
	set := func(s string) []string {
		var out []string
		for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
			k, v, _ := strings.Cut(p, "=")
			out = append(out, strings.ToLower(strings.TrimSpace(k))+"="+strings.ToLower(strings.TrimSpace(v)))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(set(a), set(b))
}

// filterList merges the rule's filter lists into one.
func (m *mapper) filterList(r *Rule) (*policy.FilterList, error) {
	var names, descs []string
	var key []string
	for _, f := range r.Filters {
		key = append(key, NormalizeDN(f.Object.DN))
	}
	k := strings.Join(key, "|")
	if fl, ok := m.lists[k]; ok {
		return fl, nil
	}
	fl := &policy.FilterList{}
	for _, f := range r.Filters {
		n := f.Object.Name
		if n == "" {
			n = f.Object.ID
		}
		names = append(names, n)
		if f.Object.Description != "" {
			descs = append(descs, f.Object.Description)
		}
		fl.Filters = append(fl.Filters, m.filters(f)...)
	}
	fl.Name, fl.Description = strings.Join(names, " + "), strings.Join(descs, " ")
	if len(fl.Filters) == 0 {
		return nil, r.Object.errorf("rule %q: none of the filters of %s can be expressed in iked", r.Object.Name, fl.Name)
	}
	m.lists[k] = fl
	return fl, nil
}

var me, anyAddr = policy.Address{Kind: policy.MyAddress}, policy.Address{Kind: policy.AnyAddress}

func (m *mapper) filters(f *FilterList) []policy.Filter {
	var out []policy.Filter
	if len(f.Data.V2) > 0 {
		if len(f.Data.Legacy) > 0 {
			m.note(f.Object, "the version 2 filters are used; the %d legacy (IPv4) copies are not", len(f.Data.Legacy))
		}
		for i, v := range f.Data.V2 {
			if pf, ok := m.v2Filter(f.Object, i, v); ok {
				out = append(out, pf...)
			}
		}
		return m.dedupe(f.Object, out)
	}
	for i, l := range f.Data.Legacy {
		if pf, ok := m.legacyFilter(f.Object, i, l); ok {
			out = append(out, pf...)
		}
	}
	return m.dedupe(f.Object, out)
}

func (m *mapper) legacyFilter(o *Object, i int, l LegacyFilter) ([]policy.Filter, bool) {
	if l.Special != 0 {
		m.note(o, "filter %d names a server of this host's IP configuration (DNS, WINS, DHCP or gateway, %#x): not supported, left out", i+1, l.Special)
		return nil, false
	}
	addr := func(a, mask [4]byte) (policy.Address, bool) {
		switch {
		case a == [4]byte{} && mask == [4]byte{255, 255, 255, 255}:
			return me, true
		case a == [4]byte{} && mask == [4]byte{}:
			return anyAddr, true
		}
		p, ok := legacyPrefix(a, mask)
		if !ok {
			m.note(o, "filter %d: mask %v is not contiguous: left out", i+1, netip.AddrFrom4(mask))
			return policy.Address{}, false
		}
		if p.IsSingleIP() {
			return policy.Address{Kind: policy.Host, Prefix: p}, true
		}
		return policy.Address{Kind: policy.Subnet, Prefix: p}, true
	}
	src, ok1 := addr(l.Src, l.SrcMask)
	dst, ok2 := addr(l.Dst, l.DstMask)
	if !ok1 || !ok2 {
		return nil, false
	}
	m.dnsNotes(o, i, l.SrcDNS, l.DstDNS)
	if l.IsTunnel {
		m.note(o, "filter %d: its tunnel address is not used (the rule's tunnel endpoint is)", i+1)
	}
	return m.finish(o, i, policy.Filter{Src: src, Dst: dst, Protocol: uint8(l.Protocol), SrcPort: l.SrcPort, DstPort: l.DstPort,
		Mirrored: l.Mirrored, Description: l.Description})
}

func (m *mapper) dnsNotes(o *Object, i int, src, dst string) {
	for _, n := range []string{src, dst} {
		if n != "" {
			m.note(o, "filter %d: DNS name %q is not resolved again: the address stored with it is used", i+1, n)
		}
	}
}

func (m *mapper) v2Filter(o *Object, i int, v FilterV2) ([]policy.Filter, bool) {
	addr := func(a AddressSpec) (policy.Address, bool) {
		ip := func(b [16]byte) netip.Addr {
			if a.Version == 1 {
				return netip.AddrFrom4([4]byte(b[:4]))
			}
			return netip.AddrFrom16(b)
		}
		switch a.Type {
		case AddrAny:
			return anyAddr, true
		case AddrMe:
			return me, true
		case AddrSingle:
			x := ip(a.Addr)
			return policy.Address{Kind: policy.Host, Prefix: netip.PrefixFrom(x, x.BitLen())}, true
		case AddrRange:
			from, to := ip(a.Addr), ip(a.Secondary)
			if to.Less(from) {
				m.note(o, "filter %d: range %s-%s ends before it starts: left out", i+1, from, to)
				return policy.Address{}, false
			}
			return policy.Address{Kind: policy.Range, From: from, To: to}, true
		case AddrSubnet:
			var p netip.Prefix
			if a.Version == 1 {
				var ok bool
				if p, ok = legacyPrefix([4]byte(a.Addr[:4]), [4]byte(a.Secondary[:4])); !ok {
					m.note(o, "filter %d: subnet mask is not contiguous: left out", i+1)
					return policy.Address{}, false
				}
			} else {
				p = netip.PrefixFrom(ip(a.Addr), int(a.Secondary[0])).Masked()
			}
			if p.IsSingleIP() {
				return policy.Address{Kind: policy.Host, Prefix: p}, true
			}
			return policy.Address{Kind: policy.Subnet, Prefix: p}, true
		}
		m.note(o, "filter %d names a server of this host's IP configuration (address type %#x): not supported, left out", i+1, a.Type)
		return policy.Address{}, false
	}
	src, ok1 := addr(v.Src)
	dst, ok2 := addr(v.Dst)
	if !ok1 || !ok2 {
		return nil, false
	}
	m.dnsNotes(o, i, v.SrcDNS, v.DstDNS)
	port := func(p PortSpec) (uint16, bool) {
		switch p.Type {
		case 0:
			return 0, true
		case 1:
			return p.Port, true
		}
		m.note(o, "filter %d: port range %d-%d: iked filters name single ports: left out", i+1, p.Port, p.End)
		return 0, false
	}
	sp, ok1 := port(v.SrcPort)
	dp, ok2 := port(v.DstPort)
	if !ok1 || !ok2 {
		return nil, false
	}
	return m.finish(o, i, policy.Filter{Src: src, Dst: dst, Protocol: uint8(v.Protocol), SrcPort: sp, DstPort: dp,
		Mirrored: v.Mirrored, Description: v.Description})
}

// finish checks what iked's filters need and adds ICMPv6 to an ICMP filter
// between "me" and "any", as iked's all-icmp list has it.
func (m *mapper) finish(o *Object, i int, f policy.Filter) ([]policy.Filter, bool) {
	if (f.SrcPort != 0 || f.DstPort != 0) && f.Protocol != policy.TCP && f.Protocol != policy.UDP {
		m.note(o, "filter %d: ports with protocol %s: iked filters ports of TCP and UDP only: left out", i+1, policy.ProtocolName(f.Protocol))
		return nil, false
	}
	out := []policy.Filter{f}
	family := func(a policy.Address) bool { return a.Kind == policy.AnyAddress || a.Kind == policy.MyAddress }
	if f.Protocol == policy.ICMP && family(f.Src) && family(f.Dst) {
		v6 := f
		v6.Protocol = policy.ICMPv6
		v6.Description = icmpv6Twin
		out = append(out, v6)
	}
	return out, true
}

// icmpv6Twin marks the ICMPv6 filter finish adds, until filters has seen
// whether the list has one of its own.
const icmpv6Twin = "\x00icmpv6"

// dedupe drops filters that match what an earlier one does, and says
// where an ICMPv6 twin was added.
func (m *mapper) dedupe(o *Object, in []policy.Filter) []policy.Filter {
	key := func(f policy.Filter) string {
		f.Description = ""
		return fmt.Sprintf("%+v", f)
	}
	seen := map[string]bool{}
	var out []policy.Filter
	// Own filters first, so that a list with its own ICMPv6 filter keeps
	// it rather than the twin.
	for pass := range 2 {
		for _, f := range in {
			if (f.Description == icmpv6Twin) != (pass == 1) || seen[key(f)] {
				continue
			}
			seen[key(f)] = true
			if f.Description == icmpv6Twin {
				f.Description = ""
				m.note(o, "ICMP between %s and %s also covers ICMPv6, as iked's all-icmp list does", f.Src, f.Dst)
			}
			out = append(out, f)
		}
	}
	return out
}
