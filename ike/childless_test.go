package ike

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/iked/iked/ike/wire"
)

// saInitAnnounces watches the IKE_SA_INIT datagrams one end sends and
// reports whether the last carried CHILDLESS_IKEV2_SUPPORTED.
type saInitAnnounces struct {
	mu       sync.Mutex
	seen     int
	announce bool
}

func (w *saInitAnnounces) filter(b []byte) bool {
	if m, err := wire.Parse(b); err == nil && m.Header.Exchange == wire.IKE_SA_INIT {
		w.mu.Lock()
		w.seen++
		w.announce = wire.FindNotify(m.Payloads, wire.NotifyChildlessIKEv2Supported) != nil
		w.mu.Unlock()
	}
	return true
}

func (w *saInitAnnounces) get() (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen, w.announce
}

// TestChildlessInitiation (RFC 6023): the responder announces support in
// its IKE_SA_INIT response, an initiator with childless prefer or force
// then brings the IKE SA up alone, and Initiate on the established
// connection adds the Child SA with CREATE_CHILD_SA.
func TestChildlessInitiation(t *testing.T) {
	for _, mode := range []Childless{ChildlessPrefer, ChildlessForce} {
		t.Run(mode.String(), func(t *testing.T) {
			var resp, req saInitAnnounces
			p := newPair(t, func(ca, _ *Connection, _, _ *Config) { ca.Childless = mode })
			p.bb.Filter, p.ba.Filter = resp.filter, req.filter
			infos, err := p.a.Initiate(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			if n, ok := resp.get(); n != 1 || !ok {
				t.Errorf("responder's IKE_SA_INIT answers: %d, announcing: %v", n, ok)
			}
			if _, ok := req.get(); ok {
				t.Error("the initiator announced CHILDLESS_IKEV2_SUPPORTED; RFC 6023 has the responder announce it")
			}
			if len(infos) != 1 || infos[0].State != "established" || len(infos[0].Children) != 0 {
				t.Fatalf("initiator: %+v, want an established IKE SA without Child SAs", infos)
			}
			waitFor(t, func() bool { s := p.b.SAs(); return len(s) == 1 && s[0].State == "established" })
			if b := p.b.SAs()[0]; len(b.Children) != 0 || len(p.memA.SAs()) != 0 || len(p.memB.SAs()) != 0 {
				t.Fatalf("Child SAs after a childless IKE_AUTH: responder %d, data planes %d/%d", len(b.Children), len(p.memA.SAs()), len(p.memB.SAs()))
			}
			// Initiate on the established connection creates the Child SA.
			again, err := p.a.Initiate(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			if len(again) != 1 || again[0].ID != infos[0].ID || len(again[0].Children) != 1 {
				t.Fatalf("second Initiate: %+v, want the same IKE SA with one Child SA", again)
			}
			waitFor(t, func() bool { return len(p.b.SAs()[0].Children) == 1 })
			checkPaired(t, p)
		})
	}
}

// TestChildlessResponderInitiates: the responder of a childless IKE SA
// creates its Child SA on demand (Initiate finds the connection up).
func TestChildlessResponderInitiates(t *testing.T) {
	p := newPair(t, func(ca, _ *Connection, _, _ *Config) { ca.Childless = ChildlessForce })
	if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { s := p.b.SAs(); return len(s) == 1 && s[0].State == "established" })
	infos, err := p.b.Initiate(ctxT(t), "b-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Role != "responder" || len(infos[0].Children) != 1 {
		t.Fatalf("responder's Initiate: %+v", infos)
	}
	waitFor(t, func() bool { return len(p.a.SAs()[0].Children) == 1 })
	checkPaired(t, p)
}

// checkPaired: each side has one Child SA and their SPIs pair up.
func checkPaired(t *testing.T, p *pair) {
	t.Helper()
	a, b := p.a.SAs(), p.b.SAs()
	if len(a) != 1 || len(b) != 1 || len(a[0].Children) != 1 || len(b[0].Children) != 1 {
		t.Fatalf("SAs: %+v / %+v", a, b)
	}
	ca, cb := a[0].Children[0], b[0].Children[0]
	if ca.SPIIn != cb.SPIOut || ca.SPIOut != cb.SPIIn || len(p.memA.SAs()) != 2 || len(p.memB.SAs()) != 2 {
		t.Fatalf("Child SAs do not pair: %+v / %+v", ca, cb)
	}
}

// TestChildlessRefusals: force against a responder that does not announce
// support fails before IKE_AUTH; a responder with force refuses an
// IKE_AUTH with a Child SA, one with never a childless IKE_AUTH, both with
// INVALID_SYNTAX, as charon does.
func TestChildlessRefusals(t *testing.T) {
	t.Run("force-against-never", func(t *testing.T) {
		var resp saInitAnnounces
		p := newPair(t, func(ca, cb *Connection, _, _ *Config) { ca.Childless, cb.Childless = ChildlessForce, ChildlessNever })
		p.bb.Filter = resp.filter
		_, err := p.a.Initiate(ctxT(t), "a-b")
		if err == nil || !strings.Contains(err.Error(), "did not announce CHILDLESS_IKEV2_SUPPORTED") {
			t.Fatalf("err = %v", err)
		}
		if _, ok := resp.get(); ok {
			t.Error("a responder with childless never announced support")
		}
	})
	t.Run("prefer-against-never", func(t *testing.T) {
		p := newPair(t, func(ca, cb *Connection, _, _ *Config) { ca.Childless, cb.Childless = ChildlessPrefer, ChildlessNever })
		infos, err := p.a.Initiate(ctxT(t), "a-b")
		if err != nil || len(infos[0].Children) != 1 {
			t.Fatalf("prefer without the responder's support: %v, %+v; want the Child SA in IKE_AUTH", err, infos)
		}
	})
	t.Run("responder-force", func(t *testing.T) {
		p := newPair(t, func(_, cb *Connection, _, _ *Config) { cb.Childless = ChildlessForce })
		_, err := p.a.Initiate(ctxT(t), "a-b")
		var ne *notifyError
		if !errors.As(err, &ne) || ne.code != wire.NotifyInvalidSyntax {
			t.Fatalf("err = %v, want INVALID_SYNTAX", err)
		}
		// The responder answers before it lets the SA go.
		waitFor(t, func() bool { return len(p.b.SAs()) == 0 })
		if p.b.Stats().HandshakesFailed["childless_mismatch"] != 1 {
			t.Errorf("responder: failures %v", p.b.Stats().HandshakesFailed)
		}
	})
	t.Run("responder-never", func(t *testing.T) {
		// Another connection for the same address takes childless IKE
		// SAs, so support is announced; the one the identity selects
		// refuses them.
		p := newPair(t, func(ca, cb *Connection, _, _ *Config) { ca.Childless, cb.Childless = ChildlessForce, ChildlessNever })
		other := *p.connB
		other.Name, other.Childless = "other", ChildlessAllow
		other.RemoteID = Identity{Type: wire.IDFQDN, Value: []byte("other.example")}
		if err := p.b.SetConnections([]*Connection{&other, p.connB}); err != nil {
			t.Fatal(err)
		}
		_, err := p.a.Initiate(ctxT(t), "a-b")
		var ne *notifyError
		if !errors.As(err, &ne) || ne.code != wire.NotifyInvalidSyntax {
			t.Fatalf("err = %v, want INVALID_SYNTAX", err)
		}
		if p.b.Stats().HandshakesFailed["childless_mismatch"] != 1 {
			t.Errorf("responder failures %v", p.b.Stats().HandshakesFailed)
		}
	})
}
