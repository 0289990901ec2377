package policy

import (
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iked/iked/sadb"
)

// AddressKind is what a filter's address names.
type AddressKind uint8

// Address kinds, as Windows' filter dialog has them.
const (
	// AnyAddress matches every address.
	AnyAddress AddressKind = iota
	// MyAddress matches every address of this host.
	MyAddress
	// Host is one address.
	Host
	// Subnet is a prefix.
	Subnet
	// Range is an inclusive range of addresses.
	Range
)

// Address is a filter's source or destination.
type Address struct {
	Kind AddressKind
	// Prefix is the Host (full length) or Subnet.
	Prefix netip.Prefix
	// From and To bound a Range.
	From, To netip.Addr
}

// ParseAddress parses "any", "me", an address, a prefix ("10.0.0.0/8") or
// a range ("10.0.0.5-10.0.0.9").
func ParseAddress(s string) (Address, error) {
	switch s {
	case "any":
		return Address{Kind: AnyAddress}, nil
	case "me":
		return Address{Kind: MyAddress}, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(from))
		b, err2 := netip.ParseAddr(strings.TrimSpace(to))
		if err1 != nil || err2 != nil || a.Is4() != b.Is4() || b.Less(a) {
			return Address{}, fmt.Errorf("invalid address range %q (expected FIRST-LAST of one family, FIRST not above LAST)", s)
		}
		return Address{Kind: Range, From: a.Unmap(), To: b.Unmap()}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Address{}, fmt.Errorf("invalid subnet %q", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
		if p.IsSingleIP() {
			return Address{Kind: Host, Prefix: p}, nil
		}
		return Address{Kind: Subnet, Prefix: p}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return Address{}, fmt.Errorf("invalid address %q (expected any, me, an address, a subnet or a range)", s)
	}
	a = a.Unmap()
	return Address{Kind: Host, Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
}

// String formats the address as ParseAddress reads it.
func (a Address) String() string {
	switch a.Kind {
	case AnyAddress:
		return "any"
	case MyAddress:
		return "me"
	case Host:
		return a.Prefix.Addr().String()
	case Range:
		return a.From.String() + "-" + a.To.String()
	}
	return a.Prefix.String()
}

// Contains reports whether ip is one of the address's; local says whether
// an address belongs to this host (for "me").
func (a Address) Contains(ip netip.Addr, local func(netip.Addr) bool) bool {
	ip = ip.Unmap()
	switch a.Kind {
	case AnyAddress:
		return true
	case MyAddress:
		return local != nil && local(ip)
	case Range:
		return ip.Is4() == a.From.Is4() && !ip.Less(a.From) && !a.To.Less(ip)
	}
	return a.Prefix.Contains(ip)
}

// Prefixes returns the prefixes that cover exactly the address; nil for
// "any" and "me", which data planes express otherwise.
func (a Address) Prefixes() []netip.Prefix {
	switch a.Kind {
	case Host, Subnet:
		return []netip.Prefix{a.Prefix}
	case Range:
		return sadb.RangePrefixes(a.From, a.To)
	}
	return nil
}

// specificity is the number of fixed address bits: a host has all, a
// subnet its prefix length, a range as many as the smallest prefix that
// could hold that many addresses, "any" none. "me" counts as a host: it
// stands for this host's own addresses.
func (a Address) specificity() int {
	switch a.Kind {
	case MyAddress:
		return 128 // compared within one family, so the maximum of either
	case Host:
		return 128 - a.Prefix.Addr().BitLen() + a.Prefix.Bits()
	case Subnet:
		return 128 - a.Prefix.Addr().BitLen() + a.Prefix.Bits()
	case Range:
		n := rangeSize(a.From, a.To)
		return 128 - n
	}
	return 0
}

// rangeSize returns ceil(log2(number of addresses)) of [from, to].
func rangeSize(from, to netip.Addr) int {
	f, t := from.As16(), to.As16()
	// The position of the first differing bit bounds the size.
	for i := range 16 {
		if x := f[i] ^ t[i]; x != 0 {
			return (15-i)*8 + 8 - bits.LeadingZeros8(x)
		}
	}
	return 0
}

// Protocols known by name.
const (
	ICMP   = 1
	TCP    = 6
	UDP    = 17
	ICMPv6 = 58
)

// ParseProtocol parses "any", "icmp", "tcp", "udp", "icmpv6" or a number
// 0-255 (0 = any).
func ParseProtocol(s string) (uint8, error) {
	switch s {
	case "any":
		return 0, nil
	case "icmp":
		return ICMP, nil
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	case "icmpv6":
		return ICMPv6, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown protocol %q (expected any, icmp, tcp, udp, icmpv6 or a number 0-255)", s)
	}
	return uint8(n), nil
}

// ProtocolName returns the protocol as ParseProtocol reads it.
func ProtocolName(p uint8) string {
	switch p {
	case 0:
		return "any"
	case ICMP:
		return "icmp"
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMPv6:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}

// Filter is one filter of a filter list.
type Filter struct {
	// Src and Dst are the packet's source and destination.
	Src, Dst Address
	// Protocol is the IP protocol; 0 is any.
	Protocol uint8
	// SrcPort and DstPort are TCP or UDP ports; 0 is any.
	SrcPort, DstPort uint16
	// Mirrored also matches the reply direction (source and destination,
	// and the ports, swapped). Windows mirrors by default.
	Mirrored bool
	// Description is free text.
	Description string
}

// String formats the filter as "me -> any tcp/23 (mirrored)".
func (f *Filter) String() string {
	s := f.Src.String()
	if f.SrcPort != 0 {
		s += ":" + strconv.Itoa(int(f.SrcPort))
	}
	s += " -> " + f.Dst.String()
	if f.DstPort != 0 {
		s += ":" + strconv.Itoa(int(f.DstPort))
	}
	if f.Protocol != 0 {
		s += " " + ProtocolName(f.Protocol)
	}
	if f.Mirrored {
		s += " (mirrored)"
	}
	return s
}

// Weight orders filters by specificity, the way Windows orders its
// filters rather than by rule order: more fixed address bits (source and
// destination together) first, then a named protocol, then a source
// port, then a destination port. A larger weight is more specific.
func (f *Filter) Weight() uint32 {
	w := uint32(f.Src.specificity()+f.Dst.specificity()) << 8
	if f.Protocol != 0 {
		w |= 4
	}
	if f.SrcPort != 0 {
		w |= 2
	}
	if f.DstPort != 0 {
		w |= 1
	}
	return w
}

// Packet is what a filter looks at.
type Packet struct {
	Src, Dst         netip.Addr
	Protocol         uint8
	SrcPort, DstPort uint16
}

// String formats the packet as "10.0.0.1:1234 -> 10.0.0.2:23 tcp".
func (p Packet) String() string {
	side := func(a netip.Addr, port uint16) string {
		if port == 0 {
			return a.String()
		}
		return netip.AddrPortFrom(a, port).String()
	}
	return side(p.Src, p.SrcPort) + " -> " + side(p.Dst, p.DstPort) + " " + ProtocolName(p.Protocol)
}

// Reverse returns the packet of the other direction.
func (p Packet) Reverse() Packet {
	return Packet{Src: p.Dst, Dst: p.Src, Protocol: p.Protocol, SrcPort: p.DstPort, DstPort: p.SrcPort}
}

// Matches reports whether the filter matches the packet as written, or,
// mirrored, its reply direction.
func (f *Filter) Matches(p Packet, local func(netip.Addr) bool) bool {
	return f.matchOne(p, local) || f.Mirrored && f.matchOne(p.Reverse(), local)
}

func (f *Filter) matchOne(p Packet, local func(netip.Addr) bool) bool {
	if f.Protocol != 0 && f.Protocol != p.Protocol {
		return false
	}
	if f.SrcPort != 0 && f.SrcPort != p.SrcPort || f.DstPort != 0 && f.DstPort != p.DstPort {
		return false
	}
	return f.Src.Contains(p.Src, local) && f.Dst.Contains(p.Dst, local)
}

// FilterList is a named, reusable list of filters.
type FilterList struct {
	Name        string
	Description string
	Filters     []Filter
}
