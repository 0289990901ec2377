//go:build !unix

package transport

import "net/netip"

// sendNow sends one datagram (blocking where the platform has no
// MSG_DONTWAIT).
func (u *UDP) sendNow(b []byte, addr netip.AddrPort) error {
	_, err := u.conn.WriteToUDPAddrPort(b, addr)
	return err
}
