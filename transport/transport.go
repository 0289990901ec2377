// Package transport is the key-exchange engines' boundary to the network
// (IKEv2 and IKEv1 alike, and the userspace data plane's IKE socket): a Bind sends
// and receives IKE datagrams on one local address. UDP binds are real
// sockets; Pipe makes connected in-memory binds for tests and benchmarks.
package transport

import (
	"errors"
	"net/netip"
)

// Bind is one local IKE endpoint. ReadFrom is called by one goroutine at a
// time per bind; WriteTo may be called concurrently.
type Bind interface {
	// ReadFrom blocks until a datagram arrives, copies it into b and returns
	// its length and sender. It returns net.ErrClosed after Close.
	ReadFrom(b []byte) (int, netip.AddrPort, error)
	// WriteTo sends b to addr.
	WriteTo(b []byte, addr netip.AddrPort) error
	// LocalAddr is the address the bind listens on.
	LocalAddr() netip.AddrPort
	// Close stops the bind and unblocks ReadFrom.
	Close() error
}

// NATTBind is a bind on the NAT-T port (4500): its IKE messages carry the
// non-ESP marker, which the bind adds and removes, and ESP-in-UDP may share
// its socket. NonESPMarker is one; a userspace data plane that owns the
// socket provides another.
type NATTBind interface {
	Bind
	// SendKeepalive sends the one-octet NAT keepalive (RFC 3948 §2.3).
	SendKeepalive(addr netip.AddrPort) error
}

// ErrClosed is returned by operations on a closed in-memory bind.
var ErrClosed = errors.New("transport: bind closed")
