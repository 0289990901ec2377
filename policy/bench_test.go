package policy

import (
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkDecide: deciding one packet against a policy of n host rules
// plus the built-in ones (what ikectl peers and acquires cost; the data
// plane itself runs the compiled nftables or XFRM rules).
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{0, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			p, _ := Builtin(ServerRequestSecurity, []string{"psk"}, nil)
			for i := range n {
				host := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
				p.Rules = append(p.Rules, &Rule{Name: fmt.Sprint(i), Action: Permit, Filters: &FilterList{Filters: []Filter{
					{Src: Address{Kind: MyAddress}, Dst: Address{Kind: Host, Prefix: netip.PrefixFrom(host, 32)}, Protocol: TCP, DstPort: 80, Mirrored: true}}}})
			}
			pkt := Packet{Src: hostA, Dst: hostB, Protocol: TCP, SrcPort: 40000, DstPort: 443}
			b.ReportAllocs()
			for b.Loop() {
				if d := p.Decide(pkt, isA); d.Rule == nil {
					b.Fatal("no rule")
				}
			}
		})
	}
}
