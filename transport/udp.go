package transport

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// UDP is a Bind over a UDP socket.
type UDP struct {
	conn  *net.UDPConn
	raw   syscall.RawConn // for sends that never wait
	local netip.AddrPort
	v6    bool // an AF_INET6 socket: IPv4 peers are sent to as ::ffff:a.b.c.d
}

// ErrSendBufferFull is returned by UDP.WriteTo when the socket cannot take
// the datagram now. The datagram is dropped, as the network might have
// dropped it: IKE retransmits. Waiting instead would stall the engine's
// readers, e.g. when answers to spoofed on-link sources pile up behind
// ARP requests nobody answers.
var ErrSendBufferFull = errors.New("send buffer full: datagram dropped")

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
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return &UDP{conn: c, raw: raw, v6: network == "udp6", local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port())}, nil
}

// ReadFrom implements Bind.
func (u *UDP) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := u.conn.ReadFromUDPAddrPort(b)
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), err
}

// WriteTo implements Bind. It never waits for room in the socket's send
// buffer: a datagram that does not fit is dropped with ErrSendBufferFull.
func (u *UDP) WriteTo(b []byte, addr netip.AddrPort) error {
	return u.sendNow(b, addr)
}

// LocalAddr implements Bind.
func (u *UDP) LocalAddr() netip.AddrPort { return u.local }

// Conn returns the socket, for socket options a data plane sets (the XFRM
// bypass policy, ESP-in-UDP decapsulation).
func (u *UDP) Conn() *net.UDPConn { return u.conn }

// Close implements Bind.
func (u *UDP) Close() error { return u.conn.Close() }
