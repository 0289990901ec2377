package ikev1

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net/netip"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/ipsec"
)

// Identity is a Main Mode identity (RFC 2407 §4.6.2.1): its ID type and
// data. IKEv1 and IKEv2 number the phase 1 identity types alike (IPv4 1,
// FQDN 2, user FQDN 3, IPv6 5, DER DN 9, key ID 11).
type Identity struct {
	Type  uint8
	Value []byte
}

// IsZero reports whether the identity is unset.
func (id Identity) IsZero() bool { return id.Type == 0 }

// String formats the identity as "type:value", as ikectl shows it.
func (id Identity) String() string {
	switch id.Type {
	case 0:
		return ""
	case isakmp.IDIPv4, isakmp.IDIPv6:
		if a, ok := netip.AddrFromSlice(id.Value); ok {
			return "ip:" + a.Unmap().String()
		}
	case isakmp.IDFQDN:
		return "fqdn:" + string(id.Value)
	case isakmp.IDUserFQDN:
		return "email:" + string(id.Value)
	case isakmp.IDDERASN1DN:
		if s, ok := dnString(id.Value); ok {
			return "dn:" + s
		}
	case isakmp.IDKeyID:
		return "keyid:" + string(id.Value)
	}
	return fmt.Sprintf("id%d:%x", id.Type, id.Value)
}

// dnString renders a DER distinguished name as x509 does.
func dnString(der []byte) (string, bool) {
	var rdn pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &rdn)
	if err != nil || len(rest) != 0 {
		return "", false
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	return n.String(), true
}

// matches reports whether a peer's identity satisfies the configured one
// (the zero Identity accepts any). Distinguished names compare by their
// parsed value, so that a PrintableString and a UTF8String of the same
// text are equal.
func (want Identity) matches(got Identity) bool {
	if want.IsZero() {
		return true
	}
	if want.Type != got.Type {
		return false
	}
	if want.Type == isakmp.IDDERASN1DN {
		a, okA := dnString(want.Value)
		b, okB := dnString(got.Value)
		return okA && okB && a == b
	}
	if want.Type == isakmp.IDFQDN || want.Type == isakmp.IDUserFQDN {
		return bytes.EqualFold(want.Value, got.Value)
	}
	return bytes.Equal(want.Value, got.Value)
}

// addrIdentity is the IP address identity of a.
func addrIdentity(a netip.Addr) Identity {
	a = a.Unmap()
	if a.Is4() {
		return Identity{Type: isakmp.IDIPv4, Value: a.AsSlice()}
	}
	return Identity{Type: isakmp.IDIPv6, Value: a.AsSlice()}
}

// payload is the phase 1 ID payload of the identity: protocol and port
// zero, as RFC 2407 §4.6.2 allows and the real peers send (charon sends
// zero; racoon and Windows UDP/500; both are accepted on receipt).
func (id Identity) payload() *isakmp.ID {
	return &isakmp.ID{IDType: id.Type, Data: id.Value}
}

// identityOf reads a phase 1 ID payload; it refuses the phase 2 types.
func identityOf(p *isakmp.ID) (Identity, error) {
	switch p.IDType {
	case isakmp.IDIPv4:
		if len(p.Data) != 4 {
			return Identity{}, fmt.Errorf("IPv4 identity of %d octets", len(p.Data))
		}
	case isakmp.IDIPv6:
		if len(p.Data) != 16 {
			return Identity{}, fmt.Errorf("IPv6 identity of %d octets", len(p.Data))
		}
	case isakmp.IDFQDN, isakmp.IDUserFQDN, isakmp.IDKeyID:
		if len(p.Data) == 0 {
			return Identity{}, fmt.Errorf("empty identity of type %d", p.IDType)
		}
	case isakmp.IDDERASN1DN:
		if _, ok := dnString(p.Data); !ok {
			return Identity{}, fmt.Errorf("identity is not a DER distinguished name")
		}
	default:
		return Identity{}, fmt.Errorf("identity type %d is not a phase 1 identity", p.IDType)
	}
	if p.Protocol != 0 && p.Protocol != 17 || p.Port != 0 && p.Port != 500 && p.Port != 4500 {
		return Identity{}, fmt.Errorf("identity for protocol %d port %d, want 0/0 or UDP/500", p.Protocol, p.Port)
	}
	return Identity{Type: p.IDType, Value: bytes.Clone(p.Data)}, nil
}

// selectorID is the Quick Mode client ID (IDci or IDcr, RFC 2409 §5.5) of
// a traffic selector: an address when it covers one, a subnet when its
// range is one, else a range.
func selectorID(ts ipsec.TrafficSelector) *isakmp.ID {
	id := &isakmp.ID{Protocol: ts.IPProtocol}
	if ts.StartPort == ts.EndPort {
		id.Port = ts.StartPort
	}
	v4 := ts.Type == ipsec.TSIPv4AddrRange
	switch {
	case ts.StartAddr == ts.EndAddr:
		id.IDType, id.Data = isakmp.IDIPv6, ts.StartAddr.AsSlice()
		if v4 {
			id.IDType = isakmp.IDIPv4
		}
	case rangePrefix(ts.StartAddr, ts.EndAddr).IsValid():
		p := rangePrefix(ts.StartAddr, ts.EndAddr)
		mask := make([]byte, p.Addr().BitLen()/8)
		for i := range p.Bits() {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		id.IDType, id.Data = isakmp.IDIPv6Subnet, append(p.Addr().AsSlice(), mask...)
		if v4 {
			id.IDType = isakmp.IDIPv4Subnet
		}
	default:
		id.IDType, id.Data = isakmp.IDIPv6Range, append(ts.StartAddr.AsSlice(), ts.EndAddr.AsSlice()...)
		if v4 {
			id.IDType = isakmp.IDIPv4Range
		}
	}
	return id
}

// rangePrefix returns the prefix whose range is exactly [start, end], or
// the zero Prefix.
func rangePrefix(start, end netip.Addr) netip.Prefix {
	for bits := 0; bits <= start.BitLen(); bits++ {
		p, err := start.Prefix(bits)
		if err != nil || p.Addr() != start {
			continue
		}
		if lastAddr(p) == end {
			return p
		}
	}
	return netip.Prefix{}
}

// lastAddr is the highest address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// selectorOf reads a Quick Mode client ID into a traffic selector. A
// subnet's mask must be contiguous; a range must not run backwards.
func selectorOf(id *isakmp.ID) (ipsec.TrafficSelector, error) {
	ts := ipsec.TrafficSelector{IPProtocol: id.Protocol, StartPort: id.Port, EndPort: id.Port}
	if id.Port == 0 {
		ts.EndPort = 0xffff
	}
	alen := 4
	ts.Type = ipsec.TSIPv4AddrRange
	switch id.IDType {
	case isakmp.IDIPv6, isakmp.IDIPv6Subnet, isakmp.IDIPv6Range:
		alen, ts.Type = 16, ipsec.TSIPv6AddrRange
	}
	switch id.IDType {
	case isakmp.IDIPv4, isakmp.IDIPv6:
		if len(id.Data) != alen {
			return ts, fmt.Errorf("ID type %d of %d octets", id.IDType, len(id.Data))
		}
		a, _ := netip.AddrFromSlice(id.Data)
		ts.StartAddr, ts.EndAddr = a, a
	case isakmp.IDIPv4Subnet, isakmp.IDIPv6Subnet:
		if len(id.Data) != 2*alen {
			return ts, fmt.Errorf("subnet ID type %d of %d octets", id.IDType, len(id.Data))
		}
		a, _ := netip.AddrFromSlice(id.Data[:alen])
		bits, ok := maskBits(id.Data[alen:])
		if !ok {
			return ts, fmt.Errorf("non-contiguous subnet mask %x", id.Data[alen:])
		}
		p := netip.PrefixFrom(a, bits).Masked()
		ts.StartAddr, ts.EndAddr = p.Addr(), lastAddr(p)
	case isakmp.IDIPv4Range, isakmp.IDIPv6Range:
		if len(id.Data) != 2*alen {
			return ts, fmt.Errorf("range ID type %d of %d octets", id.IDType, len(id.Data))
		}
		a, _ := netip.AddrFromSlice(id.Data[:alen])
		b, _ := netip.AddrFromSlice(id.Data[alen:])
		if b.Less(a) {
			return ts, fmt.Errorf("range %s-%s runs backwards", a, b)
		}
		ts.StartAddr, ts.EndAddr = a, b
	default:
		return ts, fmt.Errorf("ID type %d is not an address, subnet or range", id.IDType)
	}
	return ts, nil
}

func maskBits(m []byte) (int, bool) {
	bits, done := 0, false
	for _, o := range m {
		for i := 7; i >= 0; i-- {
			set := o>>i&1 == 1
			switch {
			case set && done:
				return 0, false
			case set:
				bits++
			default:
				done = true
			}
		}
	}
	return bits, true
}

// hostSelector is the selector of one address, any protocol and port.
func hostSelector(a netip.Addr) ipsec.TrafficSelector {
	a = a.Unmap()
	t := ipsec.TSIPv4AddrRange
	if a.Is6() {
		t = ipsec.TSIPv6AddrRange
	}
	return ipsec.TrafficSelector{Type: t, StartAddr: a, EndAddr: a, EndPort: 0xffff}
}

// formatSelector prints a selector as ikectl shows it: "10.1.0.0/24",
// "192.0.2.1/32[tcp/80]" or "10.0.0.1-10.0.0.9".
func formatSelector(ts ipsec.TrafficSelector) string {
	s := ts.StartAddr.String() + "-" + ts.EndAddr.String()
	if p := rangePrefix(ts.StartAddr, ts.EndAddr); p.IsValid() {
		s = p.String()
	}
	if ts.IPProtocol == 0 && ts.StartPort == 0 && ts.EndPort == 0xffff {
		return s
	}
	proto := fmt.Sprint(ts.IPProtocol)
	switch ts.IPProtocol {
	case 6:
		proto = "tcp"
	case 17:
		proto = "udp"
	case 1:
		proto = "icmp"
	}
	switch {
	case ts.StartPort == 0 && ts.EndPort == 0xffff:
		return fmt.Sprintf("%s[%s]", s, proto)
	case ts.StartPort == ts.EndPort:
		return fmt.Sprintf("%s[%s/%d]", s, proto, ts.StartPort)
	}
	return fmt.Sprintf("%s[%s/%d-%d]", s, proto, ts.StartPort, ts.EndPort)
}

// covers reports whether outer contains inner entirely.
func covers(outer, inner ipsec.TrafficSelector) bool {
	return outer.Type == inner.Type &&
		(outer.IPProtocol == 0 || outer.IPProtocol == inner.IPProtocol) &&
		outer.StartPort <= inner.StartPort && inner.EndPort <= outer.EndPort &&
		!inner.StartAddr.Less(outer.StartAddr) && !outer.EndAddr.Less(inner.EndAddr)
}
