package ike

import (
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
)

// fakeClock is a settable Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newLimitedResponder is the benchmarks' responder (requests handed to
// handlePacket, answers caught by a sink) with the per-address limits of
// cfg and two connections: identity good.example with the initiators'
// PSK, bad.example with another, so that its IKE_AUTH fails.
func newLimitedResponder(t *testing.T, clock *fakeClock, set func(*Config)) *benchResponder {
	t.Helper()
	conn := func(name, id, secret string) *Connection {
		return &Connection{
			Name: name, LocalID: Identity{Type: wire.IDFQDN, Value: []byte("responder.example")},
			RemoteID: Identity{Type: wire.IDFQDN, Value: []byte(id)}, Auth: mustPSK(t, secret),
			IKEProposals: mustIKE(t, "aes256gcm16-prfsha256-x25519"), ESPProposals: mustESP(t, "aes256gcm16"),
		}
	}
	good := conn("good", "good.example", benchPSK)
	bad := conn("bad", "bad.example", "not the initiators' key")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{
		SADB: sadb.New(memory.New()), Logger: quiet, CookieThreshold: -1, NoFragmentation: true,
		HalfOpenTimeout: time.Hour, Connections: []*Connection{good, bad}, Now: clock.Now,
	}
	set(&cfg)
	eng, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ini, err := New(Config{SADB: sadb.New(memory.New()), Logger: quiet, NoFragmentation: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); ini.Close() })
	return &benchResponder{eng: eng, ini: ini, conn: good, bind: &sinkBind{local: netip.MustParseAddrPort("10.77.0.1:500")}}
}

var (
	peerX = netip.MustParseAddr("10.77.0.2")
	peerY = netip.MustParseAddr("10.77.0.3")
)

// limitedInit sends an IKE_SA_INIT request from addr:port with identity id
// (sent later in IKE_AUTH) and returns the initiator and the answer, nil
// when the request was dropped.
func limitedInit(t *testing.T, r *benchResponder, addr netip.Addr, port uint16, id string) (*benchInitiator, []byte) {
	t.Helper()
	bi, req := r.saInit(t, 0, Identity{Type: wire.IDFQDN, Value: []byte(id)})
	bi.from = netip.AddrPortFrom(addr, port)
	r.bind.mu.Lock()
	r.bind.last = nil
	r.bind.mu.Unlock()
	r.eng.handlePacket(r.bind, bi.from, req)
	resp := r.bind.take()
	if len(resp) == 0 {
		return bi, nil
	}
	return bi, resp
}

// limitedAuth completes bi's handshake and returns the notify the
// responder answered with (0 when it authenticated the initiator).
func limitedAuth(t *testing.T, r *benchResponder, bi *benchInitiator, initResp []byte) wire.NotifyType {
	t.Helper()
	r.eng.handlePacket(r.bind, bi.from, bi.auth(t, r, initResp))
	resp := r.bind.take()
	m, err := wire.Parse(resp)
	if err != nil {
		t.Fatalf("IKE_AUTH answer: %v", err)
	}
	inner, err := bi.sa.openMessage(resp, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range inner {
		if n, ok := p.(*wire.Notify); ok && n.Code < 16384 {
			return n.Code
		}
	}
	return 0
}

// TestAuthFailuresBlockAddress: after AuthFailureLimit AUTHENTICATION_FAILED
// answers to one address within the window, that address's IKE_SA_INIT
// requests are dropped (counted as rate_limited) until the window has
// passed; other addresses, and the address's established SA, are
// untouched.
func TestAuthFailuresBlockAddress(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	r := newLimitedResponder(t, clock, func(c *Config) { c.AuthFailureLimit, c.AuthFailureWindow = 3, time.Minute })

	// An SA of X that authenticates, before and after the failures.
	bi, resp := limitedInit(t, r, peerX, 1000, "good.example")
	if resp == nil || limitedAuth(t, r, bi, resp) != 0 {
		t.Fatal("the good initiator did not authenticate")
	}
	for i := range 3 {
		if st := r.eng.PeerLimitStats(); st.Blocked != 0 {
			t.Fatalf("blocked after %d failures: %+v", i, st)
		}
		bi, resp := limitedInit(t, r, peerX, uint16(2000+i), "bad.example")
		if resp == nil {
			t.Fatalf("IKE_SA_INIT %d dropped before the limit", i)
		}
		if code := limitedAuth(t, r, bi, resp); code != wire.NotifyAuthenticationFailed {
			t.Fatalf("IKE_AUTH %d answered %v, want AUTHENTICATION_FAILED", i, code)
		}
		clock.advance(10 * time.Second)
	}
	// Blocked: every request from X is dropped and counted, whatever the
	// port or identity; Y is answered.
	for i, id := range []string{"bad.example", "good.example", "bad.example"} {
		if _, resp := limitedInit(t, r, peerX, uint16(3000+i), id); resp != nil {
			t.Fatalf("IKE_SA_INIT %d from the blocked address was answered", i)
		}
	}
	st := r.eng.Stats()
	if got := st.PacketsDropped[DropRateLimited]; got != 3 {
		t.Fatalf("rate_limited drops %d, want 3 (one per request from the blocked address)", got)
	}
	if ls := r.eng.PeerLimitStats(); ls.Blocked != 1 || ls.Blocks != 1 {
		t.Fatalf("limit stats %+v, want one address blocked once", ls)
	}
	if st.IKESAs["established"] != 1 {
		t.Fatalf("the blocked address's established SA is gone: %v", st.IKESAs)
	}
	if _, resp := limitedInit(t, r, peerY, 1000, "bad.example"); resp == nil {
		t.Fatal("another address was dropped too")
	}
	// The block lasts one window from the failure that reached the limit.
	clock.advance(time.Minute - 10*time.Second - time.Nanosecond)
	if _, resp := limitedInit(t, r, peerX, 4000, "good.example"); resp != nil {
		t.Fatal("answered before the block ended")
	}
	clock.advance(time.Nanosecond)
	bi, resp = limitedInit(t, r, peerX, 4001, "good.example")
	if resp == nil {
		t.Fatal("still dropped after the block ended")
	}
	if limitedAuth(t, r, bi, resp) != 0 {
		t.Fatal("the good initiator did not authenticate after the block")
	}
	if ls := r.eng.PeerLimitStats(); ls.Blocked != 0 || ls.Blocks != 1 {
		t.Fatalf("limit stats after the block %+v", ls)
	}
}

// TestAuthFailuresOutsideWindowDoNotBlock: failures further apart than the
// window never add up to the limit.
func TestAuthFailuresOutsideWindowDoNotBlock(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	r := newLimitedResponder(t, clock, func(c *Config) { c.AuthFailureLimit, c.AuthFailureWindow = 2, time.Minute })
	for i := range 4 {
		bi, resp := limitedInit(t, r, peerX, uint16(2000+i), "bad.example")
		if resp == nil {
			t.Fatalf("IKE_SA_INIT %d dropped", i)
		}
		if code := limitedAuth(t, r, bi, resp); code != wire.NotifyAuthenticationFailed {
			t.Fatalf("IKE_AUTH %d answered %v", i, code)
		}
		clock.advance(time.Minute)
	}
	if ls := r.eng.PeerLimitStats(); ls.Blocks != 0 {
		t.Fatalf("blocked by failures a window apart: %+v", ls)
	}
}

// TestHalfOpenPerPeer: one address holds at most HalfOpenPerPeer half-open
// IKE SAs; further requests from it are dropped and counted, its
// retransmissions are still answered, other addresses are not affected,
// and a slot frees when a half-open SA is established or fails.
func TestHalfOpenPerPeer(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	r := newLimitedResponder(t, clock, func(c *Config) { c.HalfOpenPerPeer = 2 })
	good, goodResp := limitedInit(t, r, peerX, 1000, "good.example")
	bad, badResp := limitedInit(t, r, peerX, 1001, "bad.example")
	if goodResp == nil || badResp == nil {
		t.Fatal("requests below the limit dropped")
	}
	if _, resp := limitedInit(t, r, peerX, 1002, "good.example"); resp != nil {
		t.Fatal("a third half-open SA from one address was made")
	}
	// A retransmission of a request already answered is answered again.
	r.eng.handlePacket(r.bind, good.from, good.sa.msgI)
	if string(r.bind.take()) != string(goodResp) {
		t.Fatal("a retransmitted IKE_SA_INIT was not answered from the cache")
	}
	if _, resp := limitedInit(t, r, peerY, 1000, "good.example"); resp == nil {
		t.Fatal("another address was dropped")
	}
	st := r.eng.Stats()
	if st.HalfOpen != 3 || st.PacketsDropped[DropHalfOpenLimit] != 1 {
		t.Fatalf("half-open %d, half_open_limit drops %d; want 3 and 1", st.HalfOpen, st.PacketsDropped[DropHalfOpenLimit])
	}
	// Established: a slot frees.
	if limitedAuth(t, r, good, goodResp) != 0 {
		t.Fatal("good initiator refused")
	}
	_, resp := limitedInit(t, r, peerX, 1003, "bad.example")
	if resp == nil {
		t.Fatal("dropped after a half-open SA was established")
	}
	if _, resp := limitedInit(t, r, peerX, 1004, "bad.example"); resp != nil {
		t.Fatal("limit not enforced again")
	}
	// Failed: a slot frees too.
	if limitedAuth(t, r, bad, badResp) != wire.NotifyAuthenticationFailed {
		t.Fatal("bad initiator accepted")
	}
	if _, resp := limitedInit(t, r, peerX, 1005, "good.example"); resp == nil {
		t.Fatal("dropped after a half-open SA failed")
	}
	st = r.eng.Stats()
	if st.HalfOpen != 3 || st.PacketsDropped[DropHalfOpenLimit] != 2 {
		t.Fatalf("half-open %d, half_open_limit drops %d; want 3 and 2", st.HalfOpen, st.PacketsDropped[DropHalfOpenLimit])
	}
	// All gone: the per-address table holds nothing for them.
	r.eng.Close()
	r.eng.limits.mu.Lock()
	defer r.eng.limits.mu.Unlock()
	if n := len(r.eng.limits.halfOpen); n != 0 {
		t.Fatalf("%d addresses left in the half-open table after Close: %v", n, r.eng.limits.halfOpen)
	}
}

// TestAuthFailureTableBounded: the failure table never grows past its
// bound; failures it cannot record are counted.
func TestAuthFailureTableBounded(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	e, err := New(Config{SADB: sadb.New(memory.New()), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AuthFailureLimit: 5, AuthFailureWindow: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	addr := func(i int) netip.Addr {
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	for i := range maxFailureEntries + 10 {
		e.authFailed(addr(i))
	}
	if n, st := len(e.limits.failures), e.PeerLimitStats(); n != maxFailureEntries || st.Unrecorded != 10 {
		t.Fatalf("table %d (bound %d), unrecorded %d", n, maxFailureEntries, st.Unrecorded)
	}
	// Once their window is over the entries are swept for new ones.
	clock.advance(time.Minute)
	e.authFailed(addr(maxFailureEntries + 20))
	if n := len(e.limits.failures); n != 1 {
		t.Fatalf("table %d after the window, want 1", n)
	}
}

// TestHalfOpenExpires: a half-open IKE SA whose IKE_AUTH never comes is
// removed after HalfOpenTimeout, counted, and frees its address's slot.
func TestHalfOpenExpires(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	r := newLimitedResponder(t, clock, func(c *Config) { c.HalfOpenPerPeer, c.HalfOpenTimeout = 1, 50*time.Millisecond })
	if _, resp := limitedInit(t, r, peerX, 1000, "good.example"); resp == nil {
		t.Fatal("IKE_SA_INIT dropped")
	}
	waitFor(t, func() bool {
		st := r.eng.Stats()
		return st.HalfOpen == 0 && len(r.eng.SAs()) == 0 && st.HandshakesFailed["half_open_timeout"] == 1
	})
	if _, resp := limitedInit(t, r, peerX, 1001, "good.example"); resp == nil {
		t.Fatal("the expired SA still holds its address's slot")
	}
}
