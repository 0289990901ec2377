package kernel

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// linkStats are an interface's counters (ip -s -j link show).
type linkStats struct{ TxPackets, RxPackets uint64 }

func interfaceStats(t testing.TB, ns *netns, dev string) linkStats {
	t.Helper()
	out := ns.ip(t, "-s", "-j", "link", "show", "dev", dev)
	var links []struct {
		Stats64 struct {
			RX struct{ Packets uint64 } `json:"rx"`
			TX struct{ Packets uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link show %s: %v\n%s", dev, err, out)
	}
	return linkStats{TxPackets: links[0].Stats64.TX.Packets, RxPackets: links[0].Stats64.RX.Packets}
}

// spoke is one peer of the hub in testXfrmInterface.
type spoke struct {
	ns       *netns
	name     string
	ifID     uint32 // the hub's interface for this spoke
	hubAddr  netip.Addr
	addr     netip.Addr
	inner    netip.Addr
	innerNet netip.Prefix
	d        *iked
}

// testXfrmInterface: route-based IPsec. A hub H has two spokes, B and C,
// each behind its own XFRM interface (if_id 1 and 2) and connection
// ("interface:"), both with the traffic selectors 0.0.0.0/0 on both sides:
// two Child SAs whose policies have the same selectors and differ only
// in their interface ID. What is routed into an interface goes through
// its SAs (the kernel's SA counters, the interface's counters and iked's
// agree), what is not (the hosts' own addresses, IKE) stays outside the
// tunnel.
func testXfrmInterface(t *testing.T) {
	h := newNetns(t, "h")
	hubIn := netip.MustParseAddr("10.1.0.1")
	h.ip(t, "addr", "add", "10.1.0.1/32", "dev", "lo")
	spokes := []*spoke{
		{ns: newNetns(t, "b"), name: "B", ifID: 1, hubAddr: netip.MustParseAddr("10.99.0.1"), addr: netip.MustParseAddr("10.99.0.2"),
			inner: netip.MustParseAddr("10.2.0.1"), innerNet: netip.MustParsePrefix("10.2.0.0/24")},
		{ns: newNetns(t, "c"), name: "C", ifID: 2, hubAddr: netip.MustParseAddr("10.99.1.1"), addr: netip.MustParseAddr("10.99.1.2"),
			inner: netip.MustParseAddr("10.3.0.1"), innerNet: netip.MustParsePrefix("10.3.0.0/24")},
	}
	any := []string{"0.0.0.0/0"}
	var hubConns []conn
	var listen []string
	for i, s := range spokes {
		hv, sv := fmt.Sprintf("h%d", i), fmt.Sprintf("s%d", i)
		h.ip(t, "link", "add", hv, "type", "veth", "peer", "name", sv, "netns", s.ns.name)
		h.ip(t, "addr", "add", s.hubAddr.String()+"/24", "dev", hv)
		h.ip(t, "link", "set", hv, "up")
		s.ns.ip(t, "addr", "add", s.addr.String()+"/24", "dev", sv)
		s.ns.ip(t, "addr", "add", s.inner.String()+"/32", "dev", "lo")
		s.ns.ip(t, "link", "set", sv, "up")
		waitUp(t, h, hv)
		waitUp(t, s.ns, sv)
		// The hub's interface for the spoke, and the spoke's own (if_id 9
		// on both spokes: every namespace has its own).
		xi := fmt.Sprintf("ipsec%d", s.ifID)
		h.ip(t, "link", "add", xi, "type", "xfrm", "dev", hv, "if_id", fmt.Sprint(s.ifID))
		h.ip(t, "link", "set", xi, "up")
		h.ip(t, "route", "add", s.innerNet.String(), "dev", xi, "src", hubIn.String())
		s.ns.ip(t, "link", "add", "ipsec9", "type", "xfrm", "dev", sv, "if_id", "9")
		s.ns.ip(t, "link", "set", "ipsec9", "up")
		s.ns.ip(t, "route", "add", "10.1.0.0/24", "dev", "ipsec9", "src", s.inner.String())
		name := strings.ToLower(s.name)
		hubConns = append(hubConns, conn{Name: name, Local: s.hubAddr.String(), Remote: s.addr.String(), LocalID: idA,
			RemoteID: "fqdn:" + name + ".kernel.test", ESP: []string{"aes256gcm16"}, LocalTS: any, RemoteTS: any,
			Extra: []string{fmt.Sprintf("interface: %d", s.ifID)}})
		listen = append(listen, listenOn(s.hubAddr)...)
		s.d = startIked(t, s.ns, s.name, ikedOptions{Listen: listenOn(s.addr), Conns: []conn{{Name: "hub", Local: s.addr.String(), Remote: "%any",
			LocalID: "fqdn:" + name + ".kernel.test", RemoteID: idA, ESP: []string{"aes256gcm16"}, LocalTS: any, RemoteTS: any,
			Extra: []string{"interface: 9"}}}})
	}
	hub := startIked(t, h, "H", ikedOptions{Listen: listen, Conns: hubConns})
	for _, s := range spokes {
		hub.Initiate(strings.ToLower(s.name))
		s.d.established(1)
	}
	sas := hub.SAs()
	if len(sas) != 2 {
		t.Fatalf("hub: %s", describe(sas))
	}
	for _, x := range []struct {
		ns   *netns
		ifID string
	}{{h, "0x1"}, {h, "0x2"}, {spokes[0].ns, "0x9"}} {
		wantPolicies(t, x.ns, "src 0.0.0.0/0 dst 0.0.0.0/0", "dir out", "if_id "+x.ifID)
		wantPolicies(t, x.ns, "src 0.0.0.0/0 dst 0.0.0.0/0", "dir in", "if_id "+x.ifID)
	}
	for i, s := range spokes {
		mustPing(t, h, hubIn, s.inner, 3+i)
		mustPing(t, s.ns, s.inner, hubIn, 2)
	}
	for i, s := range spokes {
		// Requests of both pings' directions, and their replies.
		want := uint64(3 + i + 2)
		var ch *struct{ in, out string }
		for _, sa := range hub.SAs() {
			if sa.Connection == strings.ToLower(s.name) && len(sa.Children) == 1 {
				ch = &struct{ in, out string }{sa.Children[0].SPIIn, sa.Children[0].SPIOut}
				c := sa.Children[0]
				if c.PacketsOut != want || c.PacketsIn != want {
					t.Errorf("hub's Child SA with %s: iked reports %d out, %d in; want %d each", s.name, c.PacketsOut, c.PacketsIn, want)
				}
			}
		}
		if ch == nil {
			t.Fatalf("hub has no Child SA for %s: %s", s.name, describe(hub.SAs()))
		}
		out, in := stateBySPI(t, h, ch.out), stateBySPI(t, h, ch.in)
		wantID := fmt.Sprintf("0x%x", s.ifID)
		if out.IfID != wantID || in.IfID != wantID || out.Packets != want || in.Packets != want {
			t.Errorf("hub's SAs with %s: %v if_id %s, %v if_id %s; want %d packets each, if_id %s", s.name, out, out.IfID, in, in.IfID, want, wantID)
		}
		st := interfaceStats(t, h, fmt.Sprintf("ipsec%d", s.ifID))
		if st.TxPackets != want || st.RxPackets != want {
			t.Errorf("hub's ipsec%d: %d packets sent, %d received; want %d each", s.ifID, st.TxPackets, st.RxPackets, want)
		}
	}
	// The hosts' own addresses are not routed into the interfaces: in
	// clear, outside the SAs, whose counters stay.
	before := map[string]uint64{}
	for _, s := range states(t, h) {
		before[s.SPI] = s.Packets
	}
	mustPing(t, h, spokes[0].hubAddr, spokes[0].addr, 2)
	for _, s := range states(t, h) {
		if before[s.SPI] != s.Packets {
			t.Errorf("a ping outside the interfaces moved SA %s: %d -> %d packets", s.SPI, before[s.SPI], s.Packets)
		}
	}
	// Ending one spoke's connection leaves the other's policies, of the
	// same selectors, in place.
	if out, err := hub.ikectl(60*time.Second, "terminate", "b"); err != nil {
		t.Fatalf("terminate b: %v\n%s", err, out)
	}
	waitFor(t, 60*time.Second, "hub left with C's IKE SA", func() string {
		if sas := hub.SAs(); len(sas) != 1 || sas[0].Connection != "c" {
			return describe(sas)
		}
		return ""
	})
	pol := h.ip(t, "xfrm", "policy")
	if strings.Contains(pol, "if_id 0x1") || !strings.Contains(pol, "if_id 0x2") {
		t.Errorf("after terminating b the hub's policies are:\n%s", pol)
	}
	mustPing(t, h, hubIn, spokes[1].inner, 2)
}
