package ike

import (
	"fmt"
	"testing"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
)

// TestAutomaticRekeys: with lifetimes of a fraction of a second, Child SAs
// and the IKE SA rekey on their own, repeatedly, and the peers keep exactly
// one IKE SA and one Child SA whose keys pair.
func TestAutomaticRekeys(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.RekeyTime, cb.RekeyTime = 60*time.Millisecond, 90*time.Millisecond
		ca.IKERekeyTime, cb.IKERekeyTime = 200*time.Millisecond, 300*time.Millisecond
	})
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		sa, sb := p.a.Stats(), p.b.Stats()
		return sa.Rekeys["child"]+sb.Rekeys["child"] >= 12 && sa.Rekeys["ike"]+sb.Rekeys["ike"] >= 6
	})
	// Stop rekeying and let the last exchanges settle: the SAs' connection
	// becomes a copy without lifetimes, so no new timer is armed.
	for _, e := range []*Engine{p.a, p.b} {
		for _, sa := range e.allSAs() {
			sa.mu.Lock()
			c := *sa.conn
			c.RekeyTime, c.IKERekeyTime = 0, 0
			sa.conn = &c
			sa.stopTimers()
			sa.mu.Unlock()
		}
	}
	waitFor(t, func() bool {
		a, b := p.a.SAs(), p.b.SAs()
		if len(a) != 1 || len(b) != 1 || len(a[0].Children) != 1 || len(b[0].Children) != 1 {
			return false
		}
		return a[0].SPIi == b[0].SPIi && a[0].Children[0].SPIIn == b[0].Children[0].SPIOut && len(p.memA.SAs()) == 2 && len(p.memB.SAs()) == 2
	})
	childKeysPair(t, p)
}

// TestDeadPeer: the responder vanishes; dead peer detection notices within
// the DPD delay plus the retransmissions, and the initiator removes its
// SAs from the data plane.
func TestDeadPeer(t *testing.T) {
	p := newPair(t, func(ca, _ *Connection, cfgA, _ *Config) {
		ca.DPDDelay = 50 * time.Millisecond
		// A retransmission budget (≈ 1.2 s) far above an answer's time
		// even on a loaded machine: a live peer is never taken for dead.
		cfgA.RetransmitTimeout, cfgA.RetransmitTries = 200*time.Millisecond, 2
	})
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	// While the peer answers, DPD keeps the SA: liveness checks go out
	// and come back.
	waitFor(t, func() bool { return p.a.Stats().PacketsSent >= 6 })
	if len(p.a.SAs()) != 1 || p.a.Stats().HandshakesFailed["dead_peer"] != 0 {
		t.Fatal("SA removed while the peer was alive")
	}
	p.ba.Filter = func([]byte) bool { return false } // the peer is gone
	start := time.Now()
	waitFor(t, func() bool { return len(p.a.SAs()) == 0 && len(p.memA.SAs()) == 0 })
	if p.a.Stats().HandshakesFailed["dead_peer"] != 1 {
		t.Fatalf("dead peer not counted: %v", p.a.Stats().HandshakesFailed)
	}
	t.Logf("dead peer detected after %v", time.Since(start))
}

// TestSoftExpireRekeys: a soft expiry from the data plane rekeys the
// Child SA; a hard expiry deletes it on both sides.
func TestSoftExpireRekeys(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	old := p.memA.SAs()[0]
	p.memA.Raise(sadb.Event{Kind: sadb.SoftExpire, SA: old.ID(), ReqID: old.ReqID})
	waitFor(t, func() bool {
		sas := p.memA.SAs()
		return len(sas) == 2 && sas[0].SPI != old.SPI && sas[1].SPI != old.SPI && len(p.memB.SAs()) == 2
	})
	childKeysPair(t, p)
	cur := p.memA.SAs()[0]
	p.memA.Raise(sadb.Event{Kind: sadb.HardExpire, SA: cur.ID(), ReqID: cur.ReqID})
	waitFor(t, func() bool { return len(p.memA.SAs()) == 0 && len(p.memB.SAs()) == 0 })
	if n := len(p.a.SAs()[0].Children); n != 0 {
		t.Fatalf("%d Child SAs left", n)
	}
}

// TestSoftExpiresOfBothHalves: both SAs of a Child SA reach their soft
// lifetime together (traffic flows both ways), and each side's data plane
// says so for its inbound and its outbound SA: one rekey replaces the
// Child SA, not two (no duplicate Child SAs left behind).
func TestSoftExpiresOfBothHalves(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	olds := map[uint32]bool{}
	for _, m := range []*memory.Backend{p.memA, p.memB} {
		for _, s := range m.SAs() {
			olds[s.SPI] = true
		}
	}
	for _, x := range []struct {
		m *memory.Backend
	}{{p.memA}, {p.memB}} {
		for _, s := range x.m.SAs() {
			x.m.Raise(sadb.Event{Kind: sadb.SoftExpire, SA: s.ID(), ReqID: s.ReqID})
		}
	}
	waitFor(t, func() bool {
		for _, m := range []*memory.Backend{p.memA, p.memB} {
			sas := m.SAs()
			if len(sas) != 2 || olds[sas[0].SPI] || olds[sas[1].SPI] {
				return false
			}
		}
		a, b := p.a.SAs(), p.b.SAs()
		return len(a) == 1 && len(b) == 1 && len(a[0].Children) == 1 && len(b[0].Children) == 1
	})
	childKeysPair(t, p)
}

// TestChildRekeyOnceAtATime: while this side's rekey of a Child SA is in
// flight, a second rekey of the same Child SA (its other half's soft
// expiry, a timer, an operator) is refused at once instead of making a
// second replacement.
func TestChildRekeyOnceAtATime(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	sa := p.a.allSAs()[0]
	sa.mu.Lock()
	c := sa.children[0]
	sa.mu.Unlock()
	// The first rekey's request waits on the wire until the second rekey
	// has been asked for.
	held, release := holdFirstRequest(p.ba, wire.CREATE_CHILD_SA)
	first := make(chan error, 1)
	go func() { first <- sa.createChild(ctxT(t), c) }()
	waitFor(t, held.Load)
	if err := sa.createChild(ctxT(t), c); err == nil {
		t.Fatal("a second rekey of the same Child SA went ahead while the first was in flight")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		a, b := p.a.SAs(), p.b.SAs()
		return len(a[0].Children) == 1 && len(b[0].Children) == 1 && len(p.memA.SAs()) == 2 && len(p.memB.SAs()) == 2
	})
	if a, b := p.a.Stats().Rekeys["child"], p.b.Stats().Rekeys["child"]; a != 1 || b != 1 {
		t.Fatalf("Child SA rekeys counted %d / %d, want one on each side", a, b)
	}
}

// TestReauthentication: after the reauthentication interval the initiator
// brings up a new IKE SA and Child SA, then deletes the old ones; the data
// plane never lacks an SA pair for the selectors (make-before-break).
func TestReauthentication(t *testing.T) {
	p := newPair(t, func(ca, _ *Connection, _, _ *Config) { ca.ReauthTime = 150 * time.Millisecond })
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	first := infos[0]
	stop := make(chan struct{})
	gap := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if len(p.memA.Policies()) == 0 || len(p.memA.SAs()) < 2 {
				select {
				case gap <- "initiator data plane without policies or SAs":
				default:
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	waitFor(t, func() bool { return p.a.Stats().Rekeys["reauth"] >= 2 })
	close(stop)
	select {
	case g := <-gap:
		t.Fatal(g)
	default:
	}
	waitFor(t, func() bool { return len(p.a.SAs()) == 1 && len(p.b.SAs()) == 1 && len(p.memB.SAs()) == 2 })
	now := p.a.SAs()[0]
	if now.SPIi == first.SPIi || now.ID == first.ID || len(now.Children) != 1 {
		t.Fatalf("after reauthentication: %+v", now)
	}
	childKeysPair(t, p)
}

// TestChildLifetimeToDataPlane: the byte limits and a hard time limit a
// tenth beyond the rekey time (at least a minute) reach the data plane with
// each Child SA.
func TestChildLifetimeToDataPlane(t *testing.T) {
	p := newPair(t, func(ca, _ *Connection, _, _ *Config) {
		ca.RekeyBytes, ca.LifeBytes, ca.RekeyTime = 1<<20, 2<<20, time.Hour
	})
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.memA.SAs() {
		want := sadb.Lifetime{SoftBytes: 1 << 20, HardBytes: 2 << 20, HardTime: 66 * time.Minute}
		if s.Lifetime != want {
			t.Fatalf("SA %08x lifetime %+v, want %+v", s.SPI, s.Lifetime, want)
		}
	}
}

// TestChildRekeyResponderSendsAfterDelete: the responder of a Child SA
// rekey keeps sending on the old SA until the initiator deletes it — the
// initiator has no inbound SA for the new one until it has read the
// answer, so a packet sent on it sooner is lost (strongSwan 6 lost an echo
// to iked this way) — and switches before the old SA leaves its data
// plane, so that its policy never lacks an outbound SA.
func TestChildRekeyResponderSendsAfterDelete(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	sa := p.a.allSAs()[0]
	sa.mu.Lock()
	c := sa.children[0]
	sa.mu.Unlock()
	oldOut := p.b.SAs()[0].Children[0].SPIOut
	// The initiator's Delete of the old SA waits on the wire.
	held, release := holdFirstRequest(p.ba, wire.INFORMATIONAL)
	done := make(chan error, 1)
	go func() { done <- sa.createChild(ctxT(t), c) }()
	waitFor(t, held.Load)

	outbound := func(m *memory.Backend) []string {
		var spis []string
		for _, x := range m.SAs() {
			if !x.Inbound {
				spis = append(spis, fmt.Sprintf("%08x", x.SPI))
			}
		}
		return spis
	}
	children := p.b.SAs()[0].Children
	if len(children) != 2 {
		t.Fatalf("the responder holds %d Child SAs while the Delete is on its way, want the old and the new", len(children))
	}
	newOut := children[1].SPIOut
	if got := outbound(p.memB); len(got) != 1 || got[0] != oldOut {
		t.Fatalf("the responder's outbound SAs before the Delete: %v, want only the old one (%s)", got, oldOut)
	}
	// The initiator, which has read the answer, can receive on the new SA.
	inA := false
	for _, x := range p.memA.SAs() {
		inA = inA || x.Inbound && fmt.Sprintf("%08x", x.SPI) == newOut
	}
	if !inA {
		t.Fatalf("the initiator has no inbound SA %s for the responder's new outbound one", newOut)
	}

	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(p.memB.SAs()) == 2 })
	if got := outbound(p.memB); len(got) != 1 || got[0] != newOut {
		t.Fatalf("the responder's outbound SAs after the Delete: %v, want the new one (%s)", got, newOut)
	}
}
