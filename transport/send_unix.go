//go:build unix

package transport

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// sendNow sends one datagram with MSG_DONTWAIT.
func (u *UDP) sendNow(b []byte, addr netip.AddrPort) error {
	var sa unix.Sockaddr
	a := addr.Addr()
	switch {
	case u.v6:
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	case a.Is4() || a.Is4In6():
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.Unmap().As4()}
	default:
		return errors.New("an IPv6 destination on an IPv4 socket")
	}
	var serr error
	err := u.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, unix.MSG_DONTWAIT, sa)
		return true // never wait for writability
	})
	if err != nil {
		return err
	}
	if errors.Is(serr, unix.EAGAIN) || errors.Is(serr, unix.ENOBUFS) {
		return ErrSendBufferFull
	}
	return serr
}
