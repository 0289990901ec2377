package userspace

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// cut splits a complete super-segment with the segmenter, as the sending
// side does, and returns the segments.
func cut(t testing.TB, s tcpSeg, mtu int) [][]byte {
	t.Helper()
	pkt := tcpPacket(s, true)
	ipLen, gso := 20, uint8(vnetGSOTCPv4)
	if s.src.Is6() {
		ipLen, gso = 40, vnetGSOTCPv6
	}
	h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: gso, gsoSize: uint16(mtu - ipLen - 20 - len(s.opts)), csumStart: uint16(ipLen), csumOffset: 16}
	var sg segmenter
	if err := sg.init(pkt, &h, mtu); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for !sg.done() {
		b := make([]byte, mtu)
		out = append(out, b[:sg.next(b)])
	}
	return out
}

// TestCoalescer: the segments of a super-segment, cut and coalesced again,
// make the original back (IPv4 and IPv6): one packet with a valid IPv4
// header checksum, its TCP checksum partial (pseudo-header sum) so that
// completing it as the kernel will gives a checksum that verifies, and a
// vnet header asking for GSO at the first segment's size.
func TestCoalescer(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, v6 := range []bool{false, true} {
		ss := superSegment(v6, randBytes(r, 20000), tcpACK|tcpPSH)
		segs := cut(t, ss, 1400)
		c := newCoalescer(64, 4)
		for _, s := range segs {
			c.add(s)
		}
		if len(c.items) != 1 || c.items[0].segs != len(segs) {
			t.Fatalf("v6=%v: %d items (first of %d segments), want 1 of %d", v6, len(c.items), c.items[0].segs, len(segs))
		}
		it := &c.items[0]
		h := it.finish()
		ipLen, gso := 20, uint8(vnetGSOTCPv4)
		if v6 {
			ipLen, gso = 40, vnetGSOTCPv6
		}
		hdrLen := ipLen + 32
		if h != (vnetHdr{flags: vnetFlagNeedsCsum, gsoType: gso, hdrLen: uint16(hdrLen), gsoSize: uint16(1400 - hdrLen), csumStart: uint16(ipLen), csumOffset: 16}) {
			t.Errorf("v6=%v: vnet header %+v", v6, h)
		}
		if !v6 && csumFold(csumAdd(0, it.pkt[:20])) != 0xffff {
			t.Error("IPv4 header checksum")
		}
		want := tcpPacket(ss, true)
		if !v6 {
			// The IPv4 ID is the first segment's (the original's).
			binary.BigEndian.PutUint16(want[4:6], ss.id)
		}
		if !bytes.Equal(it.pkt, want) {
			t.Fatalf("v6=%v: coalesced packet differs from the original super-segment", v6)
		}
		if err := completeChecksum(it.pkt, &h); err != nil || !tcpChecksumOK(it.pkt) {
			t.Errorf("v6=%v: completed checksum does not verify (%v)", v6, err)
		}
	}
}

// TestCoalescerRefuses: what Linux GRO would not join stays apart, and
// every packet is written once, in order within its flow.
func TestCoalescerRefuses(t *testing.T) {
	src, dst := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1")
	seg := func(seq uint32, n int, f func(s *tcpSeg)) []byte {
		s := tcpSeg{src: src, dst: dst, seq: seq, ack: 9, flags: tcpACK, id: 1, window: 100, opts: timestamps, payload: make([]byte, n)}
		if f != nil {
			f(&s)
		}
		return tcpPacket(s, false)
	}
	same := func(s *tcpSeg) {}
	for _, c := range []struct {
		name string
		pkts [][]byte
		segs []int // per written packet
	}{
		{"consecutive", [][]byte{seg(0, 1000, nil), seg(1000, 1000, nil), seg(2000, 500, nil)}, []int{3}},
		{"after a short segment", [][]byte{seg(0, 1000, nil), seg(1000, 500, nil), seg(1500, 500, nil)}, []int{2, 1}},
		{"after PSH", [][]byte{seg(0, 1000, nil), seg(1000, 1000, func(s *tcpSeg) { s.flags |= tcpPSH }), seg(2000, 1000, nil)}, []int{2, 1}},
		{"a longer segment", [][]byte{seg(0, 500, nil), seg(500, 1000, nil)}, []int{1, 1}},
		{"a gap", [][]byte{seg(0, 1000, nil), seg(2000, 1000, nil)}, []int{1, 1}},
		{"reordered", [][]byte{seg(1000, 1000, nil), seg(0, 1000, nil)}, []int{1, 1}},
		{"another ack", [][]byte{seg(0, 1000, nil), seg(1000, 1000, func(s *tcpSeg) { s.ack = 10 })}, []int{1, 1}},
		{"other options", [][]byte{seg(0, 1000, nil), seg(1000, 1000, func(s *tcpSeg) { s.opts = []byte{1, 1, 8, 10, 0, 0, 1, 3, 0, 0, 3, 4} })}, []int{1, 1}},
		{"no options", [][]byte{seg(0, 1000, nil), seg(1000, 1000, func(s *tcpSeg) { s.opts = nil })}, []int{1, 1}},
		{"SYN", [][]byte{seg(0, 1000, func(s *tcpSeg) { s.flags |= tcpSYN }), seg(1000, 1000, nil)}, []int{1, 1}},
		{"FIN", [][]byte{seg(0, 1000, nil), seg(1000, 1000, func(s *tcpSeg) { s.flags |= tcpFIN })}, []int{1, 1}},
		{"URG", [][]byte{seg(0, 1000, nil), seg(1000, 1000, func(s *tcpSeg) { s.flags |= tcpURG })}, []int{1, 1}},
		{"no payload", [][]byte{seg(0, 0, nil), seg(0, 1000, nil)}, []int{1, 1}},
		{"another source", [][]byte{seg(0, 1000, nil), seg(1000, 1000, func(s *tcpSeg) { s.src = netip.MustParseAddr("10.1.0.2") })}, []int{1, 1}},
		{"window update", [][]byte{seg(0, 1000, nil), seg(1000, 1000, func(s *tcpSeg) { s.window = 200 })}, []int{2}},
		{"same", [][]byte{seg(0, 1000, same)}, []int{1}},
	} {
		co := newCoalescer(64, 4)
		for _, p := range c.pkts {
			co.add(p)
		}
		var got []int
		for i := range co.items {
			got = append(got, co.items[i].segs)
			co.items[i].finish()
		}
		for i := range got {
			got[i] = max(got[i], 1)
		}
		if !equalInts(got, c.segs) {
			t.Errorf("%s: written as %v, want %v", c.name, got, c.segs)
		}
	}

	// Checksums: a segment that does not verify is left for the kernel
	// to drop, not joined (joined, its checksum would be recomputed).
	bad := seg(1000, 1000, nil)
	bad[len(bad)-1] ^= 1
	co := newCoalescer(64, 4)
	co.add(seg(0, 1000, nil))
	co.add(bad)
	if len(co.items) != 2 {
		t.Errorf("a segment with a bad TCP checksum was joined")
	}
	badIP := seg(1000, 1000, nil)
	badIP[8]--
	co.reset()
	co.add(seg(0, 1000, nil))
	co.add(badIP)
	if len(co.items) != 2 {
		t.Errorf("a segment with a bad IPv4 header checksum was joined")
	}

	// Two flows interleaved are each joined; other packets keep their place.
	other := func(s *tcpSeg) { s.src = netip.MustParseAddr("10.1.0.2") }
	icmp := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1, 8, 0, 0, 0, 0, 0, 0, 0}
	co.reset()
	for _, p := range [][]byte{seg(0, 1000, nil), seg(0, 1000, other), icmp, seg(1000, 1000, nil), seg(1000, 1000, other)} {
		co.add(p)
	}
	if len(co.items) != 3 || co.items[0].segs != 2 || co.items[1].segs != 2 || !bytes.Equal(co.items[2].pkt, icmp) {
		t.Errorf("interleaved flows: %d items", len(co.items))
	}

	// Without a free buffer, the batch is to be written first: the
	// segment then starts the next one.
	co = newCoalescer(64, 1)
	var written []int
	for i := range 4 {
		for _, p := range [][]byte{seg(uint32(i*1000), 1000, nil), seg(uint32(i*1000), 1000, other)} {
			if !co.add(p) {
				for j := range co.items {
					written = append(written, co.items[j].segs)
				}
				co.reset()
				if !co.add(p) {
					t.Fatal("refused by an empty batch")
				}
			}
		}
	}
	for j := range co.items {
		written = append(written, co.items[j].segs)
	}
	// A0 B0 A1(joins A0) | B1 A2 B2(joins B1) | A3 B3.
	if !equalInts(written, []int{2, 1, 2, 1, 1, 1}) {
		t.Errorf("with one buffer: written as %v", written)
	}
	// Without any buffer, nothing is joined and nothing waits.
	co = newCoalescer(64, 0)
	for i := range 3 {
		if !co.add(seg(uint32(i*1000), 1000, nil)) {
			t.Fatal("a coalescer without buffers asked to be written")
		}
	}
	if len(co.items) != 3 {
		t.Errorf("without buffers: %d items", len(co.items))
	}

	// A coalesced packet stays within 64 KiB.
	co = newCoalescer(128, 4)
	for i := range 70 {
		co.add(seg(uint32(i*1000), 1000, nil))
	}
	for i := range co.items {
		if len(co.items[i].pkt) > groMax {
			t.Errorf("item %d: %d octets", i, len(co.items[i].pkt))
		}
	}
	if len(co.items) != 2 || co.items[0].segs+co.items[1].segs != 70 {
		t.Errorf("70 segments as %d items", len(co.items))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCoalescerMalformed: arbitrary bytes never panic the coalescer.
func TestCoalescerMalformed(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	base := cut(t, superSegment(false, make([]byte, 4000), tcpACK), 1400)
	base6 := cut(t, superSegment(true, make([]byte, 4000), tcpACK), 1400)
	co := newCoalescer(256, 4)
	for range 20000 {
		src := base
		if r.IntN(2) == 0 {
			src = base6
		}
		p := bytes.Clone(src[r.IntN(len(src))])
		p = p[:r.IntN(len(p)+1)]
		if len(p) > 0 && r.IntN(2) == 0 {
			p[r.IntN(len(p))] = byte(r.Uint32())
		}
		if co.full() {
			for i := range co.items {
				co.items[i].finish()
			}
			co.reset()
		}
		co.add(p)
	}
}

// TestCoalescerAllocs: adding and finishing allocate nothing.
func TestCoalescerAllocs(t *testing.T) {
	segs := cut(t, superSegment(false, make([]byte, 60000), tcpACK), 1400)
	co := newCoalescer(64, 4)
	if n := testing.AllocsPerRun(100, func() {
		for _, s := range segs {
			co.add(s)
		}
		for i := range co.items {
			co.items[i].finish()
		}
		co.reset()
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// BenchmarkCoalescer joins the 49 segments of a 64 KiB TCP super-segment.
func BenchmarkCoalescer(b *testing.B) {
	segs := cut(b, superSegment(false, make([]byte, 65535-52), tcpACK), 1400)
	co := newCoalescer(64, 4)
	b.SetBytes(65535)
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range segs {
			co.add(s)
		}
		for i := range co.items {
			co.items[i].finish()
		}
		co.reset()
	}
}
