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
}

func listenUDP(addr netip.AddrPort, batch int) (*udpSock, error) {
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
		c.Close()
		return nil, err
	}
	_ = u.rc.Control(func(fd uintptr) {
		d, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		u.six = d == unix.AF_INET6
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

// rxBatch is the state of batched receives (recvmmsg), owned by one goroutine.
type rxBatch struct {
	bufs  [][]byte
	names []unix.RawSockaddrInet6
	iovs  []unix.Iovec
	msgs  []unix.Mmsghdr
	n     int
	err   error
	fn    func(fd uintptr) bool
}

func newRxBatch(n, size int) *rxBatch {
	r := &rxBatch{bufs: make([][]byte, n), names: make([]unix.RawSockaddrInet6, n), iovs: make([]unix.Iovec, n), msgs: make([]unix.Mmsghdr, n)}
	for i := range n {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.msgs[i].Hdr.Iov = &r.iovs[i]
		r.msgs[i].Hdr.SetIovlen(1)
	}
	r.fn = r.recv
	return r
}

func (r *rxBatch) recv(fd uintptr) bool {
	for i := range r.msgs {
		r.msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
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

// read fills the batch, waiting for at least one datagram.
func (r *rxBatch) read(rc syscall.RawConn) error {
	if err := rc.Read(r.fn); err != nil {
		return err
	}
	return r.err
}

// txBatch is the state of batched sends (sendmmsg), owned by one goroutine.
type txBatch struct {
	iovs   []unix.Iovec
	msgs   []unix.Mmsghdr
	n, off int
	errs   uint64
	fn     func(fd uintptr) bool
}

func newTxBatch(n int) *txBatch {
	t := &txBatch{iovs: make([]unix.Iovec, n), msgs: make([]unix.Mmsghdr, n)}
	for i := range n {
		t.msgs[i].Hdr.Iov = &t.iovs[i]
		t.msgs[i].Hdr.SetIovlen(1)
	}
	t.fn = t.send
	return t
}

// add queues pkt to to; both must stay unchanged until flush.
func (t *txBatch) add(pkt []byte, to *sockaddr) {
	t.iovs[t.n].Base = &pkt[0]
	t.iovs[t.n].SetLen(len(pkt))
	t.msgs[t.n].Hdr.Name = &to.raw[0]
	t.msgs[t.n].Hdr.Namelen = to.len
	t.n++
}

func (t *txBatch) send(fd uintptr) bool {
	for t.off < t.n {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&t.msgs[t.off])), uintptr(t.n-t.off), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EAGAIN:
			return false
		case e == unix.EINTR:
		case e != 0:
			t.errs++ // the first message failed: skip it
			t.off++
		default:
			t.off += int(n)
		}
	}
	return true
}

// flush sends what is queued and returns how many sends failed.
func (t *txBatch) flush(rc syscall.RawConn) uint64 {
	if t.n == 0 {
		return 0
	}
	t.off, t.errs = 0, 0
	if err := rc.Write(t.fn); err != nil {
		t.errs += uint64(t.n - t.off)
	}
	t.n = 0
	return t.errs
}
