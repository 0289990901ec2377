package gpipsec

import (
	"net/netip"
)

// AuthType is an IKE authentication method of an NFA (§2.2.1.3.1).
type AuthType uint32

// Auth-Type values.
const (
	AuthPSK         AuthType = 1
	AuthCertificate AuthType = 3
	AuthKerberos    AuthType = 5
)

// String names the type.
func (t AuthType) String() string {
	switch t {
	case AuthPSK:
		return "pre-shared key"
	case AuthCertificate:
		return "certificate"
	case AuthKerberos:
		return "Kerberos"
	}
	return "unknown"
}

// AuthMethod is one authentication method of a rule.
type AuthMethod struct {
	Type AuthType
	// Value is the pre-shared key, or the certificate authority's name
	// (a DN such as "CN=Corp Root, O=Corp"); empty for Kerberos.
	Value string
	// Flags are the Alt-Auth-Method-Flags of the method, when the blob
	// has them: 1 certificate-to-account mapping, 2 exclude the CA name
	// from the certificate request.
	Flags uint32
}

// InterfaceType is which interfaces a rule applies to.
type InterfaceType uint32

// Interface-Type values.
const (
	InterfaceDialUp InterfaceType = 0xFFFFFFFF
	InterfaceLAN    InterfaceType = 0xFFFFFFFE
	InterfaceAll    InterfaceType = 0xFFFFFFFD
)

// NFAData is the ipsecData of an ipsecNFA object: a rule's authentication
// methods, interfaces and tunnel endpoint (§2.2.1.3.1).
type NFAData struct {
	Auth          []AuthMethod
	Interface     InterfaceType
	InterfaceName string
	// Tunnel is the tunnel endpoint when IsTunnel: Tunnel-Address, or
	// the IPv6-Tunnel-Mode-Address that supersedes it.
	Tunnel     netip.Addr
	IsTunnel   bool
	Active     bool
	TunnelName string
	// AltAuth is whether the blob carries the alternate authentication
	// sections (Windows Vista and later write them).
	AltAuth bool
}

// DecodeNFA decodes an ipsecNFA blob.
func DecodeNFA(b []byte) (NFAData, error) {
	r := &reader{kind: "ipsecNFA", b: b}
	r.expectGUID(NFABlobID, "NFA-Policy-ID")
	s := r.section("Data-Length")
	var d NFAData
	n := s.count("Auth-Method-Count", 8)
	for i := 0; i < n && s.err == nil; i++ {
		d.Auth = append(d.Auth, decodeAuth(s, i, "Auth-Method"))
	}
	at := s.off
	switch d.Interface = InterfaceType(s.u32("Interface-Type")); d.Interface {
	case InterfaceDialUp, InterfaceLAN, InterfaceAll:
	default:
		s.fail(at, "Interface-Type %#x is unknown", uint32(d.Interface))
	}
	d.InterfaceName = s.str("Interface-Name")
	v4 := s.take(4, "Tunnel-Address")
	d.IsTunnel = s.bool32("Is-Tunnel-Specifier")
	d.Active = s.bool32("Is-Active-Specifier")
	d.TunnelName = s.str("Tunnel-End-Point-Name")
	s.end(r, "NFA data")
	if d.IsTunnel && v4 != nil {
		d.Tunnel = netip.AddrFrom4([4]byte(v4))
	}
	r.pad()
	// The optional sections, each marked by its GUID.
	if r.err == nil && len(b)-r.off >= 16 && GUID(b[r.off:r.off+16]) == nfaAltAuthID {
		r.off += 16
		d.AltAuth = true
		at := r.off
		if m := r.count("Alt-Auth-Num-Methods-Count", 8); r.err == nil && m != len(d.Auth) {
			r.fail(at, "Alt-Auth-Num-Methods-Count is %d, must equal Auth-Method-Count %d", m, len(d.Auth))
		}
		for i := range d.Auth {
			alt := decodeAuth(r, i, "Alt-Auth-Method")
			if r.err == nil && (alt.Type != d.Auth[i].Type || alt.Value != d.Auth[i].Value) {
				// Windows writes the same methods twice; a blob where they
				// differ means different things to different Windows versions.
				r.fail(at, "alternate authentication method %d (%s) differs from method %d (%s)", i+1, alt.Type, i+1, d.Auth[i].Type)
			}
		}
	}
	if r.err == nil && len(b)-r.off >= 16 && GUID(b[r.off:r.off+16]) == nfaAltFlagsID {
		r.off += 16
		r.take(4, "Zero1")
		for i := range d.Auth {
			at := r.off
			f := r.u32("Alt-Auth-Method-Flags")
			if f > 2 {
				r.fail(at, "Alt-Auth-Method-Flags of method %d is %#x, want 0, 1 or 2", i+1, f)
			}
			if r.err == nil {
				d.Auth[i].Flags = f
			}
		}
	}
	if r.err == nil && len(b)-r.off >= 16 && GUID(b[r.off:r.off+16]) == nfaIPv6TunnID {
		r.off += 16
		if p := r.take(16, "IPv6-Tunnel-Mode-Address"); p != nil && d.IsTunnel {
			d.Tunnel = netip.AddrFrom16([16]byte(p))
		}
	}
	r.pad()
	return d, r.done()
}

func decodeAuth(s *reader, i int, what string) AuthMethod {
	var m AuthMethod
	at := s.off
	m.Type = AuthType(s.u32(what + " Auth-Type"))
	n := s.u32(what + " Auth-Length")
	data := s.take(int(min(n, 1<<20)), what+" data")
	if s.err != nil {
		return m
	}
	switch m.Type {
	case AuthKerberos:
		for _, c := range data {
			if c != 0 {
				s.fail(at+8, "%s %d (Kerberos): its data must be zero", what, i+1)
			}
		}
	case AuthPSK, AuthCertificate:
		if n%2 != 0 {
			s.fail(at+4, "%s %d (%s): length %d is odd (UTF-16 text)", what, i+1, m.Type, n)
			return m
		}
		m.Value = decodeUTF16(s, at+8, data, what)
		if s.err == nil && m.Value == "" {
			s.fail(at+8, "%s %d (%s): empty", what, i+1, m.Type)
		}
	default:
		s.fail(at, "%s %d: Auth-Type %d is unknown (1 pre-shared key, 3 certificate, 5 Kerberos)", what, i+1, uint32(m.Type))
	}
	return m
}

func encodeAuth(w *writer, m AuthMethod) {
	w.u32(uint32(m.Type))
	if m.Type == AuthKerberos {
		w.u32(2)
		w.u16(0)
		return
	}
	w.str(m.Value)
}

// Encode writes the blob, with the alternate authentication sections and
// the IPv6 tunnel address as Windows Vista and later do.
func (d NFAData) Encode() []byte {
	w := &writer{}
	w.guid(NFABlobID)
	var v4 [4]byte
	if d.IsTunnel && d.Tunnel.Is4() {
		v4 = d.Tunnel.As4()
	}
	iface := d.Interface
	if iface == 0 {
		iface = InterfaceAll
	}
	w.section(func(s *writer) {
		s.u32(uint32(len(d.Auth)))
		for _, m := range d.Auth {
			encodeAuth(s, m)
		}
		s.u32(uint32(iface))
		s.str(d.InterfaceName)
		s.b = append(s.b, v4[:]...)
		s.bool32(d.IsTunnel)
		s.bool32(d.Active)
		s.str(d.TunnelName)
	})
	if d.AltAuth {
		w.guid(nfaAltAuthID)
		w.u32(uint32(len(d.Auth)))
		for _, m := range d.Auth {
			encodeAuth(w, m)
		}
		w.guid(nfaAltFlagsID)
		w.u32(0)
		for _, m := range d.Auth {
			w.u32(m.Flags)
		}
	}
	if d.IsTunnel && d.Tunnel.Is6() {
		w.guid(nfaIPv6TunnID)
		a := d.Tunnel.As16()
		w.b = append(w.b, a[:]...)
	}
	return w.b
}
