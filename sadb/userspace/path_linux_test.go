//go:build linux

package userspace

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iked/iked/sadb"
)

// offline returns a Backend with tables but no devices, for the packet
// path's pure parts: lookup, seal, open, selectors, counters.
func offline(t testing.TB) *Backend {
	b := &Backend{events: make(chan sadb.Event, 16), kick: make(chan struct{}, 1), udp: &udpSock{}, sas: map[sadb.ID]*sa{}}
	b.cfg.setDefaults()
	b.tables.Store(&tables{in: map[uint64]*sa{}})
	return b
}

func (b *Backend) install(t testing.TB, in *sadb.SA) *sa {
	s, err := b.newSA(in)
	if err != nil {
		t.Fatal(err)
	}
	b.sas[s.id] = s
	b.rebuild()
	return s
}

// TestPacketPathAllocs: in steady state, sealing a packet from the TUN
// side and opening it on the other side allocates nothing.
func TestPacketPathAllocs(t *testing.T) {
	for _, gcm := range []bool{true, false} {
		a, b := offline(t), offline(t)
		out, in := saPair(0x1001, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", gcm)
		sOut := a.install(t, out)
		sIn := b.install(t, in)
		inner := icmpEcho(netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1"))
		buf := make([]byte, headRoom+a.cfg.MTU+tailRoom)
		tx := newTxBatch(4, false)
		w := newTUNWriter(b, 4, false)
		var f flow
		step := func() {
			copy(buf[headRoom:], inner)
			a.sealOne(a.tables.Load(), &f, buf, len(inner), tx)
			if tx.n != 1 {
				t.Fatalf("not sealed: %+v", a.Stats())
			}
			start := headRoom - sOut.esp.HeaderLen()
			pkt := buf[start : start+int(tx.iovs[0].Len)]
			tx.reset()
			b.openOne(sIn, pkt, w)
			if len(w.pkts) != 1 || string(w.pkts[0]) != string(inner) {
				t.Fatalf("not opened: %+v", b.Stats())
			}
			w.pkts = w.pkts[:0]
		}
		step()
		if n := testing.AllocsPerRun(1000, step); n != 0 {
			t.Errorf("gcm=%v: %v allocations per packet", gcm, n)
		}
		if c, _ := b.Counters(in.ID()); c.Packets != 1002 {
			t.Errorf("counted %d packets", c.Packets)
		}
	}
}

// TestLookupOut: policies decide before selectors, by priority; Protect
// picks its ReqID's newest SA; Drop and Pass drop.
func TestLookupOut(t *testing.T) {
	b := offline(t)
	old, _ := saPair(0x1001, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", true)
	old.ReqID = 5
	newer := *old
	newer.SPI = 0x1002
	other, _ := saPair(0x1003, "192.0.2.1", "192.0.2.3", "10.1.0.0/24", "10.3.0.0/24", true)
	sOld := b.install(t, old)
	sNew := b.install(t, &newer)
	sOther := b.install(t, other)
	sNew.installed = sOld.installed.Add(1)
	b.rebuild()
	f := flow{src: netip.MustParseAddr("10.1.0.1"), dst: netip.MustParseAddr("10.2.0.9"), proto: 6, srcPort: 1000, dstPort: 80}
	if s, p := b.tables.Load().lookupOut(&f); s != sNew || p != nil {
		t.Fatalf("by selectors: %v %v", s, p)
	}
	f.dst = netip.MustParseAddr("10.3.0.9")
	if s, _ := b.tables.Load().lookupOut(&f); s != sOther {
		t.Fatal("second SA")
	}
	f.dst = netip.MustParseAddr("10.9.0.9")
	if s, p := b.tables.Load().lookupOut(&f); s != nil || p != nil {
		t.Fatal("unmatched flow found an SA")
	}
	b.policies = map[sadb.PolicyID]*policy{}
	add := func(p sadb.Policy) *policy {
		np := &policy{p: p}
		b.policies[p.ID()] = np
		b.rebuild()
		return np
	}
	all := netip.MustParsePrefix("10.0.0.0/8")
	drop := add(sadb.Policy{Selector: sadb.Selector{Src: all, Dst: netip.MustParsePrefix("10.2.0.0/24"), Proto: 6, DstPort: 80}, Direction: sadb.Out, Action: sadb.Drop, Priority: 10})
	protect := add(sadb.Policy{Selector: sadb.Selector{Src: all, Dst: netip.MustParsePrefix("10.2.0.0/16")}, Direction: sadb.Out, Action: sadb.Protect, ReqID: 5, Priority: 20})
	f.dst = netip.MustParseAddr("10.2.0.9")
	if s, p := b.tables.Load().lookupOut(&f); s != nil || p != drop {
		t.Fatal("drop policy")
	}
	f.dstPort = 443
	if s, p := b.tables.Load().lookupOut(&f); s != sNew || p != protect {
		t.Fatal("protect policy")
	}
	f.dst = netip.MustParseAddr("10.2.1.1") // in the policy, outside the SAs' selectors
	if s, p := b.tables.Load().lookupOut(&f); s != nil || p != protect {
		t.Fatal("protect policy without a matching SA")
	}
}

// TestOffloadPathAllocs: in steady state, cutting a TCP super-segment from
// a TUN device with offloads, sealing the segments, opening them on the
// other side and joining them again allocates nothing; what is joined is
// the super-segment sent.
func TestOffloadPathAllocs(t *testing.T) {
	a, b := offline(t), offline(t)
	a.tun, b.tun = &tun{vnet: true, tso: true}, &tun{vnet: true, tso: true}
	out, in := saPair(0x1001, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", true)
	a.install(t, out)
	sIn := b.install(t, in)
	ss := superSegment(false, make([]byte, 30000), tcpACK)
	super := tcpPacket(ss, true)
	h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, gsoSize: uint16(a.cfg.MTU - 52), csumStart: 20, csumOffset: 16}
	segs := make([][]byte, 64)
	for i := range segs {
		segs[i] = make([]byte, headRoom+a.cfg.MTU+tailRoom)
	}
	tx := newTxBatch(64, true)
	w := newTUNWriter(b, 64, true)
	var f flow
	var sg segmenter
	step := func() {
		if err := sg.init(super, &h, a.cfg.MTU); err != nil {
			t.Fatal(err)
		}
		n := 0
		for ; !sg.done(); n++ {
			k := sg.next(segs[n][headRoom:])
			a.sealOne(a.tables.Load(), &f, segs[n], k, tx)
		}
		if tx.k != n || tx.n != 1 {
			t.Fatalf("%d segments sealed into %d datagrams in %d messages", n, tx.k, tx.n)
		}
		for i := range tx.k {
			b.openOne(sIn, unsafe.Slice(tx.iovs[i].Base, tx.iovs[i].Len), w)
		}
		tx.reset()
		if len(w.co.items) != 1 || w.co.items[0].segs != n {
			t.Fatalf("opened into %d packets", len(w.co.items))
		}
		it := &w.co.items[0]
		it.finish()
		if len(it.pkt) != len(super) || !bytes.Equal(it.pkt[20:], super[20:]) {
			t.Fatal("the joined packet is not the super-segment sent")
		}
		w.co.reset()
	}
	step()
	if n := testing.AllocsPerRun(200, step); n != 0 {
		t.Errorf("%v allocations per super-segment", n)
	}
}

// BenchmarkOffloadPath is the userspace work per 64 KiB TCP super-segment
// (MTU 1400, AES-GCM-256): cut, seal, open and join again.
func BenchmarkOffloadPath(b *testing.B) {
	x, y := offline(b), offline(b)
	x.tun, y.tun = &tun{vnet: true, tso: true}, &tun{vnet: true, tso: true}
	out, in := saPair(0x1001, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", true)
	x.install(b, out)
	sIn := y.install(b, in)
	super := tcpPacket(superSegment(false, make([]byte, 65535-52), tcpACK), true)
	h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, gsoSize: uint16(x.cfg.MTU - 52), csumStart: 20, csumOffset: 16}
	segs := make([][]byte, 64)
	for i := range segs {
		segs[i] = make([]byte, headRoom+x.cfg.MTU+tailRoom)
	}
	tx := newTxBatch(64, true)
	w := newTUNWriter(y, 64, true)
	var f flow
	var sg segmenter
	b.SetBytes(int64(len(super)))
	b.ReportAllocs()
	for b.Loop() {
		_ = sg.init(super, &h, x.cfg.MTU)
		for n := 0; !sg.done(); n++ {
			k := sg.next(segs[n][headRoom:])
			x.sealOne(x.tables.Load(), &f, segs[n], k, tx)
		}
		for i := range tx.k {
			y.openOne(sIn, unsafe.Slice(tx.iovs[i].Base, tx.iovs[i].Len), w)
		}
		tx.reset()
		for i := range w.co.items {
			w.co.items[i].finish()
		}
		w.co.reset()
	}
}

// BenchmarkPacketPath is the userspace work per packet without offloads
// (AES-GCM-256): look up, seal, open, check selectors, queue for the TUN
// device.
func BenchmarkPacketPath(b *testing.B) {
	for _, n := range []int{64, 512, 1400} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			x, y := offline(b), offline(b)
			out, in := saPair(0x1001, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", true)
			x.install(b, out)
			sIn := y.install(b, in)
			inner := tcpPacket(tcpSeg{src: netip.MustParseAddr("10.1.0.1"), dst: netip.MustParseAddr("10.2.0.1"), flags: tcpACK, payload: make([]byte, n-40)}, false)
			buf := make([]byte, headRoom+x.cfg.MTU+tailRoom)
			tx := newTxBatch(4, false)
			w := newTUNWriter(y, 4, false)
			var f flow
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf[headRoom:], inner)
				x.sealOne(x.tables.Load(), &f, buf, len(inner), tx)
				y.openOne(sIn, unsafe.Slice(tx.iovs[0].Base, tx.iovs[0].Len), w)
				tx.reset()
				w.pkts = w.pkts[:0]
			}
		})
	}
}

// TestUnjoin: should the TUN device refuse a joined packet, its segments
// are written one by one (with their own checksums, behind empty vnet
// headers) as they arrived, and joining stops.
func TestUnjoin(t *testing.T) {
	b := offline(t)
	b.log = b.cfg.Logger
	b.tun = &tun{vnet: true}
	w := newTUNWriter(b, 8, true)
	segs := cut(t, superSegment(false, make([]byte, 6000), tcpACK|tcpPSH), 1400)
	for _, s := range segs {
		w.co.add(bytes.Clone(s))
	}
	if len(w.co.items) != 1 {
		t.Fatalf("%d items", len(w.co.items))
	}
	it := &w.co.items[0]
	h := it.finish()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	w.unjoin(uintptr(p[1]), &h, it)
	unix.Close(p[1])
	var got []byte
	buf := make([]byte, 1<<16)
	for {
		n, err := unix.Read(p[0], buf)
		if n <= 0 || err != nil {
			break
		}
		got = append(got, buf[:n]...)
	}
	for i, s := range segs {
		if len(got) < vnetHdrLen+len(s) || !bytes.Equal(got[:vnetHdrLen], make([]byte, vnetHdrLen)) || !bytes.Equal(got[vnetHdrLen:vnetHdrLen+len(s)], s) {
			t.Fatalf("segment %d not written back as it arrived", i)
		}
		got = got[vnetHdrLen+len(s):]
	}
	if len(got) != 0 || len(w.co.bufs) != 0 {
		t.Errorf("%d octets more; %d buffers left for joining", len(got), len(w.co.bufs))
	}
	if st := b.Stats(); st.TUNWritten != uint64(len(segs)) || st.TUNWriteErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}
