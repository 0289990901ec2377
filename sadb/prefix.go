package sadb

import "net/netip"

// RangePrefixes splits the address range [first, last] into the fewest
// prefixes that cover exactly it: data-plane selectors hold prefixes,
// traffic selectors and policy filters hold ranges.
func RangePrefixes(first, last netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for !last.Less(first) {
		bits := first.BitLen()
		// Grow the prefix while it stays aligned and within the range.
		for bits > 0 {
			p := netip.PrefixFrom(first, bits-1)
			if p.Masked().Addr() != first || last.Less(LastAddr(p)) {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(first, bits)
		out = append(out, p)
		next := LastAddr(p).Next()
		if !next.IsValid() {
			break // the range ended at the family's last address
		}
		first = next
	}
	return out
}

// LastAddr returns the last address of a prefix.
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
