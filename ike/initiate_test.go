package ike

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestInitiateConnectionThatIsUp: initiating a connection that is up
// reports its IKE SA instead of making a second one (as swanctl does);
// when that SA has lost its Child SA, only the Child SA is created; and
// InitiateNew makes another IKE SA regardless.
func TestInitiateConnectionThatIsUp(t *testing.T) {
	p := newPair(t)
	first, err := p.a.Initiate(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.a.Initiate(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if again[0].ID != first[0].ID || len(p.a.SAs()) != 1 || len(p.b.SAs()) != 1 {
		t.Fatalf("second initiate: %s (first %s), %d / %d IKE SAs", again[0].ID, first[0].ID, len(p.a.SAs()), len(p.b.SAs()))
	}
	if len(again[0].Children) != 1 {
		t.Fatalf("children after the second initiate: %d", len(again[0].Children))
	}

	// The Child SA goes; initiating again creates just that.
	sa := p.a.allSAs()[0]
	sa.mu.Lock()
	child := sa.children[0]
	sa.mu.Unlock()
	sa.deleteChild(ctxT(t), child)
	waitFor(t, func() bool { return len(p.b.SAs()[0].Children) == 0 })
	restored, err := p.a.Initiate(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if restored[0].ID != first[0].ID || len(restored[0].Children) != 1 || len(p.a.SAs()) != 1 {
		t.Fatalf("after the Child SA went: %+v, %d IKE SAs", restored[0], len(p.a.SAs()))
	}
	waitFor(t, func() bool { return len(p.b.SAs()) == 1 && len(p.b.SAs()[0].Children) == 1 })

	fresh, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if fresh[0].ID == first[0].ID || len(p.a.SAs()) != 2 {
		t.Fatalf("InitiateNew: %s, %d IKE SAs", fresh[0].ID, len(p.a.SAs()))
	}
}

// TestInitiateSilentPeer: an initiation to a peer that never answers ends
// when the retransmissions are spent, saying to whom and after how many,
// counted as a timeout; InitiateTimeout, what the control socket waits,
// covers it.
func TestInitiateSilentPeer(t *testing.T) {
	p := newPair(t, func(_, _ *Connection, cfgA, _ *Config) {
		cfgA.RetransmitTimeout, cfgA.RetransmitTries = 20*time.Millisecond, 3
	})
	p.b.Close() // B hears nothing any more
	budget := p.a.RetransmitBudget()
	if want := (20 + 36 + 64.8 + 116.64) * float64(time.Millisecond); budget < time.Duration(want)-time.Millisecond || budget > time.Duration(want)+time.Millisecond {
		t.Fatalf("budget %v, want %v", budget, time.Duration(want))
	}
	if p.a.InitiateTimeout() <= 2*budget {
		t.Fatalf("InitiateTimeout %v does not cover two exchanges' budgets (%v each)", p.a.InitiateTimeout(), budget)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.a.InitiateTimeout())
	defer cancel()
	_, err := p.a.Initiate(ctx, "a-b")
	if !errors.Is(err, errTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if want := "no answer from " + addrB.String() + " after 3 retransmissions, "; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to say %q", err, want)
	}
	if got := p.a.Stats().HandshakesFailed["timeout"]; got != 1 {
		t.Fatalf("timeouts counted: %d (failures %v)", got, p.a.Stats().HandshakesFailed)
	}
	if FailureReason(err) != "timeout" {
		t.Fatalf("FailureReason = %q", FailureReason(err))
	}
}

// TestShutdownDeletesEverySA: Shutdown sends each established IKE SA's
// Delete once, so the peer removes them all, and leaves nothing behind in
// this side's data plane.
func TestShutdownDeletesEverySA(t *testing.T) {
	p := newPair(t)
	const n = 20
	for range n {
		if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(p.b.SAs()); got != n {
		t.Fatalf("responder holds %d IKE SAs, want %d", got, n)
	}
	if err := p.a.Shutdown(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if len(p.a.SAs()) != 0 || len(p.memA.SAs()) != 0 || len(p.memA.Policies()) != 0 {
		t.Fatalf("after Shutdown: %d IKE SAs, %d data-plane SAs, %d policies", len(p.a.SAs()), len(p.memA.SAs()), len(p.memA.Policies()))
	}
	waitFor(t, func() bool { return len(p.b.SAs()) == 0 && len(p.memB.SAs()) == 0 })
}
