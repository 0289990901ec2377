package ike

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iked/iked/ike/wire"
)

// TestMessageWindow: both sides announce SET_WINDOW_SIZE 4 in IKE_AUTH; the
// initiator then has four requests outstanding at once (the responder
// holds its answers until all four arrived), and all are answered.
func TestMessageWindow(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	sa := p.a.allSAs()[0]
	sa.mu.Lock()
	w := sa.sendWindow
	sa.mu.Unlock()
	if w != recvWindow {
		t.Fatalf("send window %d, want the peer's %d", w, recvWindow)
	}
	var requests atomic.Int32
	all := make(chan struct{})
	var once sync.Once
	p.ba.Filter = func(b []byte) bool {
		if h, err := wire.ParseHeader(b); err == nil && h.Exchange == wire.INFORMATIONAL && !h.IsResponse() {
			if requests.Add(1) == recvWindow {
				once.Do(func() { close(all) })
			}
		}
		return true
	}
	p.bb.Filter = func(b []byte) bool {
		if h, err := wire.ParseHeader(b); err == nil && h.IsResponse() {
			select {
			case <-all:
			case <-time.After(3 * time.Second):
				// The requests never overlapped: fail below.
			}
		}
		return true
	}
	errs := make(chan error, recvWindow)
	for range recvWindow {
		go func() {
			_, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
				return sa.sealMessage(wire.INFORMATIONAL, id, false, nil)
			})
			errs <- err
		}()
	}
	for range recvWindow {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-all:
	default:
		t.Fatal("the four requests were never outstanding together")
	}
	if p.a.Stats().Retransmissions != 0 {
		t.Fatalf("%d retransmissions", p.a.Stats().Retransmissions)
	}
}

func TestRespCache(t *testing.T) {
	var c respCache
	c.next = 2
	if _, ok := c.classify(5, 4); !ok {
		t.Fatal("ID within the window refused")
	}
	if _, ok := c.classify(6, 4); ok {
		t.Fatal("ID beyond the window accepted")
	}
	c.store(3, [][]byte{{3}}, 4) // out of order
	if c.next != 2 {
		t.Fatalf("next moved to %d before 2 was answered", c.next)
	}
	if r, ok := c.classify(3, 4); ok || r == nil {
		t.Fatal("answered request 3 not served from the cache")
	}
	c.store(2, [][]byte{{2}}, 4)
	if c.next != 4 {
		t.Fatalf("next = %d, want 4", c.next)
	}
	for id := uint32(4); id < 12; id++ {
		c.store(id, [][]byte{{byte(id)}}, 4)
	}
	if _, ok := c.lookup(3); ok || len(c.answered) > 5 {
		t.Fatalf("cache not trimmed: %d entries", len(c.answered))
	}
	if r, _ := c.classify(9, 4); r == nil {
		t.Fatal("recent response dropped from the cache")
	}
}
