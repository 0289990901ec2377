package transcript

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transport"
)

// natTPort is the port whose datagrams carry the non-ESP marker.
const natTPort = 4500

// Network replays a transcript: its binds deliver the peer's recorded
// datagrams in order, each only once iked has sent everything recorded
// before it, and check that what iked sends is exactly what was recorded.
type Network struct {
	mu     sync.Mutex
	cond   *sync.Cond
	msgs   []Message
	next   int
	failed error
	closed bool
	binds  []transport.Bind
}

// NewNetwork returns the scripted network for t, with one bind per
// recorded local address (wrapped with the non-ESP marker on port 4500).
func NewNetwork(t *Transcript) (*Network, error) {
	n := &Network{msgs: t.Messages}
	n.cond = sync.NewCond(&n.mu)
	for _, a := range t.Binds {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return nil, fmt.Errorf("transcript bind %q: %w", a, err)
		}
		var b transport.Bind = &replayBind{n: n, local: ap}
		if ap.Port() == natTPort {
			b = transport.WithNonESPMarker(b)
		}
		n.binds = append(n.binds, b)
	}
	return n, nil
}

// Binds returns the binds to give the engine, in the recorded order.
func (n *Network) Binds() []transport.Bind { return n.binds }

func (n *Network) done() bool { return n.next >= len(n.msgs) || n.failed != nil }

// Wait blocks until the transcript is played out, iked deviates from it,
// or timeout passes; it returns the deviation or the stall.
func (n *Network) Wait(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	n.mu.Lock()
	defer n.mu.Unlock()
	for !n.done() && time.Now().Before(deadline) {
		n.mu.Unlock()
		time.Sleep(time.Millisecond)
		n.mu.Lock()
	}
	if n.failed != nil {
		return n.failed
	}
	if n.next < len(n.msgs) {
		return fmt.Errorf("replay stalled at message %d of %d: %s", n.next, len(n.msgs), Describe(n.msgs[n.next].Data))
	}
	return nil
}

type replayBind struct {
	n     *Network
	local netip.AddrPort
}

func (b *replayBind) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	n := b.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		if n.closed {
			return 0, netip.AddrPort{}, transport.ErrClosed
		}
		if !n.done() {
			m := n.msgs[n.next]
			if m.In && m.Local == b.local.String() {
				n.next++
				n.cond.Broadcast()
				peer, err := netip.ParseAddrPort(m.Peer)
				if err != nil {
					n.failed = err
					continue
				}
				return copy(p, m.Data), peer, nil
			}
		}
		n.cond.Wait()
	}
}

func (b *replayBind) WriteTo(p []byte, to netip.AddrPort) error {
	n := b.n
	n.mu.Lock()
	defer n.mu.Unlock()
	defer n.cond.Broadcast()
	if n.done() {
		if n.failed == nil {
			n.failed = fmt.Errorf("iked sent a datagram after the transcript ended: %s", Describe(p))
		}
		return nil
	}
	m := n.msgs[n.next]
	switch {
	case m.In:
		n.failed = fmt.Errorf("message %d: iked sent %s, but the peer's %s was next", n.next, Describe(p), Describe(m.Data))
	case m.Local != b.local.String() || m.Peer != to.String():
		n.failed = fmt.Errorf("message %d: iked sent %s->%s, recorded %s->%s", n.next, b.local, to, m.Local, m.Peer)
	case !bytes.Equal(p, m.Data):
		n.failed = fmt.Errorf("message %d differs from the recording:\n got  %s\n want %s", n.next, Describe(p), Describe(m.Data))
	default:
		n.next++
	}
	return nil
}

func (b *replayBind) LocalAddr() netip.AddrPort { return b.local }

func (b *replayBind) Close() error {
	b.n.mu.Lock()
	b.n.closed = true
	b.n.cond.Broadcast()
	b.n.mu.Unlock()
	return nil
}

// Describe summarises a datagram for a failure message.
func Describe(p []byte) string {
	q := p
	if len(q) >= 4 && q[0]|q[1]|q[2]|q[3] == 0 {
		q = q[4:]
	}
	h, err := wire.ParseHeader(q)
	if err != nil {
		return fmt.Sprintf("%d octets (%v)", len(p), err)
	}
	return fmt.Sprintf("exchange %d #%d response=%v, %d octets, %x…", h.Exchange, h.MessageID, h.IsResponse(), len(p), p[:min(len(p), 40)])
}
