package ikev1

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transport"
)

// recObserver records what an engine tells its Observer. Each call reads
// the engine's SA table (taking every SA's lock): a call made with an SA's
// lock held would hang there, and the hang guard turns that into a
// failure.
type recObserver struct {
	eng func() *Engine

	mu       sync.Mutex
	added    []sadb.PolicyID
	removed  []sadb.PolicyID
	failures []string
}

func (o *recObserver) touch(t *testing.T, what string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if e := o.eng(); e != nil {
			_ = e.SAs()
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Errorf("%s: the engine's SAs could not be read from the callback (an SA lock held?)", what)
	}
}

func (o *recObserver) PoliciesAdded(ps []*sadb.Policy) {
	o.mu.Lock()
	for _, p := range ps {
		o.added = append(o.added, p.ID())
	}
	o.mu.Unlock()
}

func (o *recObserver) PoliciesRemoved(ids []sadb.PolicyID) {
	o.mu.Lock()
	o.removed = append(o.removed, ids...)
	o.mu.Unlock()
}

func (o *recObserver) HandshakeFailed(peer netip.Addr, initiator bool, reason string) {
	role := "responder"
	if initiator {
		role = "initiator"
	}
	o.mu.Lock()
	o.failures = append(o.failures, peer.String()+" "+role+" "+reason)
	o.mu.Unlock()
}

func (o *recObserver) counts() (added, removed, failures int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.added), len(o.removed), len(o.failures)
}

func (o *recObserver) failure(i int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i >= len(o.failures) {
		return ""
	}
	return o.failures[i]
}

// lockCheckingObserver is recObserver whose HandshakeFailed also reads the
// SA table, to prove it runs without an SA's lock.
type lockCheckingObserver struct {
	*recObserver
	t *testing.T
}

func (o lockCheckingObserver) HandshakeFailed(peer netip.Addr, initiator bool, reason string) {
	o.touch(o.t, "HandshakeFailed")
	o.recObserver.HandshakeFailed(peer, initiator, reason)
}

func TestObserverHearsIPsecPoliciesBothWaysAndTheirRemoval(t *testing.T) {
	var p *pair
	oa, ob := &recObserver{}, &recObserver{}
	p = newPair(t, func(_, _ *Connection, fa, fb *Config) {
		fa.Observer, fb.Observer = oa, ob
	})
	oa.eng, ob.eng = func() *Engine { return p.a }, func() *Engine { return p.b }
	var answered int
	var mu sync.Mutex
	info, err := p.a.InitiateWith(ctxT(t), p.ca, InitiateOptions{OnAnswer: func() { mu.Lock(); answered++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the responder's policies", func() bool { a, _, _ := ob.counts(); return a > 0 })
	oa.mu.Lock()
	out := 0
	for _, id := range oa.added {
		if id.Direction == sadb.Out {
			out++
		}
	}
	if out != 1 || len(oa.added) < 2 {
		t.Errorf("initiator's observer heard %v, want the pair's policies, one outbound", oa.added)
	}
	oa.mu.Unlock()
	mu.Lock()
	if answered != 1 {
		t.Errorf("OnAnswer called %d times, want once", answered)
	}
	mu.Unlock()
	// A second Quick Mode over the established ISAKMP SA: the peer
	// answered long ago, OnAnswer is called at once.
	if _, err := p.a.InitiateWith(ctxT(t), p.ca, InitiateOptions{OnAnswer: func() { mu.Lock(); answered++; mu.Unlock() }}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if answered != 2 {
		t.Errorf("OnAnswer called %d times after the second initiation, want 2", answered)
	}
	mu.Unlock()
	// Both pairs share their policies: only the last removal is heard.
	if _, err := p.a.Terminate(context.Background(), info.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the policies' removal on both sides", func() bool {
		a1, r1, _ := oa.counts()
		a2, r2, _ := ob.counts()
		return r1 > 0 && r2 > 0 && r1 == a1/2 && r2 == a2/2
	})
	if _, _, f := oa.counts(); f != 0 {
		t.Errorf("failures reported for a good handshake: %v", oa.failures)
	}
}

func TestObserverHearsAnAuthenticationMismatchOnBothSides(t *testing.T) {
	pki := newTestPKI(t)
	var p *pair
	oa, ob := &recObserver{}, &recObserver{}
	p = newPair(t, func(_, cb *Connection, fa, fb *Config) {
		cb.Auth = pki.issue(t, "b.example", "ecdsa") // b accepts only certificates; a offers a PSK
		fa.Observer, fb.Observer = lockCheckingObserver{oa, t}, lockCheckingObserver{ob, t}
	})
	oa.eng, ob.eng = func() *Engine { return p.a }, func() *Engine { return p.b }
	answered := make(chan struct{}, 1)
	_, err := p.a.InitiateWith(ctxT(t), p.ca, InitiateOptions{OnAnswer: func() { answered <- struct{}{} }})
	if err == nil {
		t.Fatal("a PSK initiator reached a certificate-only responder")
	}
	if got := FailureReason(err); got != "peer_no_proposal_chosen" {
		t.Errorf("initiator's failure %q (%v), want peer_no_proposal_chosen", got, err)
	}
	select {
	case <-answered:
	default:
		t.Error("the refusal is an answer: OnAnswer was not called")
	}
	waitFor(t, "both sides' failures", func() bool {
		_, _, fa := oa.counts()
		_, _, fb := ob.counts()
		return fa > 0 && fb > 0
	})
	if got, want := ob.failure(0), addrA.Addr().String()+" responder auth_mismatch"; got != want {
		t.Errorf("responder heard %q, want %q", got, want)
	}
	if got, want := oa.failure(0), addrB.Addr().String()+" initiator peer_no_proposal_chosen"; got != want {
		t.Errorf("initiator heard %q, want %q", got, want)
	}
	if s := p.b.Stats(); s.HandshakesFailed["auth_mismatch"] != 1 {
		t.Errorf("responder's failures %v, want one auth_mismatch", s.HandshakesFailed)
	}
}

func TestASilentPeerIsNoAnswer(t *testing.T) {
	// b's end of the pipe is never served: nothing answers.
	o := &recObserver{}
	db := sadb.New(memory.New())
	e, err := New(Config{SADB: db, Logger: testLogger(t), RetransmitTimeout: 20 * time.Millisecond, RetransmitTries: 2, Readers: 1, Observer: o})
	if err != nil {
		t.Fatal(err)
	}
	ab, ba := transport.Pipe(addrA, addrB)
	e.AddBind(ab)
	t.Cleanup(func() { e.Close(); ba.Close() })
	o.eng = func() *Engine { return e }
	c := &Connection{Name: "silent", Remote: addrB, Auth: testPSK("a very secret key"),
		IKEProposals: mustIKE(t, "aes256-sha256-modp2048"), ESPProposals: mustESP(t, "aes256-sha256")}
	called := false
	_, err = e.InitiateWith(ctxT(t), c, InitiateOptions{OnAnswer: func() { called = true }})
	if got := FailureReason(err); got != "timeout" {
		t.Fatalf("failure %q (%v), want timeout", got, err)
	}
	if called {
		t.Error("OnAnswer called for a peer that never answered")
	}
	waitFor(t, "the failure", func() bool { _, _, f := o.counts(); return f == 1 })
	if got, want := o.failure(0), addrB.Addr().String()+" initiator timeout"; got != want {
		t.Errorf("heard %q, want %q", got, want)
	}
}
