//go:build linux

package userspace

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSock is the shared NAT-T socket, read and written in batches.
type udpSock struct {
	conn  *net.UDPConn
	rc    syscall.RawConn
	local netip.AddrPort
	six   bool // an AF_INET6 (dual-stack) socket
	// gso is set when the kernel sends several datagrams of one size
	// handed over at once (UDP_SEGMENT); gro when it hands over several
	// received at once (UDP_GRO), as the sender's GSO made them.
	gso, gro bool
}

// listenUDP opens the socket; with offload, it turns UDP GRO on and
// probes for UDP GSO, doing without either if the kernel lacks it.
func listenUDP(addr netip.AddrPort, offload bool) (*udpSock, error) {
	network := "udp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "udp" // [::] is dual-stack
		if !addr.Addr().IsUnspecified() {
			network = "udp6"
		}
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("userspace: listen %s: %w", addr, err)
	}
	_ = c.SetReadBuffer(8 << 20)
	_ = c.SetWriteBuffer(8 << 20)
	u := &udpSock{conn: c}
	l := c.LocalAddr().(*net.UDPAddr).AddrPort()
	u.local = netip.AddrPortFrom(l.Addr().Unmap(), l.Port())
	if u.rc, err = c.SyscallConn(); err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = u.rc.Control(func(fd uintptr) {
		d, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		u.six = d == unix.AF_INET6
		if offload {
			u.gso = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 0) == nil
			u.gro = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) == nil
		}
	})
	return u, nil
}

func (u *udpSock) close() error { return u.conn.Close() }

func (u *udpSock) writeTo(b []byte, addr netip.AddrPort) error {
	_, err := u.conn.WriteToUDPAddrPort(b, addr)
	return err
}

// sockaddr is a destination prebuilt for sendmmsg (raw) and sendto (sa4).
type sockaddr struct {
	raw [unix.SizeofSockaddrInet6]byte
	len uint32
	sa4 *unix.SockaddrInet4
}

func (u *udpSock) sockaddrFor(ap netip.AddrPort, encap bool) (sockaddr, error) {
	var s sockaddr
	a := ap.Addr().Unmap()
	if !encap {
		if !a.Is4() {
			return s, fmt.Errorf("raw destination %s is not IPv4", a)
		}
		s.sa4 = &unix.SockaddrInet4{Addr: a.As4()}
		return s, nil
	}
	if u.six {
		r := (*unix.RawSockaddrInet6)(unsafe.Pointer(&s.raw))
		r.Family = unix.AF_INET6
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&r.Port))[:], ap.Port())
		r.Addr = a.As16() // IPv4 as IPv4-mapped
		s.len = unix.SizeofSockaddrInet6
		return s, nil
	}
	if !a.Is4() {
		return s, fmt.Errorf("IPv6 peer %s on the IPv4 socket %s", a, u.local)
	}
	r := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.raw))
	r.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&r.Port))[:], ap.Port())
	r.Addr = a.As4()
	s.len = unix.SizeofSockaddrInet4
	return s, nil
}

func parseSockaddr(r *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&r.Port))[:])
	switch r.Family {
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(r.Addr).Unmap(), port)
	case unix.AF_INET:
		r4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(r))
		return netip.AddrPortFrom(netip.AddrFrom4(r4.Addr), port)
	}
	return netip.AddrPort{}
}

// rxBatch is the state of batched receives (recvmmsg), owned by one
// goroutine. With UDP GRO, one message may hold several datagrams of the
// size its UDP_GRO control message gives, the last possibly shorter.
type rxBatch struct {
	bufs  [][]byte
	names []unix.RawSockaddrInet6
	iovs  []unix.Iovec
	msgs  []unix.Mmsghdr
	oob   []byte
	n     int
	err   error
	fn    func(fd uintptr) bool
}

// rxOOB is the control buffer of one message: room for UDP_GRO's int.
var rxOOB = unix.CmsgSpace(8)

func newRxBatch(n, size int) *rxBatch {
	r := &rxBatch{bufs: make([][]byte, n), names: make([]unix.RawSockaddrInet6, n), iovs: make([]unix.Iovec, n), msgs: make([]unix.Mmsghdr, n),
		oob: make([]byte, n*rxOOB)}
	for i := range n {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.msgs[i].Hdr.Iov = &r.iovs[i]
		r.msgs[i].Hdr.SetIovlen(1)
		r.msgs[i].Hdr.Control = &r.oob[i*rxOOB]
	}
	r.fn = r.recv
	return r
}

func (r *rxBatch) recv(fd uintptr) bool {
	for i := range r.msgs {
		r.msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.msgs[i].Hdr.SetControllen(rxOOB)
		r.msgs[i].Hdr.Flags = 0
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			r.n, r.err = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.n, r.err = 0, e
		return true
	}
}

// segSize returns the size of the datagrams message i holds, 0 when it
// holds one (no UDP_GRO control message).
func (r *rxBatch) segSize(i int) int {
	c := r.oob[i*rxOOB : i*rxOOB+int(r.msgs[i].Hdr.Controllen)]
	for len(c) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(c) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(4) {
			return int(binary.NativeEndian.Uint32(c[unix.CmsgLen(0):]))
		}
		c = c[min(len(c), unix.CmsgSpace(l-unix.CmsgLen(0))):]
	}
	return 0
}

// read fills the batch, waiting for at least one datagram.
func (r *rxBatch) read(rc syscall.RawConn) error {
	if err := rc.Read(r.fn); err != nil {
		return err
	}
	return r.err
}

// UDP GSO limits: the kernel takes at most UDP_MAX_SEGMENTS (64 on older
// kernels) datagrams and 64 KiB of payload per send.
const (
	gsoMaxSegs  = 64
	gsoMaxBytes = 65000
)

// txOOB is the control buffer of one message: UDP_SEGMENT's uint16.
var txOOB = unix.CmsgSpace(2)

// txBatch is the state of batched sends (sendmmsg), owned by one
// goroutine. With gso, consecutive datagrams to the same destination and
// of the same size (the last possibly shorter) go in one message with a
// UDP_SEGMENT control message, which the kernel cuts back into those
// datagrams: on the wire nothing changes, but a message crosses the stack
// once.
type txBatch struct {
	iovs  []unix.Iovec
	msgs  []unix.Mmsghdr
	first []int // the first iovec of each message
	segs  []int // datagrams in each message
	oob   []byte
	one   unix.Msghdr // a single datagram of a message the kernel refused
	gso   bool
	n, k  int // messages and datagrams queued
	// Whether and how the last message may grow.
	to            *sockaddr
	open          bool
	segSize, size int
	off           int
	errs          uint64
	fn            func(fd uintptr) bool
}

func newTxBatch(n int, gso bool) *txBatch {
	t := &txBatch{iovs: make([]unix.Iovec, n), msgs: make([]unix.Mmsghdr, n), first: make([]int, n), segs: make([]int, n),
		oob: make([]byte, n*txOOB), gso: gso}
	for i := range n {
		c := t.oob[i*txOOB:]
		h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
	}
	t.fn = t.send
	return t
}

// full says whether the batch must be flushed before another add.
func (t *txBatch) full() bool { return t.k == len(t.iovs) }

// add queues pkt to to; both must stay unchanged until flush.
func (t *txBatch) add(pkt []byte, to *sockaddr) {
	iov := &t.iovs[t.k]
	iov.Base = &pkt[0]
	iov.SetLen(len(pkt))
	if t.gso && t.open && t.to == to && len(pkt) <= t.segSize && t.segs[t.n-1] < gsoMaxSegs && t.size+len(pkt) <= gsoMaxBytes {
		i := t.n - 1
		t.segs[i]++
		t.msgs[i].Hdr.SetIovlen(t.segs[i])
		if t.segs[i] == 2 {
			c := t.oob[i*txOOB:]
			binary.NativeEndian.PutUint16(c[unix.CmsgLen(0):], uint16(t.segSize))
			t.msgs[i].Hdr.Control = &c[0]
			t.msgs[i].Hdr.SetControllen(txOOB)
		}
		t.size += len(pkt)
		t.open = len(pkt) == t.segSize
		t.k++
		return
	}
	m := &t.msgs[t.n].Hdr
	m.Iov = iov
	m.SetIovlen(1)
	m.Name = &to.raw[0]
	m.Namelen = to.len
	m.Control = nil
	m.SetControllen(0)
	t.first[t.n], t.segs[t.n] = t.k, 1
	t.to, t.open, t.segSize, t.size = to, true, len(pkt), len(pkt)
	t.n++
	t.k++
}

func (t *txBatch) send(fd uintptr) bool {
	for t.off < t.n {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&t.msgs[t.off])), uintptr(t.n-t.off), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EAGAIN:
			return false
		case e == unix.EINTR:
		case e != 0:
			// The first message failed: skip it. If the kernel refused
			// the segmentation itself, its datagrams go one by one, and
			// so do later ones.
			if t.segs[t.off] > 1 && (e == unix.EIO || e == unix.EINVAL || e == unix.ENOPROTOOPT || e == unix.EOPNOTSUPP) {
				t.gso = false
				t.errs += t.sendOneByOne(fd, t.off)
			} else {
				t.errs += uint64(t.segs[t.off])
			}
			t.off++
		default:
			t.off += int(n)
		}
	}
	return true
}

// sendOneByOne sends the datagrams of message i without UDP_SEGMENT and
// returns how many failed.
func (t *txBatch) sendOneByOne(fd uintptr, i int) uint64 {
	var errs uint64
	m := &t.msgs[i].Hdr
	t.one.Name, t.one.Namelen = m.Name, m.Namelen
	t.one.SetIovlen(1)
	for j := range t.segs[i] {
		t.one.Iov = &t.iovs[t.first[i]+j]
		for {
			_, _, e := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&t.one)), unix.MSG_DONTWAIT)
			if e == unix.EINTR {
				continue
			}
			if e != 0 {
				errs++
			}
			break
		}
	}
	return errs
}

// flush sends what is queued and returns how many datagrams failed.
func (t *txBatch) flush(rc syscall.RawConn) uint64 {
	if t.n == 0 {
		return 0
	}
	t.off, t.errs = 0, 0
	if err := rc.Write(t.fn); err != nil {
		for i := t.off; i < t.n; i++ {
			t.errs += uint64(t.segs[i])
		}
	}
	t.reset()
	return t.errs
}

// reset forgets what is queued.
func (t *txBatch) reset() { t.n, t.k, t.open, t.to = 0, 0, false, nil }
