package ike

import (
	"sync"
	"testing"

	"github.com/iked/iked/ike/wire"

	"github.com/iked/iked/sadb"
)

// childKeysPair checks that every SA on one side has its twin with the
// same SPI and keys on the other.
func childKeysPair(t *testing.T, p *pair) {
	t.Helper()
	b := map[uint32]sadb.SA{}
	for _, s := range p.memB.SAs() {
		b[s.SPI] = s
	}
	for _, s := range p.memA.SAs() {
		o, ok := b[s.SPI]
		if !ok || string(o.EncrKey) != string(s.EncrKey) || string(o.IntegKey) != string(s.IntegKey) || o.Inbound == s.Inbound {
			t.Fatalf("SA %08x does not pair between the peers", s.SPI)
		}
	}
	if len(p.memA.SAs()) != len(b) {
		t.Fatalf("%d SAs on A, %d on B", len(p.memA.SAs()), len(b))
	}
}

// TestCreateChildAndRekey: an additional Child SA, then a rekey with PFS
// that replaces it make-before-break: new SPIs and keys on both sides, the
// old SAs gone, the policies kept.
func TestCreateChildAndRekey(t *testing.T) {
	for _, esp := range []string{"aes256gcm16", "aes128-sha256-x25519"} {
		t.Run(esp, func(t *testing.T) {
			p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
				ca.ESPProposals, cb.ESPProposals = mustESP(t, esp), mustESP(t, esp)
			})
			infos, err := p.a.InitiateNew(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			id := infos[0].ID
			if err := p.a.CreateChild(ctxT(t), id, 0); err != nil {
				t.Fatal(err)
			}
			if n := len(p.a.SAs()[0].Children); n != 2 || len(p.b.SAs()[0].Children) != 2 {
				t.Fatalf("children after CREATE_CHILD_SA: %d / %d", n, len(p.b.SAs()[0].Children))
			}
			childKeysPair(t, p)
			policies := len(p.memA.Policies())

			first := p.a.allSAs()[0].children[0]
			oldIn, oldOut := first.inbound.SPI, first.outbound.SPI
			if err := p.a.CreateChild(ctxT(t), id, oldIn); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return len(p.memB.SAs()) == 4 })
			childKeysPair(t, p)
			for _, s := range append(p.memA.SAs(), p.memB.SAs()...) {
				if s.SPI == oldIn || s.SPI == oldOut {
					t.Fatalf("old SA %08x still installed", s.SPI)
				}
			}
			if len(p.memA.Policies()) != policies || len(p.memB.Policies()) != policies {
				t.Fatalf("policies changed across the rekey: %d -> %d / %d", policies, len(p.memA.Policies()), len(p.memB.Policies()))
			}
			want := "AES_GCM_16-256/NO_EXT_SEQ"
			if esp != "aes256gcm16" {
				want = "AES_CBC-128/HMAC_SHA2_256_128/CURVE_25519/NO_EXT_SEQ"
			}
			if got := p.a.SAs()[0].Children[1].Algorithms; got != want {
				t.Fatalf("rekeyed Child SA algorithms %q, want %q", got, want)
			}
		})
	}
}

// TestRekeyUnknownChild: a REKEY_SA for an SPI the responder does not know
// is answered with CHILD_SA_NOT_FOUND.
func TestRekeyUnknownChild(t *testing.T) {
	p := newPair(t)
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	sa := p.a.allSAs()[0]
	sa.mu.Lock()
	c := sa.children[0]
	sa.mu.Unlock()
	// The responder forgets its half first.
	bsa := p.b.allSAs()[0]
	bsa.mu.Lock()
	bc := bsa.children[0]
	bsa.removeChild(bc)
	bsa.dropChild(bc)
	bsa.mu.Unlock()
	err = p.a.CreateChild(ctxT(t), infos[0].ID, c.inbound.SPI)
	if ne, ok := err.(*notifyError); !ok || ne.code != 44 {
		t.Fatalf("err = %v, want CHILD_SA_NOT_FOUND", err)
	}
}

// TestSimultaneousChildRekey: both sides rekey the same Child SA at once
// (each request is held until the other side has sent its own), twenty
// times; every time the sides converge to one Child SA whose keys pair, with
// the policies kept. When both exchanges complete, the nonce rule of §2.8.1
// removes the redundant SA; when one side finished first and is deleting the
// old SA, the other's rekey is refused with TEMPORARY_FAILURE, or with
// CHILD_SA_NOT_FOUND once the old SA is gone (§2.25).
func TestSimultaneousChildRekey(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	var barrier sync.WaitGroup
	hold := func(b []byte) bool {
		if h, err := wire.ParseHeader(b); err == nil && h.Exchange == wire.CREATE_CHILD_SA && !h.IsResponse() {
			barrier.Done()
			barrier.Wait()
		}
		return true
	}
	p.ba.Filter, p.bb.Filter = hold, hold
	policies := len(p.memA.Policies())
	for round := range 20 {
		sa, sb := p.a.allSAs()[0], p.b.allSAs()[0]
		sa.mu.Lock()
		ca := sa.children[0]
		sa.mu.Unlock()
		sb.mu.Lock()
		cb := sb.children[0]
		sb.mu.Unlock()
		barrier.Add(2)
		errs := make(chan error, 2)
		go func() { errs <- p.a.CreateChild(ctxT(t), sa.id(), ca.inbound.SPI) }()
		go func() { errs <- p.b.CreateChild(ctxT(t), sb.id(), cb.inbound.SPI) }()
		for range 2 {
			if err := <-errs; err != nil {
				if ne, ok := err.(*notifyError); !ok || (ne.code != wire.NotifyTemporaryFailure && ne.code != wire.NotifyChildSANotFound) {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
		waitFor(t, func() bool {
			return len(p.memA.SAs()) == 2 && len(p.memB.SAs()) == 2 && len(p.a.SAs()[0].Children) == 1 && len(p.b.SAs()[0].Children) == 1
		})
		childKeysPair(t, p)
		if len(p.memA.Policies()) != policies || len(p.memB.Policies()) != policies {
			t.Fatalf("round %d: policies %d / %d, want %d", round, len(p.memA.Policies()), len(p.memB.Policies()), policies)
		}
	}
}

// TestChildKeyDirection: KEYMAT's first key protects traffic from the
// initiator of the CREATE_CHILD_SA exchange (§2.17), here the IKE
// responder, not from the IKE SA's initiator.
func TestChildKeyDirection(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	bsa := p.b.allSAs()[0]
	if err := p.b.CreateChild(ctxT(t), bsa.id(), 0); err != nil {
		t.Fatal(err)
	}
	bsa.mu.Lock()
	c := bsa.children[1]
	skd := append([]byte(nil), bsa.keys.SkD...)
	prf := bsa.suite.prf
	bsa.mu.Unlock()
	seed := append(append([]byte(nil), c.nonces[0]...), c.nonces[1]...)
	n := c.suite.encr.KeyMaterialLen(c.suite.keyBits)
	keymat, err := prf.Plus(skd, seed, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.outbound.EncrKey) != string(keymat[:n]) || string(c.inbound.EncrKey) != string(keymat[n:2*n]) {
		t.Fatal("the exchange initiator's outbound key is not KEYMAT's first key")
	}
}
