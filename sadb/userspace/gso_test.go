package userspace

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// tcpSeg describes a TCP packet for tcpPacket.
type tcpSeg struct {
	src, dst netip.Addr
	seq, ack uint32
	flags    byte
	id       uint16
	window   uint16
	opts     []byte // a multiple of 4 octets
	payload  []byte
}

// tcpPacket builds an IPv4 or IPv6 TCP packet. With partial, the TCP
// checksum holds the pseudo-header sum only, as the kernel leaves it for
// checksum offload; otherwise it is complete.
func tcpPacket(s tcpSeg, partial bool) []byte {
	ipLen := 20
	if s.src.Is6() {
		ipLen = 40
	}
	tcpLen := 20 + len(s.opts) + len(s.payload)
	p := make([]byte, ipLen+tcpLen)
	if s.src.Is6() {
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:6], uint16(tcpLen))
		p[6], p[7] = 6, 64
		copy(p[8:24], s.src.AsSlice())
		copy(p[24:40], s.dst.AsSlice())
	} else {
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
		binary.BigEndian.PutUint16(p[4:6], s.id)
		p[6] = 0x40 // DF
		p[8], p[9] = 64, 6
		copy(p[12:16], s.src.AsSlice())
		copy(p[16:20], s.dst.AsSlice())
		ipv4HeaderChecksum(p[:20])
	}
	th := p[ipLen:]
	binary.BigEndian.PutUint16(th[0:2], 40000)
	binary.BigEndian.PutUint16(th[2:4], 5201)
	binary.BigEndian.PutUint32(th[4:8], s.seq)
	binary.BigEndian.PutUint32(th[8:12], s.ack)
	th[12] = byte((20+len(s.opts))/4) << 4
	th[13] = s.flags
	binary.BigEndian.PutUint16(th[14:16], s.window)
	copy(th[20:], s.opts)
	copy(th[20+len(s.opts):], s.payload)
	acc := pseudoSum(p[12:16], p[16:20], 6, tcpLen)
	if s.src.Is6() {
		acc = pseudoSum(p[8:24], p[24:40], 6, tcpLen)
	}
	if partial {
		binary.BigEndian.PutUint16(th[16:18], csumFold(acc))
	} else {
		binary.BigEndian.PutUint16(th[16:18], ^csumFold(csumAdd(acc, th)))
	}
	return p
}

// tcpChecksumOK checks the TCP checksum of a complete IPv4 or IPv6 packet.
func tcpChecksumOK(p []byte) bool {
	if p[0]>>4 == 6 {
		return csumFold(csumAdd(pseudoSum(p[8:24], p[24:40], 6, len(p)-40), p[40:])) == 0xffff
	}
	return csumFold(csumAdd(pseudoSum(p[12:16], p[16:20], 6, len(p)-20), p[20:])) == 0xffff
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// timestamps is a TCP timestamp option, as Linux sends it (NOP, NOP, TS).
var timestamps = []byte{1, 1, 8, 10, 0, 0, 1, 2, 0, 0, 3, 4}

func superSegment(v6 bool, payload []byte, flags byte) tcpSeg {
	s := tcpSeg{src: netip.MustParseAddr("10.1.0.1"), dst: netip.MustParseAddr("10.2.0.1"), seq: 0xfffff000, ack: 77,
		flags: flags, id: 0xfffe, window: 501, opts: timestamps, payload: payload}
	if v6 {
		s.src, s.dst = netip.MustParseAddr("fd00:1::1"), netip.MustParseAddr("fd00:2::1")
	}
	return s
}

// TestSegmenter: a TCP super-segment as TSO hands it over (partial
// checksum, IPv4 and IPv6) is cut into MTU-sized segments whose lengths,
// IPv4 IDs and header checksums, sequence numbers (wrapping), flags and
// TCP checksums are each right, and whose payloads add up to the original.
func TestSegmenter(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const mtu = 1400
	for _, v6 := range []bool{false, true} {
		for _, size := range []int{0, 1, 1000, 5000, 65535 - 72} {
			payload := randBytes(r, size)
			ss := superSegment(v6, payload, tcpACK|tcpPSH|tcpCWR|tcpFIN)
			pkt := tcpPacket(ss, true)
			ipLen := 20
			gso := uint8(vnetGSOTCPv4)
			if v6 {
				ipLen, gso = 40, vnetGSOTCPv6
			}
			hdrLen := ipLen + 20 + len(timestamps)
			mss := mtu - hdrLen
			h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: gso, hdrLen: uint16(hdrLen), gsoSize: uint16(mss), csumStart: uint16(ipLen), csumOffset: 16}
			var sg segmenter
			if err := sg.init(pkt, &h, mtu); err != nil {
				t.Fatalf("v6=%v size %d: %v", v6, size, err)
			}
			want := max(1, (size+mss-1)/mss)
			if sg.segments() != want {
				t.Fatalf("v6=%v size %d: %d segments announced, want %d", v6, size, sg.segments(), want)
			}
			var got []byte
			i := 0
			for ; !sg.done(); i++ {
				dst := make([]byte, mtu)
				seg := dst[:sg.next(dst)]
				n := min(mss, size-i*mss)
				if len(seg) != hdrLen+n || len(seg) > mtu {
					t.Fatalf("v6=%v size %d segment %d: %d octets, want %d", v6, size, i, len(seg), hdrLen+n)
				}
				if v6 {
					if int(binary.BigEndian.Uint16(seg[4:6])) != len(seg)-40 {
						t.Errorf("segment %d: IPv6 payload length %d", i, binary.BigEndian.Uint16(seg[4:6]))
					}
				} else {
					if int(binary.BigEndian.Uint16(seg[2:4])) != len(seg) || binary.BigEndian.Uint16(seg[4:6]) != 0xfffe+uint16(i) || csumFold(csumAdd(0, seg[:20])) != 0xffff {
						t.Errorf("segment %d: IPv4 length %d, ID %#x, or header checksum wrong", i, binary.BigEndian.Uint16(seg[2:4]), binary.BigEndian.Uint16(seg[4:6]))
					}
				}
				th := seg[ipLen:]
				if seq := binary.BigEndian.Uint32(th[4:8]); seq != ss.seq+uint32(i*mss) {
					t.Errorf("segment %d: seq %#x, want %#x", i, seq, ss.seq+uint32(i*mss))
				}
				last := i == want-1
				wantFlags := byte(tcpACK)
				if i == 0 {
					wantFlags |= tcpCWR
				}
				if last {
					wantFlags |= tcpPSH | tcpFIN
				}
				if th[13] != wantFlags {
					t.Errorf("segment %d of %d: flags %#x, want %#x", i, want, th[13], wantFlags)
				}
				if !tcpChecksumOK(seg) {
					t.Errorf("v6=%v size %d segment %d: bad TCP checksum", v6, size, i)
				}
				if !bytes.Equal(th[20:hdrLen-ipLen], timestamps) {
					t.Errorf("segment %d: options %x", i, th[20:hdrLen-ipLen])
				}
				got = append(got, seg[hdrLen:]...)
			}
			if i != want || !bytes.Equal(got, payload) {
				t.Fatalf("v6=%v size %d: %d segments, payload intact %v", v6, size, i, bytes.Equal(got, payload))
			}
		}
	}
}

// TestSegmenterRefuses: vnet headers and packets the splitter cannot
// trust are refused (and so counted and dropped), never a panic.
func TestSegmenterRefuses(t *testing.T) {
	good := tcpPacket(superSegment(false, make([]byte, 3000), tcpACK), true)
	good6 := tcpPacket(superSegment(true, make([]byte, 3000), tcpACK), true)
	h4 := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, hdrLen: 52, gsoSize: 1348, csumStart: 20, csumOffset: 16}
	h6 := h4
	h6.gsoType, h6.csumStart = vnetGSOTCPv6, 40
	with := func(p []byte, f func(p []byte)) []byte { q := bytes.Clone(p); f(q); return q }
	hdr := func(h vnetHdr, f func(h *vnetHdr)) vnetHdr { f(&h); return h }
	for _, c := range []struct {
		name string
		pkt  []byte
		h    vnetHdr
		max  int
	}{
		{"empty", nil, h4, 1400},
		{"no gso size", good, hdr(h4, func(h *vnetHdr) { h.gsoSize = 0 }), 1400},
		{"UDP GSO", good, hdr(h4, func(h *vnetHdr) { h.gsoType = 5 }), 1400},
		{"ECN bit", good, hdr(h4, func(h *vnetHdr) { h.gsoType |= 0x80 }), 1400},
		{"no checksum offload", good, hdr(h4, func(h *vnetHdr) { h.flags = 0 }), 1400},
		{"checksum elsewhere", good, hdr(h4, func(h *vnetHdr) { h.csumStart = 24 }), 1400},
		{"checksum offset", good, hdr(h4, func(h *vnetHdr) { h.csumOffset = 6 }), 1400},
		{"segment above MTU", good, hdr(h4, func(h *vnetHdr) { h.gsoSize = 1349 }), 1400},
		{"IPv6 packet as TCPv4", good6, h4, 1400},
		{"IPv4 packet as TCPv6", good, h6, 1400},
		{"truncated IPv4", good[:19], h4, 1400},
		{"truncated TCP", good[:30], h4, 1400},
		{"truncated TCP options", good[:45], h4, 1400},
		{"short IHL", with(good, func(p []byte) { p[0] = 0x44 }), h4, 1400},
		{"long IHL", with(good, func(p []byte) { p[0] = 0x4f }), h4, 1400},
		{"fragment", with(good, func(p []byte) { p[6] |= 0x20 }), h4, 1400},
		{"UDP", with(good, func(p []byte) { p[9] = 17 }), h4, 1400},
		{"TCP data offset 4", with(good, func(p []byte) { p[32] = 4 << 4 }), h4, 1400},
		{"TCP data offset past the packet", with(good[:60], func(p []byte) { p[32] = 15 << 4 }), h4, 1400},
		{"IPv6 extension header", with(good6, func(p []byte) { p[6] = 0 }), h6, 1400},
		{"truncated IPv6", good6[:39], h6, 1400},
	} {
		var sg segmenter
		if err := sg.init(c.pkt, &c.h, c.max); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	// Whatever the bytes, init either refuses or the segments fit.
	r := rand.New(rand.NewPCG(5, 6))
	dst := make([]byte, 1400)
	for range 20000 {
		p := bytes.Clone(good)
		if r.IntN(2) == 0 {
			p = bytes.Clone(good6)
		}
		p = p[:r.IntN(len(p)+1)]
		for range 3 {
			if len(p) > 0 {
				p[r.IntN(len(p))] = byte(r.Uint32())
			}
		}
		var raw [vnetHdrLen]byte
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		h := h4
		if r.IntN(2) == 0 {
			h.decode(raw[:])
		} else if r.IntN(2) == 0 {
			h = h6
		}
		var sg segmenter
		if sg.init(p, &h, len(dst)) == nil {
			for k := 0; !sg.done(); k++ {
				if k > len(p) {
					t.Fatal("the segmenter does not end")
				}
				sg.next(dst)
			}
		}
	}
}

// TestCompleteChecksum: a partial checksum (pseudo-header sum in the
// field) is completed to one that verifies; offsets outside the packet
// are refused.
func TestCompleteChecksum(t *testing.T) {
	p := tcpPacket(superSegment(false, []byte("partial checksum, odd length"), tcpACK), true)
	if tcpChecksumOK(p) {
		t.Fatal("the partial checksum already verifies")
	}
	if err := completeChecksum(p, &vnetHdr{flags: vnetFlagNeedsCsum, csumStart: 20, csumOffset: 16}); err != nil || !tcpChecksumOK(p) {
		t.Fatalf("completed: %v, verifies %v", err, tcpChecksumOK(p))
	}
	for _, h := range []vnetHdr{{csumStart: uint16(len(p))}, {csumStart: 20, csumOffset: uint16(len(p) - 21)}, {csumStart: 0xffff, csumOffset: 0xffff}} {
		if completeChecksum(p, &h) == nil {
			t.Errorf("%+v accepted", h)
		}
	}
}

// TestSegmenterAllocs: cutting allocates nothing.
func TestSegmenterAllocs(t *testing.T) {
	pkt := tcpPacket(superSegment(false, make([]byte, 60000), tcpACK), true)
	h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, gsoSize: 1348, csumStart: 20, csumOffset: 16}
	dst := make([]byte, 1400)
	var sg segmenter
	if n := testing.AllocsPerRun(100, func() {
		_ = sg.init(pkt, &h, 1400)
		for !sg.done() {
			sg.next(dst)
		}
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// BenchmarkSegmenter cuts a 64 KiB super-segment into 1400-octet packets.
func BenchmarkSegmenter(b *testing.B) {
	pkt := tcpPacket(superSegment(false, make([]byte, 65535-52), tcpACK), true)
	h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, gsoSize: 1348, csumStart: 20, csumOffset: 16}
	dst := make([]byte, 1400)
	var sg segmenter
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		_ = sg.init(pkt, &h, 1400)
		for !sg.done() {
			sg.next(dst)
		}
	}
}
