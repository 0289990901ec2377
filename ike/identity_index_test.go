package ike

import (
	"slices"
	"testing"

	"github.com/iked/iked/ike/wire"
)

// The identity index finds every SA of an identity pair, and forgets each
// as it is unregistered, wherever it sits in its identity's list.
func TestIdentityIndex(t *testing.T) {
	e := newIndexEngine(t)
	mk := func(remote string) *ikeSA {
		sa := e.indexTestSA(remote)
		e.indexIdentity(sa)
		return sa
	}
	a, b, c, other := mk("peer.example"), mk("peer.example"), mk("peer.example"), mk("other.example")
	e.indexIdentity(b) // indexed twice: still once in the list
	key := a.identHash
	same := func(want ...*ikeSA) {
		t.Helper()
		got := e.sameIdentity(a)
		if !a.identIndexed {
			// a is gone: ask through a stand-in with its identities.
			got = nil
			probe := &ikeSA{eng: e, localID: a.localID, remoteID: a.remoteID}
			e.indexIdentity(probe)
			for _, x := range e.sameIdentity(probe) {
				if x != probe {
					got = append(got, x)
				}
			}
			e.unregister(probe)
		}
		if len(got) != len(want) {
			t.Fatalf("%d SAs under the identity, want %d", len(got), len(want))
		}
		for _, x := range want {
			if !slices.Contains(got, x) {
				t.Fatalf("SA missing from the identity index")
			}
		}
	}
	same(a, b, c)
	if got := e.sameIdentity(other); len(got) != 1 || got[0] != other {
		t.Fatalf("other identity: %v", got)
	}
	// Newest first: b (indexed again), c, a.
	e.unregister(c) // the middle of the list
	same(a, b)
	e.unregister(a) // its tail
	same(b)
	e.unregister(a) // again: nothing changes
	same(b)
	e.unregister(b) // its head, alone
	same()
	if _, ok := e.byIdentity[key]; ok {
		t.Fatal("empty identity kept in the index")
	}
	e.unregister(other)
	if len(e.byIdentity) != 0 {
		t.Fatalf("%d identities left in the index", len(e.byIdentity))
	}
}

// SAs of different identities whose hashes collide share a list in the
// index, and sameIdentity still tells them apart.
func TestIdentityIndexHashCollision(t *testing.T) {
	e := newIndexEngine(t)
	mk := func(remote string) *ikeSA {
		sa := e.indexTestSA(remote)
		e.indexIdentityHash(sa, 42) // every one on the same hash
		return sa
	}
	a, b, a2 := mk("a.example"), mk("b.example"), mk("a.example")
	if got := e.sameIdentity(a); len(got) != 2 || !slices.Contains(got, a) || !slices.Contains(got, a2) {
		t.Fatalf("a's identity: %d SAs, want a and a2", len(got))
	}
	if got := e.sameIdentity(b); len(got) != 1 || got[0] != b {
		t.Fatalf("b's identity: %d SAs, want b alone", len(got))
	}
	e.unregister(b)
	if got := e.sameIdentity(a2); len(got) != 2 {
		t.Fatalf("after b left: %d SAs of a's identity, want 2", len(got))
	}
}

// newIndexEngine is an engine for the identity index tests, closed with
// the test.
func newIndexEngine(t *testing.T) *Engine {
	e, err := New(Config{SADB: newPair(t).a.cfg.SADB})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// indexTestSA is an SA of gw.example with peer remote, not yet indexed.
func (e *Engine) indexTestSA(remote string) *ikeSA {
	return &ikeSA{eng: e, localID: Identity{Type: wire.IDFQDN, Value: []byte("gw.example")},
		remoteID: Identity{Type: wire.IDFQDN, Value: []byte(remote)}}
}
