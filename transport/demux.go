package transport

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Demux serves two key-exchange engines on one socket: it reads a Bind
// and hands each datagram to one of two virtual binds by the major
// version in its ISAKMP/IKE header (octet 17: 1 for IKEv1, 2 for IKEv2),
// so that each engine keeps its own read loops and knows nothing of the
// other. On a NAT-T bind the non-ESP marker is already gone: wrap the
// NonESPMarker, not the socket under it.
//
// Until V1 is called, every datagram goes to V2: an IKEv2-only daemon's
// engine sees IKEv1 requests and answers them with INVALID_MAJOR_VERSION,
// as without a Demux.
type Demux struct {
	b       Bind
	v1      atomic.Pointer[demuxBind]
	v2      *demuxBind
	dropped atomic.Uint64

	mu     sync.Mutex
	open   int // virtual binds not yet closed
	closed bool
	wg     sync.WaitGroup
}

// demuxQueue is how many datagrams a virtual bind holds for its engine
// before it drops, as a socket buffer would.
const demuxQueue = 1024

// NewDemux starts readers goroutines (at least one) reading b.
func NewDemux(b Bind, readers int) *Demux {
	d := &Demux{b: b, open: 1}
	d.v2 = d.newBind()
	for range max(readers, 1) {
		d.wg.Add(1)
		go d.read()
	}
	return d
}

func (d *Demux) newBind() *demuxBind {
	return &demuxBind{d: d, in: make(chan datagram, demuxQueue), done: make(chan struct{})}
}

// V2 returns the bind of the IKEv2 engine (and of every version when V1
// was never asked for).
func (d *Demux) V2() Bind { return d.wrap(d.v2) }

// V1 returns the bind of the IKEv1 engine; from the first call on,
// version 1 datagrams go to it.
func (d *Demux) V1() Bind {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b := d.v1.Load(); b != nil {
		return d.wrap(b)
	}
	b := d.newBind()
	d.open++
	d.v1.Store(b)
	return d.wrap(b)
}

// wrap makes the virtual bind a NATTBind when the underlying bind is one,
// so that the engines recognise the NAT-T port.
func (d *Demux) wrap(b *demuxBind) Bind {
	if n, ok := d.b.(NATTBind); ok {
		return &demuxNATTBind{demuxBind: b, natt: n}
	}
	return b
}

// Dropped returns how many datagrams were dropped because an engine did
// not keep up.
func (d *Demux) Dropped() uint64 { return d.dropped.Load() }

// Underlying returns the bind the Demux reads.
func (d *Demux) Underlying() Bind { return d.b }

func (d *Demux) read() {
	defer d.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := d.b.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, ErrClosed) || errors.Is(err, net.ErrClosed) {
				d.v2.shut()
				if v1 := d.v1.Load(); v1 != nil {
					v1.shut()
				}
				return
			}
			continue
		}
		to := d.v2
		if n > 17 && buf[17]>>4 == 1 {
			if v1 := d.v1.Load(); v1 != nil {
				to = v1
			}
		}
		select {
		case to.in <- datagram{b: append([]byte(nil), buf[:n]...), from: from}:
		default:
			d.dropped.Add(1)
		}
	}
}

// release notes one virtual bind closed; the last closes the socket.
func (d *Demux) release() {
	d.mu.Lock()
	d.open--
	last := d.open == 0 && !d.closed
	if last {
		d.closed = true
	}
	d.mu.Unlock()
	if last {
		_ = d.b.Close()
	}
}

// Close closes the socket and both virtual binds.
func (d *Demux) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	err := d.b.Close()
	d.v2.shut()
	if v1 := d.v1.Load(); v1 != nil {
		v1.shut()
	}
	d.wg.Wait()
	return err
}

// demuxBind is one engine's view of the socket.
type demuxBind struct {
	d      *Demux
	in     chan datagram
	once   sync.Once
	closed sync.Once
	done   chan struct{}
}

func (b *demuxBind) shut() { b.once.Do(func() { close(b.done) }) }

// ReadFrom implements Bind.
func (b *demuxBind) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	select {
	case dg := <-b.in:
		return copy(p, dg.b), dg.from, nil
	case <-b.done:
		return 0, netip.AddrPort{}, ErrClosed
	}
}

// WriteTo implements Bind.
func (b *demuxBind) WriteTo(p []byte, addr netip.AddrPort) error { return b.d.b.WriteTo(p, addr) }

// LocalAddr implements Bind.
func (b *demuxBind) LocalAddr() netip.AddrPort { return b.d.b.LocalAddr() }

// Close implements Bind: it stops this engine's reads; the socket closes
// when both engines closed their binds.
func (b *demuxBind) Close() error {
	b.shut()
	b.closed.Do(b.d.release)
	return nil
}

// demuxNATTBind is a virtual bind on the NAT-T port.
type demuxNATTBind struct {
	*demuxBind
	natt NATTBind
}

// SendKeepalive implements NATTBind.
func (b *demuxNATTBind) SendKeepalive(addr netip.AddrPort) error { return b.natt.SendKeepalive(addr) }
