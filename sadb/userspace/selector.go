package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/iked/iked/ipsec"
	"github.com/iked/iked/sadb"
)

// flow is what selectors see of an IP packet.
type flow struct {
	src, dst         netip.Addr
	proto            uint8
	srcPort, dstPort uint16
	// opaque is set when ports are unknown (non-first fragments, truncated
	// headers): only selectors that allow any port match.
	opaque bool
}

var errNotIP = errors.New("not an IPv4 or IPv6 packet")

// parseFlow reads the addresses, protocol and ports of an IP packet. For
// ICMP and ICMPv6 the type and code stand in both ports, as type<<8|code
// (RFC 7296 §3.13.1).
func parseFlow(p []byte, f *flow) error {
	if len(p) < 1 {
		return errNotIP
	}
	var l4 []byte
	switch p[0] >> 4 {
	case 4:
		if len(p) < 20 {
			return errNotIP
		}
		ihl := int(p[0]&0xf) * 4
		if ihl < 20 || len(p) < ihl {
			return errNotIP
		}
		f.src = netip.AddrFrom4([4]byte(p[12:16]))
		f.dst = netip.AddrFrom4([4]byte(p[16:20]))
		f.proto = p[9]
		f.opaque = binary.BigEndian.Uint16(p[6:8])&0x1fff != 0
		l4 = p[ihl:]
	case 6:
		if len(p) < 40 {
			return errNotIP
		}
		f.src = netip.AddrFrom16([16]byte(p[8:24]))
		f.dst = netip.AddrFrom16([16]byte(p[24:40]))
		f.proto = p[6]
		f.opaque = false
		l4 = p[40:]
		// Extension headers are not walked: a packet with one shows its
		// first extension header as the protocol and matches selectors
		// that allow any protocol and ports.
	default:
		return errNotIP
	}
	f.srcPort, f.dstPort = 0, 0
	switch f.proto {
	case 6, 17, 132, 136: // TCP, UDP, SCTP, UDP-Lite
		if len(l4) < 4 {
			f.opaque = true
		} else if !f.opaque {
			f.srcPort = binary.BigEndian.Uint16(l4[0:2])
			f.dstPort = binary.BigEndian.Uint16(l4[2:4])
		}
	case 1, 58: // ICMP, ICMPv6
		if len(l4) < 2 {
			f.opaque = true
		} else if !f.opaque {
			f.srcPort = uint16(l4[0])<<8 | uint16(l4[1])
			f.dstPort = f.srcPort
		}
	}
	return nil
}

// tsMatch says whether addr, proto and port fall in one of the selectors.
func tsMatch(ts []ipsec.TrafficSelector, addr netip.Addr, proto uint8, port uint16, opaque bool) bool {
	for i := range ts {
		s := &ts[i]
		if s.IPProtocol != 0 && s.IPProtocol != proto {
			continue
		}
		if addr.Less(s.StartAddr) || s.EndAddr.Less(addr) {
			continue
		}
		anyPort := s.StartPort == 0 && s.EndPort == 0xffff
		if opaque && !anyPort {
			continue
		}
		if !anyPort && (port < s.StartPort || port > s.EndPort) {
			continue
		}
		return true
	}
	return false
}

// selMatch says whether a policy selector matches the flow.
func selMatch(s *sadb.Selector, f *flow) bool {
	if !s.Src.Contains(f.src) || !s.Dst.Contains(f.dst) {
		return false
	}
	if s.Proto != 0 && s.Proto != f.proto {
		return false
	}
	if (s.SrcPort != 0 || s.DstPort != 0) && f.opaque {
		return false
	}
	return (s.SrcPort == 0 || s.SrcPort == f.srcPort) && (s.DstPort == 0 || s.DstPort == f.dstPort)
}

// rangePrefixes returns the prefixes that exactly cover [start, end].
func rangePrefixes(start, end netip.Addr) ([]netip.Prefix, error) {
	if start.Is4() != end.Is4() || end.Less(start) {
		return nil, fmt.Errorf("bad address range %s-%s", start, end)
	}
	var out []netip.Prefix
	bits := start.BitLen()
	for a := start; ; {
		// The largest prefix starting at a that ends at or before end.
		n := bits
		for n > 0 {
			p, _ := a.Prefix(n - 1)
			if p.Addr() != a || lastAddr(p).Compare(end) > 0 {
				break
			}
			n--
		}
		p := netip.PrefixFrom(a, n)
		out = append(out, p)
		last := lastAddr(p)
		if last == end {
			return out, nil
		}
		a = last.Next()
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// exclude returns prefixes covering p except the address x: p itself when
// it does not contain x, else the siblings along the path from p down to x.
func exclude(p netip.Prefix, x netip.Addr) []netip.Prefix {
	if !p.Contains(x) {
		return []netip.Prefix{p}
	}
	var out []netip.Prefix
	for bits := p.Bits() + 1; bits <= x.BitLen(); bits++ {
		onPath, _ := x.Prefix(bits)
		out = append(out, sibling(onPath))
	}
	return out
}

// sibling returns the other half of p's parent.
func sibling(p netip.Prefix) netip.Prefix {
	b := p.Addr().AsSlice()
	i := p.Bits() - 1
	b[i/8] ^= 0x80 >> (i % 8)
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, p.Bits())
}

// routesFor returns the prefixes to route into the TUN device for remote
// selectors, leaving out every address in avoid (the peer's IKE and ESP
// address must keep its ordinary route).
func routesFor(ts []ipsec.TrafficSelector, avoid ...netip.Addr) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ts {
		ps, err := rangePrefixes(s.StartAddr.Unmap(), s.EndAddr.Unmap())
		if err != nil {
			return nil, err
		}
		for _, x := range avoid {
			if !x.IsValid() {
				continue
			}
			x = x.Unmap()
			var next []netip.Prefix
			for _, p := range ps {
				next = append(next, exclude(p, x)...)
			}
			ps = next
		}
		out = append(out, ps...)
	}
	return out, nil
}
