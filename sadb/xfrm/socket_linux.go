//go:build linux

package xfrm

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// BypassSocket exempts a socket's traffic from IPsec policies, in and out,
// with per-socket XFRM policies (IP_XFRM_POLICY, IPV6_XFRM_POLICY) that
// allow without templates, as IKE daemons do for their IKE sockets: without
// them a host-to-host transport policy would capture IKE itself. The
// socket's family is read from its local address.
func BypassSocket(c syscall.Conn) error {
	return control(c, func(fd int) error {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		level, opt, family := unix.SOL_IP, unix.IP_XFRM_POLICY, uint16(afInet)
		if _, ok := sa.(*unix.SockaddrInet6); ok {
			level, opt, family = unix.SOL_IPV6, unix.IPV6_XFRM_POLICY, afInet6
		}
		for _, dir := range []uint8{dirIn, dirOut} {
			b := socketPolicy(family, dir)
			if err := unix.SetsockoptString(fd, level, opt, string(b)); err != nil {
				return fmt.Errorf("xfrm: bypass policy %d on socket: %w", dir, err)
			}
		}
		return nil
	})
}

// EnableESPInUDP makes the kernel take ESP-in-UDP packets (RFC 3948) that
// arrive on a UDP socket (the IKE socket of port 4500) for its SAs with
// UDP encapsulation; IKE packets, behind the non-ESP marker, still reach
// the socket, and NAT keepalives are consumed.
func EnableESPInUDP(c syscall.Conn) error {
	return control(c, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_ENCAP, unix.UDP_ENCAP_ESPINUDP); err != nil {
			return fmt.Errorf("xfrm: UDP_ENCAP_ESPINUDP on socket: %w", err)
		}
		return nil
	})
}

func control(c syscall.Conn, fn func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
