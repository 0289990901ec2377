package ike

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/iked/iked/sadb"
)

// TestDPDHold: with dpd_action hold, a dead peer's SAs go but the
// connection's outbound policies stay as traps (the inbound ones go);
// traffic they catch (an acquire) initiates the connection again once the
// peer is back, and then the traps are released without a gap: the new
// Child SA's policies are the same, referenced once.
func TestDPDHold(t *testing.T) {
	var bDead atomic.Bool
	p := newPair(t, func(ca, _ *Connection, cfgA, _ *Config) {
		ca.DPDDelay, ca.DPDAction = 100*time.Millisecond, DPDHold
		cfgA.RetransmitTimeout, cfgA.RetransmitTries = 20*time.Millisecond, 2
	})
	p.bb.Filter = func([]byte) bool { return !bDead.Load() }
	if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	policies := p.memA.Policies()
	var out []sadb.PolicyID
	for _, pol := range policies {
		if pol.Direction == sadb.Out {
			out = append(out, pol.ID())
		}
	}
	if len(out) == 0 || len(out) == len(policies) {
		t.Fatalf("policies %+v: want outbound and inbound ones", policies)
	}

	bDead.Store(true)
	waitFor(t, func() bool { return len(p.a.SAs()) == 0 })
	if n := len(p.memA.SAs()); n != 0 {
		t.Fatalf("%d SAs left in the data plane after the peer died", n)
	}
	held := p.memA.Policies()
	if len(held) != len(out) {
		t.Fatalf("held policies %+v, want the %d outbound ones", held, len(out))
	}
	for _, pol := range held {
		if pol.Direction != sadb.Out {
			t.Fatalf("an inbound policy stayed: %+v", pol)
		}
	}

	// The peer is back; traffic hits a trap.
	bDead.Store(false)
	p.memA.Raise(sadb.Event{Kind: sadb.Acquire, Policy: out[0], Packet: held[0].Selector})
	waitFor(t, func() bool {
		sas := p.a.SAs()
		return len(sas) == 1 && sas[0].State == "established" && len(sas[0].Children) == 1
	})
	waitFor(t, func() bool {
		p.a.policyMu.Lock()
		defer p.a.policyMu.Unlock()
		return len(p.a.holds) == 0
	})
	if got := len(p.memA.Policies()); got != len(policies) {
		t.Fatalf("%d policies after the connection came back, want %d", got, len(policies))
	}
	p.a.policyMu.Lock()
	for _, id := range out {
		if p.a.policyRefs[id] != 1 {
			t.Errorf("policy %v referenced %d times, want once", id, p.a.policyRefs[id])
		}
	}
	p.a.policyMu.Unlock()

	// Terminating leaves nothing: no trap outlives the connection's SAs.
	if _, err := p.a.Terminate(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	if n := len(p.memA.Policies()); n != 0 {
		t.Fatalf("%d policies after terminate", n)
	}
}
