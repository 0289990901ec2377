package kerberos

// Integration tests against a real MIT KDC (package kdctest): two ike
// engines joined by transport.Pipe authenticate with Kerberos only.

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/auth/kerberos/kdctest"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/internal/enginetest"
)

const testRealm = "EXAMPLE.TEST"

var (
	addrA = netip.MustParseAddrPort("127.0.0.1:500")
	addrB = netip.MustParseAddrPort("127.0.0.2:500")
)

// realm is a KDC with host/a.example.test (initiator) and host/b.example.test
// (responder), each with its own keytab.
type realm struct {
	kdc      *kdctest.KDC
	ktA, ktB string
}

func newRealm(t testing.TB) *realm {
	t.Helper()
	k := kdctest.Start(t, testRealm)
	r := &realm{kdc: k}
	r.ktA = k.AddHost("host/a.example.test", filepath.Join(k.Dir, "a.keytab"))
	r.ktB = k.AddHost("host/b.example.test", filepath.Join(k.Dir, "b.keytab"))
	return r
}

// methods returns the initiator's (A) and responder's (B) methods; edit
// adjusts their options first.
func (r *realm) methods(t testing.TB, edit func(a, b *Options)) (*Method, *Method) {
	t.Helper()
	a := Options{Realm: testRealm, KDCs: []string{r.kdc.Addr}, Keytab: r.ktA, Principal: "host/a.example.test",
		Service: "host/b.example.test", Allowed: []string{"host/b.example.test"}, KDCBackoff: 50 * time.Millisecond}
	b := Options{Realm: testRealm, KDCs: []string{r.kdc.Addr}, Keytab: r.ktB, Principal: "host/b.example.test",
		Service: "host/a.example.test", Allowed: []string{"host/a.example.test"}}
	if edit != nil {
		edit(&a, &b)
	}
	ma, err := New(a, "")
	if err != nil {
		t.Fatal(err)
	}
	mb, err := New(b, "")
	if err != nil {
		t.Fatal(err)
	}
	// Each test has its own replay cache, so that tests do not interfere.
	ma.replays, mb.replays = NewReplayCache(), NewReplayCache()
	return ma, mb
}

// pair is two engines over an in-memory pipe.
type pair struct {
	a, b       *ike.Engine
	logA, logB *enginetest.LogBuf
}

// newPair starts the initiator A (host/a.example.test, method ma) and the
// responder B (host/b.example.test, mb) over a pipe.
func newPair(t testing.TB, ma, mb auth.Method) *pair {
	t.Helper()
	return newPairIDs(t, ma, mb, "a.example.test", "b.example.test")
}

// newPairIDs is newPair with the FQDN identities of A and B.
func newPairIDs(t testing.TB, ma, mb auth.Method, idA, idB string) *pair {
	t.Helper()
	e := enginetest.NewPair(t, enginetest.Options{AddrA: addrA, AddrB: addrB, Edit: func(ca, cb *ike.Connection, cfgA, cfgB *ike.Config) {
		ca.LocalID, ca.RemoteID, ca.Auth = enginetest.FQDN(idA), enginetest.FQDN(idB), ma
		cb.LocalID, cb.RemoteID, cb.Auth = enginetest.FQDN(idB), enginetest.FQDN(idA), mb
		// 1 s and 3 retransmissions (12 s in all): the peers always
		// answer, but a Kerberos handshake on a busy machine, under the
		// race detector, may take longer than a short budget.
		cfgA.RetransmitTimeout, cfgB.RetransmitTimeout = time.Second, time.Second
		cfgA.RetransmitTries, cfgB.RetransmitTries = 3, 3
	}})
	return &pair{a: e.A, b: e.B, logA: e.LogA, logB: e.LogB}
}

// ctxT is the context of one exchange (a hang guard).
var ctxT = enginetest.Context

// established checks that both sides hold one established IKE SA with one
// Child SA.
func (p *pair) established(t testing.TB) {
	t.Helper()
	for side, e := range map[string]*ike.Engine{"initiator": p.a, "responder": p.b} {
		var n int
		for _, sa := range e.SAs() {
			if sa.State == "established" && len(sa.Children) == 1 {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("%s has no established IKE SA with a Child SA: %+v", side, e.SAs())
		}
	}
}

func TestKerberosHandshake(t *testing.T) {
	r := newRealm(t)
	ma, mb := r.methods(t, nil)
	p := newPair(t, ma, mb)
	before := ReadStats()
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatalf("initiate: %v\ninitiator log:\n%s\nresponder log:\n%s", err, p.logA, p.logB)
	}
	p.established(t)
	if infos[0].RemoteID != "fqdn:b.example.test" {
		t.Fatalf("remote id %s", infos[0].RemoteID)
	}
	if !strings.Contains(p.logB.String(), "auth=kerberos") {
		t.Fatalf("responder log does not name the method:\n%s", p.logB)
	}
	// A second handshake uses the cached ticket: no KDC round trip.
	mid := ReadStats()
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	after := ReadStats()
	if mid.KDCRequests-before.KDCRequests != 2 || after.KDCRequests != mid.KDCRequests {
		t.Fatalf("KDC requests: %d for the first handshake (want AS+TGS = 2), %d for the second (want 0)",
			mid.KDCRequests-before.KDCRequests, after.KDCRequests-mid.KDCRequests)
	}
	if after.TicketCacheHits-mid.TicketCacheHits != 1 {
		t.Fatalf("ticket cache hits %d, want 1", after.TicketCacheHits-mid.TicketCacheHits)
	}
	if got := after.Authentications[Outcome{Role: "responder", Result: "success"}] - before.Authentications[Outcome{Role: "responder", Result: "success"}]; got != 2 {
		t.Fatalf("responder successes %d, want 2", got)
	}
}

// refused runs one initiation that must fail, and checks that each side's
// log says why.
func refused(t *testing.T, p *pair, wantA, wantB string) {
	t.Helper()
	count := func() int {
		n := 0
		for _, sa := range p.b.SAs() {
			if sa.State == "established" {
				n++
			}
		}
		return n
	}
	before := count()
	_, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err == nil {
		t.Fatalf("initiation succeeded\nresponder log:\n%s", p.logB)
	}
	if wantA != "" && !strings.Contains(p.logA.String()+err.Error(), wantA) {
		t.Errorf("initiator did not report %q: %v\n%s", wantA, err, p.logA)
	}
	// The responder may log a moment after its answer left: wait for the
	// line (the deadline is a hang guard).
	for deadline := time.Now().Add(60 * time.Second); wantB != "" && !strings.Contains(p.logB.String(), wantB); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("responder did not log %q:\n%s", wantB, p.logB)
			break
		}
	}
	if count() != before {
		t.Errorf("responder established an SA after refusing")
	}
}

// withPackageLog sends the package's own lines (what the initiator learns
// from KERBEROS_ERROR) to the initiator's log.
func withPackageLog(t *testing.T, p *pair) {
	SetLogger(slog.New(slog.NewTextHandler(p.logA, nil)))
	t.Cleanup(func() { SetLogger(nil) })
}

func TestKerberosRefusals(t *testing.T) {
	r := newRealm(t)
	// A third host the responder does not allow.
	r.kdc.AddHost("host/c.example.test", r.ktA)

	t.Run("principal not allowed", func(t *testing.T) {
		ma, mb := r.methods(t, func(a, b *Options) { b.Allowed = []string{"host/c.example.test"} })
		p := newPair(t, ma, mb)
		withPackageLog(t, p)
		refused(t, p, "KDC_ERR_POLICY", "client host/a.example.test@EXAMPLE.TEST is not allowed")
	})
	t.Run("wrong realm", func(t *testing.T) {
		ma, mb := r.methods(t, func(a, b *Options) { b.Allowed = []string{"@OTHER.TEST"} })
		p := newPair(t, ma, mb)
		withPackageLog(t, p)
		refused(t, p, "KDC_ERR_POLICY", "client host/a.example.test@EXAMPLE.TEST is not allowed (allowed: @OTHER.TEST)")
	})
	t.Run("ticket for another service", func(t *testing.T) {
		ma, mb := r.methods(t, func(a, b *Options) { a.Service = "host/c.example.test" })
		p := newPair(t, ma, mb)
		withPackageLog(t, p)
		refused(t, p, "KRB_AP_ERR_NOT_US", "the ticket is for host/c.example.test@EXAMPLE.TEST")
	})
	t.Run("clock skew", func(t *testing.T) {
		ma, mb := r.methods(t, func(a, b *Options) { f := false; a.ClockResync = &f })
		ma.clockShift.Store(int64(10 * time.Minute))
		p := newPair(t, ma, mb)
		withPackageLog(t, p)
		refused(t, p, "KRB_AP_ERR_SKEW", "clock skew with host/a.example.test@EXAMPLE.TEST is -10m0s, more than the 5m0s allowed")
	})
	t.Run("initiator without a KDC", func(t *testing.T) {
		ma, mb := r.methods(t, func(a, b *Options) { a.KDCs = []string{"127.0.0.1:1"} })
		p := newPair(t, ma, mb)
		_, err := p.a.InitiateNew(ctxT(t), "a-b")
		if err == nil || !strings.Contains(err.Error(), "no KDC reachable") {
			t.Fatalf("err %v, want a clear KDC error", err)
		}
	})
}

// TestKerberosSkewResync: with clock_resync (the default) an initiator
// refused for skew adopts the responder's clock and succeeds on its one
// retry.
func TestKerberosSkewResync(t *testing.T) {
	r := newRealm(t)
	ma, mb := r.methods(t, nil)
	ma.clockShift.Store(int64(-20 * time.Minute))
	p := newPair(t, ma, mb)
	before := ReadStats()
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatalf("initiate: %v\n%s\n%s", err, p.logA, p.logB)
	}
	p.established(t)
	if ReadStats().Retries-before.Retries != 1 {
		t.Fatalf("want one retry")
	}
	if !strings.Contains(p.logB.String(), "KRB_AP_ERR_SKEW") {
		t.Fatalf("responder did not log the skew:\n%s", p.logB)
	}
}

// TestKerberosKeyRotation: the service key is changed on the KDC but not in
// the responder's keytab: the new ticket is refused with KRB_AP_ERR_BADKEYVER
// (after one retry with a fresh ticket); once the keytab is updated the
// responder reloads it and accepts.
func TestKerberosKeyRotation(t *testing.T) {
	r := newRealm(t)
	ma, mb := r.methods(t, nil)
	p := newPair(t, ma, mb)
	withPackageLog(t, p)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	r.kdc.Rotate("host/b.example.test")
	ma.FlushTickets()
	refused(t, p, "KRB_AP_ERR_BADKEYVER", "is encrypted with key version 3")
	if !strings.Contains(p.logA.String(), "retry=true") {
		t.Errorf("initiator did not retry once with a fresh ticket:\n%s", p.logA)
	}
	// The rollover reaches the keytab (ktadd makes version 4 and appends
	// it); the responder reloads the file.
	reloads := ReadStats().KeytabReloads
	r.kdc.Kadmin("ktadd -k " + r.ktB + " host/b.example.test")
	ma.FlushTickets()
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatalf("after keytab update: %v\n%s", err, p.logB)
	}
	if ReadStats().KeytabReloads == reloads {
		t.Fatal("keytab not reloaded")
	}
}

// TestKerberosStaleTicketRetry: the responder's keytab holds only a newer
// key than the initiator's cached ticket: BADKEYVER, then the initiator's
// one retry with a fresh ticket succeeds.
func TestKerberosStaleTicketRetry(t *testing.T) {
	r := newRealm(t)
	ma, mb := r.methods(t, nil)
	p := newPair(t, ma, mb)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	// A fresh keytab with only the new key version.
	fresh := filepath.Join(r.kdc.Dir, "b-new.keytab")
	r.kdc.Kadmin("ktadd -k " + fresh + " host/b.example.test")
	_, mb2 := r.methods(t, func(a, b *Options) { b.Keytab = fresh })
	p2 := newPair(t, ma, mb2)
	before := ReadStats()
	if _, err := p2.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatalf("%v\n%s", err, p2.logB)
	}
	if ReadStats().Retries-before.Retries != 1 || !strings.Contains(p2.logB.String(), "KRB_AP_ERR_BADKEYVER") {
		t.Fatalf("want one BADKEYVER refusal then success\n%s", p2.logB)
	}
}

// recorder wraps a Method and keeps the payloads its sessions prove with.
type recorder struct {
	auth.Method
	mu     sync.Mutex
	proofs [][]wire.Payload
	swap   func([]wire.Payload) []wire.Payload
}

type recSession struct {
	auth.Session
	r *recorder
}

func (r *recorder) NewSession(p *auth.Params) (auth.Session, error) {
	s, err := r.Method.NewSession(p)
	if err != nil {
		return nil, err
	}
	return &recSession{Session: s, r: r}, nil
}

func (s *recSession) Prove(octets []byte, peer []wire.Payload) ([]wire.Payload, error) {
	out, err := s.Session.Prove(octets, peer)
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.r.swap != nil {
		out = s.r.swap(out)
	}
	s.r.proofs = append(s.r.proofs, out)
	return out, err
}

func (s *recSession) RetryAfter(n []*wire.Notify) bool {
	return s.Session.(auth.Retrier).RetryAfter(n)
}

// TestKerberosReplay captures the AP-REQ of a successful handshake and
// sends it again in a new one: the responder's replay cache refuses it.
func TestKerberosReplay(t *testing.T) {
	r := newRealm(t)
	ma, mb := r.methods(t, nil)
	rec := &recorder{Method: ma}
	p := newPair(t, rec, mb)
	withPackageLog(t, p)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	captured := rec.proofs[0][0].(*wire.Cert)
	rec.swap = func(out []wire.Payload) []wire.Payload {
		return append([]wire.Payload{captured}, out[1:]...)
	}
	refused(t, p, "KRB_AP_ERR_REPEAT", "replayed AP-REQ from host/a.example.test@EXAMPLE.TEST")
	if got := ReadStats().Authentications[Outcome{Role: "responder", Result: "failure", Error: "KRB_AP_ERR_REPEAT"}]; got == 0 {
		t.Fatal("replay not counted")
	}
}

// TestKerberosKDCDown: with an SA established, the KDC goes away; a new
// initiation that needs a ticket fails with a clear error after its
// retries, and the established SA is untouched.
func TestKerberosKDCDown(t *testing.T) {
	r := newRealm(t)
	ma, mb := r.methods(t, nil)
	p := newPair(t, ma, mb)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	saBefore := p.a.SAs()
	r.kdc.Stop()
	ma.FlushTickets()
	withPackageLog(t, p)
	start := time.Now()
	_, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err == nil || !strings.Contains(err.Error(), "no KDC reachable") || !strings.Contains(err.Error(), "host/b.example.test@EXAMPLE.TEST") {
		t.Fatalf("err %v, want a clear KDC error", err)
	}
	// Two retries with 50ms then 100ms backoff.
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("failed after %s: no backoff", d)
	}
	if n := strings.Count(p.logA.String(), "KDC unreachable, retrying"); n != 2 {
		t.Fatalf("%d retries logged, want 2:\n%s", n, p.logA)
	}
	saAfter := p.a.SAs()
	if len(saAfter) != len(saBefore) || saAfter[0].ID != saBefore[0].ID || saAfter[0].State != "established" {
		t.Fatalf("established SAs changed: %+v -> %+v", saBefore, saAfter)
	}
	// The KDC comes back: initiation works again.
	r.kdc.Restart()
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
}
