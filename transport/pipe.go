package transport

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Pipe returns two in-memory binds with the given addresses, each
// delivering what it writes to the other. Datagrams are copied; a full
// queue drops, as a socket buffer would.
func Pipe(a, b netip.AddrPort) (*Mem, *Mem) {
	x := &Mem{local: a, in: make(chan datagram, 256), done: make(chan struct{})}
	y := &Mem{local: b, in: make(chan datagram, 256), done: make(chan struct{})}
	x.peer, y.peer = y, x
	return x, y
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

// Mem is one end of a Pipe.
type Mem struct {
	local netip.AddrPort
	peer  *Mem
	in    chan datagram
	once  sync.Once
	done  chan struct{}

	// Filter, when set before use, sees every datagram this end sends and
	// drops it by returning false: tests use it to lose or alter packets.
	Filter func(b []byte) bool

	// overflows counts the datagrams this end sent that the peer's full
	// queue dropped.
	overflows atomic.Uint64
}

// Overflows returns how many datagrams this end sent were dropped because
// the peer's queue was full (Filter's drops are not counted): a test
// asserting what was lost accounts for them.
func (m *Mem) Overflows() uint64 { return m.overflows.Load() }

// ReadFrom implements Bind.
func (m *Mem) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-m.in:
		return copy(b, d.b), d.from, nil
	case <-m.done:
		return 0, netip.AddrPort{}, ErrClosed
	}
}

// WriteTo implements Bind. The destination is ignored: a pipe has one peer.
func (m *Mem) WriteTo(b []byte, _ netip.AddrPort) error {
	select {
	case <-m.done:
		return ErrClosed
	default:
	}
	c := append([]byte(nil), b...)
	if m.Filter != nil && !m.Filter(c) {
		return nil
	}
	select {
	case m.peer.in <- datagram{b: c, from: m.local}:
	default:
		m.overflows.Add(1)
	}
	return nil
}

// LocalAddr implements Bind.
func (m *Mem) LocalAddr() netip.AddrPort { return m.local }

// Close implements Bind.
func (m *Mem) Close() error {
	m.once.Do(func() { close(m.done) })
	return nil
}
