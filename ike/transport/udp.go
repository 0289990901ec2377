package transport

import (
	"net"
	"net/netip"
)

// UDP is a Bind over a UDP socket.
type UDP struct {
	conn  *net.UDPConn
	local netip.AddrPort
}

// ListenUDP opens a UDP socket on addr (port 0 picks a free port).
func ListenUDP(addr netip.AddrPort) (*UDP, error) {
	network := "udp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	// IKE_SA_INIT bursts from many peers arrive faster than one handshake's
	// DH; a larger receive buffer absorbs them instead of dropping.
	_ = c.SetReadBuffer(4 << 20)
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return &UDP{conn: c, local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port())}, nil
}

// ReadFrom implements Bind.
func (u *UDP) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := u.conn.ReadFromUDPAddrPort(b)
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), err
}

// WriteTo implements Bind.
func (u *UDP) WriteTo(b []byte, addr netip.AddrPort) error {
	_, err := u.conn.WriteToUDPAddrPort(b, addr)
	return err
}

// LocalAddr implements Bind.
func (u *UDP) LocalAddr() netip.AddrPort { return u.local }

// Conn returns the socket, for socket options a data plane sets (the XFRM
// bypass policy, ESP-in-UDP decapsulation).
func (u *UDP) Conn() *net.UDPConn { return u.conn }

// Close implements Bind.
func (u *UDP) Close() error { return u.conn.Close() }
