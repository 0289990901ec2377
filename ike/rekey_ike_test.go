package ike

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/ike/wire"
)

// TestRekeyIKE: either side rekeys the IKE SA; both end with one IKE SA
// under new SPIs, the same Child SAs, the rekeying side as its initiator,
// and the new SA carries exchanges.
func TestRekeyIKE(t *testing.T) {
	for _, bySide := range []string{"initiator", "responder"} {
		t.Run("by "+bySide, func(t *testing.T) {
			p := newPair(t)
			infos, err := p.a.InitiateNew(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			old := infos[0]
			rekeyer, other := p.a, p.b
			if bySide == "responder" {
				rekeyer, other = p.b, p.a
			}
			id, err := rekeyer.RekeyIKE(ctxT(t), rekeyer.SAs()[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return len(other.SAs()) == 1 && len(rekeyer.SAs()) == 1 })
			x, y := rekeyer.SAs()[0], other.SAs()[0]
			if x.ID != id || x.SPIi == old.SPIi || x.SPIr == old.SPIr || x.SPIi != y.SPIi || x.SPIr != y.SPIr {
				t.Fatalf("SPIs after rekey: %s_%s / %s_%s (old %s_%s)", x.SPIi, x.SPIr, y.SPIi, y.SPIr, old.SPIi, old.SPIr)
			}
			if x.Role != "initiator" || y.Role != "responder" {
				t.Fatalf("roles after rekey: %s / %s", x.Role, y.Role)
			}
			if len(x.Children) != 1 || len(y.Children) != 1 || x.Children[0].SPIIn != y.Children[0].SPIOut {
				t.Fatalf("Child SAs did not move: %+v / %+v", x.Children, y.Children)
			}
			if len(p.memA.SAs()) != 2 || len(p.memB.SAs()) != 2 {
				t.Fatal("Child SAs removed from the data plane by the IKE rekey")
			}
			// The new SA works: a liveness check and a Child SA rekey on it.
			sa := rekeyer.allSAs()[0]
			if _, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
				return sa.sealMessage(wire.INFORMATIONAL, id, false, nil)
			}); err != nil {
				t.Fatal(err)
			}
			sa.mu.Lock()
			c := sa.children[0]
			sa.mu.Unlock()
			if err := rekeyer.CreateChild(ctxT(t), id, c.inbound.SPI); err != nil {
				t.Fatal(err)
			}
			childKeysPair(t, p)
			// And it can be rekeyed again, by the other side.
			if _, err := other.RekeyIKE(ctxT(t), other.SAs()[0].ID); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return len(rekeyer.SAs()) == 1 && rekeyer.SAs()[0].Role == "responder" })
		})
	}
}

// TestSimultaneousIKERekey: both sides rekey the IKE SA at once (each
// request held until the other side sent its own), ten times; every time
// they converge to one IKE SA with the same SPIs carrying the Child SA
// (§2.8.2), and the SA still works.
func TestSimultaneousIKERekey(t *testing.T) {
	dbg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := newPair(t, func(_, _ *Connection, ca, cb *Config) {
		if os.Getenv("IKED_DEBUG") != "" {
			ca.Logger, cb.Logger = dbg.With("side", "A"), dbg.With("side", "B")
		}
	})
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	// Each round's first two rekey requests wait for each other; any
	// later one (a retransmission) passes.
	var mu sync.Mutex
	var seen int
	release := make(chan struct{})
	hold := func(b []byte) bool {
		h, err := wire.ParseHeader(b)
		if err != nil || h.Exchange != wire.CREATE_CHILD_SA || h.IsResponse() {
			return true
		}
		mu.Lock()
		seen++
		n, r := seen, release
		if n == 2 {
			close(release)
		}
		mu.Unlock()
		if n <= 2 {
			select {
			case <-r:
			case <-time.After(2 * time.Second):
			}
		}
		return true
	}
	p.ba.Filter, p.bb.Filter = hold, hold
	for round := range 10 {
		ida, idb := p.a.SAs()[0].ID, p.b.SAs()[0].ID
		mu.Lock()
		seen, release = 0, make(chan struct{})
		mu.Unlock()
		errs := make(chan error, 2)
		go func() { _, err := p.a.RekeyIKE(ctxT(t), ida); errs <- err }()
		go func() { _, err := p.b.RekeyIKE(ctxT(t), idb); errs <- err }()
		for range 2 {
			if err := <-errs; err != nil {
				if ne, ok := err.(*notifyError); !ok || ne.code != wire.NotifyTemporaryFailure {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
		deadline := time.Now().Add(30 * time.Second) // a hang guard
		for {
			x, y := p.a.SAs(), p.b.SAs()
			if len(x) == 1 && len(y) == 1 && x[0].SPIi == y[0].SPIi && x[0].SPIr == y[0].SPIr &&
				len(x[0].Children) == 1 && len(y[0].Children) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no convergence:\nA %+v\nB %+v\nA drops %v\nB drops %v", round, x, y,
					p.a.Stats().PacketsDropped, p.b.Stats().PacketsDropped)
			}
			time.Sleep(5 * time.Millisecond)
		}
		childKeysPair(t, p)
		sa := p.a.allSAs()[0]
		if _, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
			return sa.sealMessage(wire.INFORMATIONAL, id, false, nil)
		}); err != nil {
			t.Fatalf("round %d: the surviving SA does not work: %v", round, err)
		}
	}
}

// TestRekeyCollisionsDeferred (§2.25.2): while one side has a Child SA
// exchange in flight, the peer's IKE SA rekey is answered with
// TEMPORARY_FAILURE, and while a side rekeys the IKE SA it starts no Child
// SA exchange; once the Child SA exchange is done, the IKE SA rekey goes
// through and takes the (one) Child SA along.
func TestRekeyCollisionsDeferred(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	sa := p.a.allSAs()[0]
	sa.mu.Lock()
	c := sa.children[0]
	sa.mu.Unlock()
	held, release := holdFirstRequest(p.ba, wire.CREATE_CHILD_SA)
	done := make(chan error, 1)
	go func() { done <- sa.createChild(ctxT(t), c) }()
	waitFor(t, held.Load)
	_, err := p.b.RekeyIKE(ctxT(t), p.b.SAs()[0].ID)
	if err == nil || !strings.Contains(err.Error(), "TEMPORARY_FAILURE") {
		t.Fatalf("B's IKE SA rekey during A's Child SA rekey: %v, want TEMPORARY_FAILURE", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(p.a.SAs()[0].Children) == 1 && len(p.b.SAs()[0].Children) == 1 })
	id, err := p.b.RekeyIKE(ctxT(t), p.b.SAs()[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		a, b := p.a.SAs(), p.b.SAs()
		return len(a) == 1 && len(b) == 1 && b[0].ID == id && len(a[0].Children) == 1 && len(b[0].Children) == 1
	})
}
