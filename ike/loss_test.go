package ike

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestHandshakesUnderLoss: with a fifth of the datagrams lost in each
// direction, 100 consecutive handshakes all complete through
// retransmission, and each leaves exactly one IKE SA on both sides. An
// exchange fails only when every try loses the request or the response
// (0.36 per try), so the tries are raised from the default 5 (0.2% per
// exchange) to 12, as an operator on such a link would.
func TestHandshakesUnderLoss(t *testing.T) {
	p := newPair(t, func(_, _ *Connection, cfgA, cfgB *Config) {
		cfgA.RetransmitTimeout, cfgB.RetransmitTimeout = 20*time.Millisecond, 20*time.Millisecond
		cfgA.RetransmitBase, cfgB.RetransmitBase = 1.5, 1.5
		cfgA.RetransmitTries, cfgB.RetransmitTries = 12, 12
	})
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	lose := func([]byte) bool {
		mu.Lock()
		defer mu.Unlock()
		return rng.IntN(100) >= 20
	}
	p.ba.Filter, p.bb.Filter = lose, lose
	for i := range 100 {
		if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		waitFor(t, func() bool { return len(p.b.SAs()) == 1 && p.b.SAs()[0].State == "established" })
		for _, sa := range p.a.allSAs() {
			sa.destroy("test")
		}
		for _, sa := range p.b.allSAs() {
			sa.destroy("test")
		}
	}
	if p.a.Stats().Retransmissions == 0 {
		t.Fatal("no retransmissions: the loss did not happen")
	}
	t.Logf("retransmissions: initiator %d; answered from cache by the responder %d",
		p.a.Stats().Retransmissions, p.b.Stats().RetransmitsAnswered)
}
