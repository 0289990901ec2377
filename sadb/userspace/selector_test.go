package userspace

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/iked/iked/ipsec"
)

func TestRangePrefixes(t *testing.T) {
	for _, c := range []struct {
		start, end string
		want       []string
	}{
		{"10.2.0.0", "10.2.0.255", []string{"10.2.0.0/24"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"10.0.0.1", "10.0.0.6", []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"::/0"}},
		{"2001:db8::", "2001:db8::ffff", []string{"2001:db8::/112"}},
	} {
		got, err := rangePrefixes(netip.MustParseAddr(c.start), netip.MustParseAddr(c.end))
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if err != nil || !slices.Equal(gs, c.want) {
			t.Errorf("%s-%s: %v %v, want %v", c.start, c.end, gs, err, c.want)
		}
	}
}

// TestRoutesAvoidPeer: a remote selector covering the peer is routed
// except for the peer's own address, so IKE and ESP keep their route.
func TestRoutesAvoidPeer(t *testing.T) {
	peer := netip.MustParseAddr("192.0.2.2")
	ts := []ipsec.TrafficSelector{{Type: ipsec.TSIPv4AddrRange, StartAddr: netip.MustParseAddr("0.0.0.0"), EndAddr: netip.MustParseAddr("255.255.255.255"), EndPort: 0xffff}}
	ps, err := routesFor(ts, peer)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 32 {
		t.Fatalf("%d prefixes: %v", len(ps), ps)
	}
	covered := 0.0
	for _, p := range ps {
		if p.Contains(peer) {
			t.Fatalf("%s covers the peer", p)
		}
		covered += 1 / float64(uint64(1)<<p.Bits())
	}
	if want := 1 - 1.0/(1<<32); covered != want {
		t.Fatalf("prefixes cover %v of the space, want %v", covered, want)
	}
	for _, a := range []string{"192.0.2.1", "192.0.2.3", "8.8.8.8", "0.0.0.0", "255.255.255.255"} {
		if !slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr(a)) }) {
			t.Errorf("%s not routed", a)
		}
	}
	ps, _ = routesFor([]ipsec.TrafficSelector{{StartAddr: netip.MustParseAddr("10.2.0.0"), EndAddr: netip.MustParseAddr("10.2.0.255")}}, peer)
	if len(ps) != 1 || ps[0] != netip.MustParsePrefix("10.2.0.0/24") {
		t.Fatalf("unrelated selector changed: %v", ps)
	}
}

func TestParseFlowAndMatch(t *testing.T) {
	// IPv4 UDP 10.1.0.1:1234 -> 10.2.0.1:53
	p := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1, 0x04, 0xd2, 0, 53, 0, 8, 0, 0}
	var f flow
	if err := parseFlow(p, &f); err != nil {
		t.Fatal(err)
	}
	if f.src != netip.MustParseAddr("10.1.0.1") || f.dst != netip.MustParseAddr("10.2.0.1") || f.proto != 17 || f.srcPort != 1234 || f.dstPort != 53 || f.opaque {
		t.Fatalf("%+v", f)
	}
	ts := func(a, b string, proto uint8, lo, hi uint16) []ipsec.TrafficSelector {
		return []ipsec.TrafficSelector{{IPProtocol: proto, StartAddr: netip.MustParseAddr(a), EndAddr: netip.MustParseAddr(b), StartPort: lo, EndPort: hi}}
	}
	if !tsMatch(ts("10.2.0.0", "10.2.0.255", 0, 0, 0xffff), f.dst, f.proto, f.dstPort, f.opaque) {
		t.Error("any-port selector")
	}
	if !tsMatch(ts("10.2.0.1", "10.2.0.1", 17, 53, 53), f.dst, f.proto, f.dstPort, f.opaque) {
		t.Error("udp/53 selector")
	}
	if tsMatch(ts("10.2.0.1", "10.2.0.1", 6, 0, 0xffff), f.dst, f.proto, f.dstPort, f.opaque) {
		t.Error("tcp selector matched udp")
	}
	if tsMatch(ts("10.3.0.0", "10.3.0.255", 0, 0, 0xffff), f.dst, f.proto, f.dstPort, f.opaque) {
		t.Error("other subnet matched")
	}
	p[6] = 0x00
	p[7] = 0x10 // a non-first fragment: ports unknown
	_ = parseFlow(p, &f)
	if !f.opaque || tsMatch(ts("10.2.0.1", "10.2.0.1", 17, 53, 53), f.dst, f.proto, f.dstPort, f.opaque) {
		t.Error("fragment matched a port selector")
	}
}
