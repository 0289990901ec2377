package ike

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iked/iked/ike/wire"
)

// protocolNames are the protocol keywords accepted in traffic selectors.
var protocolNames = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132}

// ParseTrafficSelector parses a traffic selector in strongSwan's notation:
// a prefix ("10.1.0.0/24", "192.0.2.1" for a host, "0.0.0.0/0", "::/0") or
// an address range ("10.0.0.1-10.0.0.9"), optionally followed by
// "[proto]" or "[proto/port]" or "[proto/lo-hi]" with proto a name (tcp,
// udp, icmp, …) or a number.
func ParseTrafficSelector(s string) (wire.TrafficSelector, error) {
	var ts wire.TrafficSelector
	addrPart, rest, hasProto := strings.Cut(s, "[")
	if hasProto {
		if !strings.HasSuffix(rest, "]") {
			return ts, fmt.Errorf("traffic selector %q: missing ]", s)
		}
		rest = strings.TrimSuffix(rest, "]")
	}
	if lo, hi, isRange := strings.Cut(addrPart, "-"); isRange {
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(hi)
		if err1 != nil || err2 != nil || a.Is4() != b.Is4() || b.Less(a) {
			return ts, fmt.Errorf("traffic selector %q: bad address range", s)
		}
		ts.StartAddr, ts.EndAddr = a, b
	} else {
		var p netip.Prefix
		var err error
		if strings.Contains(addrPart, "/") {
			p, err = netip.ParsePrefix(addrPart)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(addrPart)
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return ts, fmt.Errorf("traffic selector %q: %v", s, err)
		}
		if p.Masked() != p {
			return ts, fmt.Errorf("traffic selector %q: host bits set (did you mean %s?)", s, p.Masked())
		}
		ts.StartAddr, ts.EndAddr = prefixRange(p)
	}
	ts.Type = wire.TSIPv4AddrRange
	if ts.StartAddr.Is6() {
		ts.Type = wire.TSIPv6AddrRange
	}
	ts.StartPort, ts.EndPort = 0, 65535
	if hasProto {
		proto, ports, hasPorts := strings.Cut(rest, "/")
		if n, ok := protocolNames[proto]; ok {
			ts.IPProtocol = n
		} else if n, err := strconv.ParseUint(proto, 10, 8); err == nil {
			ts.IPProtocol = uint8(n)
		} else if proto != "any" && proto != "" {
			return ts, fmt.Errorf("traffic selector %q: unknown protocol %q", s, proto)
		}
		if hasPorts {
			lo, hi, isRange := strings.Cut(ports, "-")
			if !isRange {
				hi = lo
			}
			l, err1 := strconv.ParseUint(lo, 10, 16)
			h, err2 := strconv.ParseUint(hi, 10, 16)
			if err1 != nil || err2 != nil || h < l {
				return ts, fmt.Errorf("traffic selector %q: bad port %q", s, ports)
			}
			ts.StartPort, ts.EndPort = uint16(l), uint16(h)
		}
	}
	return ts, nil
}

// prefixRange returns the first and last address of p.
func prefixRange(p netip.Prefix) (netip.Addr, netip.Addr) {
	first := p.Addr()
	b := first.AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	last, _ := netip.AddrFromSlice(b)
	return first, last
}

// HostSelector is the selector covering exactly one address, any protocol
// and port: what transport mode negotiates and the default in tunnel mode
// when no traffic selectors are configured.
func HostSelector(a netip.Addr) wire.TrafficSelector {
	a = a.Unmap()
	ts := wire.TrafficSelector{Type: wire.TSIPv4AddrRange, StartAddr: a, EndAddr: a, EndPort: 65535}
	if a.Is6() {
		ts.Type = wire.TSIPv6AddrRange
	}
	return ts
}

// FormatTrafficSelector prints a selector in the notation ParseTrafficSelector
// reads, using a prefix where the range is one.
func FormatTrafficSelector(ts wire.TrafficSelector) string {
	var sb strings.Builder
	if p, ok := rangePrefix(ts.StartAddr, ts.EndAddr); ok {
		sb.WriteString(p.String())
	} else {
		sb.WriteString(ts.StartAddr.String() + "-" + ts.EndAddr.String())
	}
	anyPort := ts.StartPort == 0 && ts.EndPort == 65535
	if ts.IPProtocol != 0 || !anyPort {
		sb.WriteByte('[')
		name := strconv.Itoa(int(ts.IPProtocol))
		for n, v := range protocolNames {
			if v == ts.IPProtocol && n != "icmpv6" {
				name = n
			}
		}
		if ts.IPProtocol == 0 {
			name = "any"
		}
		sb.WriteString(name)
		if !anyPort {
			sb.WriteByte('/')
			sb.WriteString(strconv.Itoa(int(ts.StartPort)))
			if ts.EndPort != ts.StartPort {
				sb.WriteString("-" + strconv.Itoa(int(ts.EndPort)))
			}
		}
		sb.WriteByte(']')
	}
	return sb.String()
}

// rangePrefix returns the prefix whose range is exactly [a, b], if any.
func rangePrefix(a, b netip.Addr) (netip.Prefix, bool) {
	if !a.IsValid() || !b.IsValid() || a.Is4() != b.Is4() {
		return netip.Prefix{}, false
	}
	for bits := 0; bits <= a.BitLen(); bits++ {
		p := netip.PrefixFrom(a, bits)
		if p.Masked().Addr() != a {
			continue
		}
		first, last := prefixRange(p)
		if first == a && last == b {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Narrow intersects what the peer proposed with what is configured
// (RFC 7296 §2.9): the result holds, for each pair, the overlap of
// address range, protocol and ports. An empty result means
// TS_UNACCEPTABLE.
func Narrow(proposed, allowed []wire.TrafficSelector) []wire.TrafficSelector {
	var out []wire.TrafficSelector
	for _, p := range proposed {
		for _, a := range allowed {
			if t, ok := intersect(p, a); ok && !containsTS(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

func containsTS(list []wire.TrafficSelector, t wire.TrafficSelector) bool {
	for _, x := range list {
		if x == t {
			return true
		}
	}
	return false
}

func intersect(p, a wire.TrafficSelector) (wire.TrafficSelector, bool) {
	if p.Type != a.Type {
		return wire.TrafficSelector{}, false
	}
	t := p
	switch {
	case p.IPProtocol == 0:
		t.IPProtocol = a.IPProtocol
	case a.IPProtocol != 0 && a.IPProtocol != p.IPProtocol:
		return t, false
	}
	t.StartAddr = maxAddr(p.StartAddr, a.StartAddr)
	t.EndAddr = minAddr(p.EndAddr, a.EndAddr)
	if t.EndAddr.Less(t.StartAddr) {
		return t, false
	}
	t.StartPort = max(p.StartPort, a.StartPort)
	t.EndPort = min(p.EndPort, a.EndPort)
	if t.EndPort < t.StartPort {
		return t, false
	}
	return t, true
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return b
	}
	return a
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return a
	}
	return b
}

// Covers reports whether every selector of inner lies within some selector
// of outer: an initiator checks that the responder's narrowed selectors
// stay within what it proposed.
func Covers(outer, inner []wire.TrafficSelector) bool {
	for _, in := range inner {
		ok := false
		for _, o := range outer {
			if t, hit := intersect(in, o); hit && t == in {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
