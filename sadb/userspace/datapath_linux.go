//go:build linux

package userspace

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/userspace/esp"
)

const (
	headRoom = 64 // the largest header: outer IPv4 and AH with a 32-octet ICV
	tailRoom = 64 // the largest ESP trailer: 15 octets of padding, 2, a 32-octet ICV
	// maxDatagram is the receive buffer of the shared socket: IKE messages
	// without IKE fragmentation may use all of a UDP datagram.
	maxDatagram = 65535
)

func closedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed)
}

// tunWriter writes a list of packets to the TUN device; with vnet headers,
// through a coalescer, each behind its vnet header (writev).
type tunWriter struct {
	b    *Backend
	pkts [][]byte
	co   *coalescer // with vnet headers
	i    int
	fn   func(fd uintptr) bool
	iov  [2]unix.Iovec
	hdr  [vnetHdrLen]byte
	// scratch holds the segments of a joined packet the kernel refused.
	scratch []byte
}

// groBufs is how many coalesced packets of 64 KiB a batch may build.
const groBufs = 16

func newTUNWriter(b *Backend, n int, join bool) *tunWriter {
	w := &tunWriter{b: b, pkts: make([][]byte, 0, n)}
	if b.tun != nil && b.tun.vnet {
		bufs := 0
		if join {
			bufs = groBufs
		}
		w.co = newCoalescer(n, bufs)
		w.fn = w.writeVnet
		w.iov[0].Base = &w.hdr[0]
		w.iov[0].SetLen(vnetHdrLen)
	} else {
		w.fn = w.write
	}
	return w
}

// add queues a decrypted inner packet, which must stay unchanged until
// the next flush.
func (w *tunWriter) add(p []byte) {
	if w.co != nil {
		if w.co.full() {
			w.flush()
		}
		if !w.co.add(p) {
			w.flush()
			w.co.add(p)
		}
		return
	}
	if len(w.pkts) == cap(w.pkts) {
		w.flush()
	}
	w.pkts = append(w.pkts, p)
}

func (w *tunWriter) write(fd uintptr) bool {
	for ; w.i < len(w.pkts); w.i++ {
		_, e := rawWrite(fd, w.pkts[w.i])
		switch e {
		case 0:
			w.b.st.tunWritten.Add(1)
		case unix.EAGAIN:
			return false
		case unix.EINTR:
			w.i--
		default:
			w.b.st.tunWriteErrors.Add(1)
		}
	}
	return true
}

func (w *tunWriter) writeVnet(fd uintptr) bool {
	items := w.co.items
	for ; w.i < len(items); w.i++ {
		it := &items[w.i]
		h := it.finish()
		switch e := w.writev(fd, &h, it.pkt); e {
		case 0:
			w.b.st.tunWritten.Add(uint64(max(it.segs, 1)))
			if it.segs > 1 {
				w.b.st.coalesced.Add(uint64(it.segs - 1))
			}
		case unix.EAGAIN:
			return false
		case unix.EINTR:
			w.i--
		default:
			if it.segs > 1 {
				w.unjoin(fd, &h, it)
				continue
			}
			w.b.st.tunWriteErrors.Add(1)
		}
	}
	return true
}

// writev writes pkt behind the vnet header h.
func (w *tunWriter) writev(fd uintptr, h *vnetHdr, pkt []byte) unix.Errno {
	h.encode(w.hdr[:])
	w.iov[1].Base = &pkt[0]
	w.iov[1].SetLen(len(pkt))
	_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), 2)
	return e
}

// unjoin is the way back should the kernel refuse a joined packet: its
// segments are cut again and written one by one, and this writer joins
// no more.
func (w *tunWriter) unjoin(fd uintptr, h *vnetHdr, it *groItem) {
	if len(w.co.bufs) > 0 {
		w.b.log.Warn("the TUN device refused a coalesced TCP packet; received segments are no longer joined")
		w.co.bufs = w.co.bufs[:0]
	}
	if w.scratch == nil {
		w.scratch = make([]byte, groMax)
	}
	var sg segmenter
	if sg.init(it.pkt, h, len(w.scratch)) != nil {
		w.b.st.tunWriteErrors.Add(uint64(it.segs))
		return
	}
	var none vnetHdr
	for !sg.done() {
		k := sg.next(w.scratch)
		for {
			e := w.writev(fd, &none, w.scratch[:k])
			if e == unix.EINTR {
				continue
			}
			if e != 0 {
				w.b.st.tunWriteErrors.Add(1)
			} else {
				w.b.st.tunWritten.Add(1)
			}
			break
		}
	}
}

func (w *tunWriter) flush() {
	if w.co != nil {
		if len(w.co.items) == 0 {
			return
		}
		w.i = 0
		if err := w.b.tun.rc.Write(w.fn); err != nil {
			w.b.st.tunWriteErrors.Add(uint64(len(w.co.items) - w.i))
		}
		w.co.reset()
		return
	}
	if len(w.pkts) == 0 {
		return
	}
	w.i = 0
	if err := w.b.tun.rc.Write(w.fn); err != nil {
		w.b.st.tunWriteErrors.Add(uint64(len(w.pkts) - w.i))
	}
	clear(w.pkts)
	w.pkts = w.pkts[:0]
}

// tunBatch runs one batched read of the TUN device (read sets got and
// rerr); false means the outbound path stops: the device is gone. A read
// error with nothing read is logged, and the batch is empty.
func (b *Backend) tunBatch(read func(fd uintptr) bool, got *int, rerr *unix.Errno) bool {
	if err := b.tun.rc.Read(read); err != nil {
		select {
		case <-b.done: // closing: the TUN went away on purpose
		default:
			if !closedErr(err) {
				b.log.Warn("TUN read failed; outbound path stopped", "err", err)
			}
		}
		return false
	}
	if *rerr != 0 && *got == 0 {
		select {
		case <-b.done:
			return false
		default:
		}
		b.log.Warn("TUN read", "err", *rerr)
	}
	return true
}

// outbound reads packets from the TUN device in batches, seals them and
// sends them, ESP-in-UDP in batches.
func (b *Backend) outbound() {
	defer b.wg.Done()
	if b.tun.vnet {
		b.outboundVnet()
		return
	}
	n := b.cfg.Batch
	maxPkt := b.cfg.MTU
	bufs := make([][]byte, n)
	lens := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, headRoom+maxPkt+tailRoom)
	}
	var got int
	var rerr unix.Errno
	read := func(fd uintptr) bool {
		got, rerr = readTUNBatch(fd, bufs, lens, headRoom, headRoom+maxPkt)
		return got > 0 || rerr != 0
	}
	tx := newTxBatch(n, b.udp.gso)
	var f flow
	for {
		if !b.tunBatch(read, &got, &rerr) {
			return
		}
		if got == 0 {
			continue
		}
		b.st.tunRead.Add(uint64(got))
		t := b.tables.Load()
		for i := range got {
			b.sealOne(t, &f, bufs[i], lens[i], tx)
		}
		if errs := tx.flush(b.udp.rc); errs != 0 {
			b.st.sendErrors.Add(errs)
		}
	}
}

func (b *Backend) sealOne(t *tables, f *flow, buf []byte, n int, tx *txBatch) {
	pkt := buf[headRoom : headRoom+n]
	if parseFlow(pkt, f) != nil {
		b.st.malformed.Add(1)
		return
	}
	s, p := t.lookupOut(f)
	if s == nil {
		if p == nil {
			b.st.noRoute.Add(1)
			return
		}
		if p.p.Action == sadb.Protect && p.p.Level == sadb.Required {
			b.acquire(p, f)
			if b.hold(f.dst, pkt) {
				return
			}
		}
		b.st.policyDrops.Add(1)
		return
	}
	next := esp.NextIPv4
	if pkt[0]>>4 == 6 {
		next = esp.NextIPv6
	}
	var out []byte
	var err error
	s.mu.Lock()
	if s.esp != nil {
		out, err = s.esp.Seal(buf, headRoom, n, next)
	} else {
		out, err = s.ah.SealIPv4(buf, headRoom, n, next, s.cfg.Src.Unmap().As4(), s.cfg.Dst.Unmap().As4(), uint16(b.ipID.Add(1)))
	}
	s.mu.Unlock()
	if err != nil {
		b.st.seqExhausted.Add(1)
		return
	}
	b.count(s, n)
	b.st.sent.Add(1)
	if s.encap {
		tx.add(out, &s.peer)
		return
	}
	sock := b.raw.esp
	if s.ah != nil {
		sock = b.raw.ah
	}
	if err := unix.Sendto(sock.fd, out, unix.MSG_DONTWAIT, s.peer.sa4); err != nil {
		b.st.sendErrors.Add(1)
	}
}

// inboundUDP reads the shared socket in batches: IKE to the IKE bind,
// keepalives dropped, ESP opened and written to the TUN device.
func (b *Backend) inboundUDP() {
	defer b.wg.Done()
	rx := newRxBatch(b.cfg.Batch, maxDatagram)
	w := newTUNWriter(b, 8*b.cfg.Batch, true)
	for {
		if err := rx.read(b.udp.rc); err != nil {
			if closedErr(err) {
				return
			}
			select {
			case <-b.done:
				return
			default:
			}
			// ICMP errors surface as ECONNREFUSED and the like: not fatal.
			continue
		}
		t := b.tables.Load()
		for i := range rx.n {
			d := rx.bufs[i][:rx.msgs[i].Len]
			if rx.msgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
				b.st.malformed.Add(1)
				continue
			}
			// With UDP GRO, a message may be several datagrams.
			seg := rx.segSize(i)
			if seg <= 0 {
				seg = len(d)
			}
			for len(d) > 0 {
				k := min(seg, len(d))
				b.datagram(t, d[:k], &rx.names[i], w)
				d = d[k:]
			}
		}
		w.flush()
	}
}

// datagram handles one datagram of the shared socket.
func (b *Backend) datagram(t *tables, d []byte, from *unix.RawSockaddrInet6, w *tunWriter) {
	switch {
	case len(d) == 1 && d[0] == 0xff:
		b.st.keepalives.Add(1)
	case len(d) >= 4 && d[0]|d[1]|d[2]|d[3] == 0:
		b.ike.deliver(d[4:], parseSockaddr(from))
	case len(d) < 8:
		b.st.malformed.Add(1)
	default:
		s := t.in[inKey(sadb.ESP, binary.BigEndian.Uint32(d))]
		if s == nil || !s.encap {
			b.st.noSA.Add(1)
			return
		}
		b.openOne(s, d, w)
	}
}

// openOne opens an ESP or AH packet of s and queues its inner packet.
func (b *Backend) openOne(s *sa, pkt []byte, w *tunWriter) {
	if s.dead.Load() {
		b.st.noSA.Add(1)
		return
	}
	var inner []byte
	var next byte
	var err error
	s.mu.Lock()
	if s.esp != nil {
		inner, next, _, err = s.esp.Open(pkt)
	} else {
		inner, next, _, err = s.ah.OpenIPv4(pkt)
	}
	s.mu.Unlock()
	switch err {
	case nil:
	case esp.ErrReplay:
		b.st.replay.Add(1)
		s.replay.Add(1)
		return
	case esp.ErrAuth:
		b.st.auth.Add(1)
		s.auth.Add(1)
		return
	default:
		b.st.malformed.Add(1)
		return
	}
	b.st.received.Add(1)
	if next == esp.NextNoNext {
		return // a dummy packet
	}
	var f flow
	version := byte(4)
	if next == esp.NextIPv6 {
		version = 6
	}
	if (next != esp.NextIPv4 && next != esp.NextIPv6) || len(inner) == 0 || inner[0]>>4 != version || parseFlow(inner, &f) != nil {
		b.st.malformed.Add(1)
		return
	}
	// RFC 4301 §5.2: the inner packet must fall within the SA's selectors.
	if !tsMatch(s.cfg.RemoteTS, f.src, f.proto, f.srcPort, f.opaque) || !tsMatch(s.cfg.LocalTS, f.dst, f.proto, f.dstPort, f.opaque) {
		b.st.policyDrops.Add(1)
		s.polDrops.Add(1)
		return
	}
	b.count(s, len(inner))
	w.add(inner)
}

// inboundRaw reads plain ESP or AH from a raw IPv4 socket.
func (b *Backend) inboundRaw(sock *rawSock, proto sadb.Protocol) {
	defer b.wg.Done()
	rx := newRawRx(maxDatagram)
	w := newTUNWriter(b, 1, false)
	for {
		if err := sock.rc.Read(rx.fn); err != nil {
			return
		}
		if rx.err != nil {
			continue
		}
		p := rx.buf[:rx.n]
		if len(p) < 20 || p[0]>>4 != 4 {
			b.st.malformed.Add(1)
			continue
		}
		ihl := int(p[0]&0xf) * 4
		if len(p) < ihl+8 {
			b.st.malformed.Add(1)
			continue
		}
		var spi uint32
		pkt := p
		if proto == sadb.ESP {
			pkt = p[ihl:]
			spi = binary.BigEndian.Uint32(pkt)
		} else {
			spi = binary.BigEndian.Uint32(p[ihl+4:])
		}
		s := b.tables.Load().in[inKey(proto, spi)]
		if s == nil || s.encap {
			b.st.noSA.Add(1)
			continue
		}
		b.openOne(s, pkt, w)
		w.flush()
	}
}

// readTUNBatch reads packets from the non-blocking TUN fd into
// bufs[i][lo:hi], their lengths into lens, until bufs are full or the
// device has nothing more (EAGAIN). It returns how many it read and the
// error that stopped it, if any other than EAGAIN.
func readTUNBatch(fd uintptr, bufs [][]byte, lens []int, lo, hi int) (got int, err unix.Errno) {
	for got < len(bufs) {
		k, e := rawRead(fd, bufs[got][lo:hi])
		if e == unix.EINTR {
			continue
		}
		if e == unix.EAGAIN {
			break
		}
		if e != 0 {
			return got, e
		}
		lens[got] = k
		got++
	}
	return got, 0
}
