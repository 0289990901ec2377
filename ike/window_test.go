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
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
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
	entries := len(c.more)
	if c.one != nil {
		entries++
	}
	if _, ok := c.lookup(3); ok || entries > 5 {
		t.Fatalf("cache not trimmed: %d entries", entries)
	}
	if r, _ := c.classify(9, 4); len(r) != 1 || len(r[0]) != 1 || r[0][0] != 9 {
		t.Fatalf("recent response 9: %v", r)
	}
	// A fragmented response comes back whole, an unfragmented one beside
	// it too, and a response stored again replaces the old.
	c.store(12, [][]byte{{12, 1}, {12, 2}}, 4)
	c.store(13, [][]byte{{13}}, 4)
	c.store(13, [][]byte{{13, 13}}, 4)
	if r, _ := c.lookup(12); len(r) != 2 || r[1][1] != 2 {
		t.Fatalf("fragmented response 12: %v", r)
	}
	if r, _ := c.lookup(13); len(r) != 1 || len(r[0]) != 2 {
		t.Fatalf("response 13 stored again: %v", r)
	}
	for id := uint32(14); id < 30; id++ {
		c.store(id, [][]byte{{byte(id)}}, 4)
	}
	for id := uint32(0); id < 30; id++ {
		_, ok := c.lookup(id)
		if want := id+4 >= c.next; ok != want {
			t.Fatalf("response %d cached %v, want %v (next %d)", id, ok, want, c.next)
		}
	}
}
