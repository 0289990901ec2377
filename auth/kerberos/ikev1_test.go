package kerberos

// IKEv1 Main Mode with the GSS-API method between two ikev1 engines
// joined by transport.Pipe, authenticated through a real MIT KDC: Main
// Mode and Quick Mode with AES and RC4-HMAC keys, and every refusal the
// issue lists, logged on both sides.

import (
	"github.com/iked/iked/internal/enginetest"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

var (
	_ ikev1.GSSProvider = (*Method)(nil)
	_ ikev1.GSSContext  = (*GSSContext)(nil)
)

var (
	v1AddrA = netip.MustParseAddrPort("192.0.2.1:500")
	v1AddrB = netip.MustParseAddrPort("192.0.2.2:500")
)

// v1Pair is two IKEv1 engines over an in-memory pipe: a initiates to b.
type v1Pair struct {
	a, b       *ikev1.Engine
	logA, logB *enginetest.LogBuf
	tapA       *tapBind
}

func newV1Pair(t testing.TB, ma, mb any, ikeProposal string) *v1Pair {
	t.Helper()
	ikeP, err := transform.ParseIKEv1Proposal(ikeProposal)
	if err != nil {
		t.Fatal(err)
	}
	espP, err := transform.ParseIKEv1ESPProposal("aes128-sha1")
	if err != nil {
		t.Fatal(err)
	}
	p := &v1Pair{logA: &enginetest.LogBuf{}, logB: &enginetest.LogBuf{}}
	mk := func(name string, remote netip.AddrPort, m any, w io.Writer) *ikev1.Engine {
		c := &ikev1.Connection{Name: name, Remote: remote, Auth: m, AllowLegacy: true,
			IKEProposals: []transform.Proposal{ikeP}, ESPProposals: []transform.Proposal{espP}}
		e, err := ikev1.New(ikev1.Config{Connections: []*ikev1.Connection{c}, SADB: sadb.New(memory.New()),
			Logger:            slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})),
			RetransmitTimeout: 200 * time.Millisecond, RetransmitTries: 2, HalfOpenTimeout: 3 * time.Second, Readers: 1,
			NoFragmentation: true}) // whole messages, for the taps
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	p.a = mk("a-b", v1AddrB, ma, p.logA)
	p.b = mk("b-a", v1AddrA, mb, p.logB)
	ab, ba := transport.Pipe(v1AddrA, v1AddrB)
	p.tapA = &tapBind{Bind: ab}
	p.a.AddBind(p.tapA)
	p.b.AddBind(ba)
	t.Cleanup(func() { p.a.Close(); p.b.Close() })
	return p
}

// established waits until both sides hold an established Kerberos
// ISAKMP SA with an IPsec SA (the responder's Quick Mode ends with the
// initiator's third message, after Initiate returns).
func (p *v1Pair) established(t testing.TB) {
	t.Helper()
	for side, e := range map[string]*ikev1.Engine{"initiator": p.a, "responder": p.b} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := 0
			for _, sa := range e.SAs() {
				if sa.State == "established" && sa.Auth == "kerberos" && len(sa.Children) == 1 {
					n++
				}
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has no established Kerberos ISAKMP SA with an IPsec SA: %+v", side, e.SAs())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// refusedV1 runs one initiation that must fail and checks that each side
// logged why.
func refusedV1(t *testing.T, p *v1Pair, wantA, wantB string) {
	t.Helper()
	_, err := p.a.Initiate(ctxT(t), "a-b")
	if err == nil {
		t.Fatalf("initiation succeeded\nresponder log:\n%s", p.logB)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(p.logB.String(), wantB) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(p.logA.String()+err.Error(), wantA) {
		t.Errorf("initiator did not report %q: %v\n%s", wantA, err, p.logA)
	}
	if !strings.Contains(p.logB.String(), wantB) {
		t.Errorf("responder did not log %q:\n%s", wantB, p.logB)
	}
	for _, sa := range p.b.SAs() {
		if sa.State == "established" {
			t.Errorf("responder established an SA after refusing: %+v", sa)
		}
	}
}

func TestIKEv1GSSAPI(t *testing.T) {
	r := newRealmRC4(t)
	ktC, ktS := rc4Realm(t, r)
	for _, c := range []struct {
		name, proposal   string
		client, service  string
		ktCli, ktSvc     string
		wantWrapFraming  bool
		wantTokenEnctype int32
	}{
		{"aes-sha256-modp2048", "aes128-sha256-modp2048", "host/a.example.test", "host/b.example.test", r.ktA, r.ktB, false, 18},
		{"windows2003-3des-sha1-modp1024", "3des-sha1-modp1024", "host/a.example.test", "host/b.example.test", r.ktA, r.ktB, false, 18},
		{"rc4", "aes256-sha1-modp2048", "host/rc4c.example.test", "host/rc4s.example.test", ktC, ktS, true, 23},
	} {
		t.Run(c.name, func(t *testing.T) {
			ma, mb := r.methods(t, func(a, b *Options) {
				a.Principal, a.Service, a.Keytab, a.Allowed = c.client, c.service, c.ktCli, []string{c.service}
				b.Principal, b.Keytab, b.Allowed = c.service, c.ktSvc, []string{c.client}
			})
			p := newV1Pair(t, ma, mb, c.proposal)
			info, err := p.a.Initiate(ctxT(t), "a-b")
			if err != nil {
				t.Fatalf("initiate: %v\ninitiator log:\n%s\nresponder log:\n%s", err, p.logA, p.logB)
			}
			p.established(t)
			if info.Auth != "kerberos" {
				t.Fatalf("auth %q", info.Auth)
			}
			if !strings.Contains(p.logB.String(), "peer_principal="+c.client+"@"+testRealm) ||
				!strings.Contains(p.logA.String(), "peer_principal="+c.service+"@"+testRealm) {
				t.Fatalf("the logs do not name the authenticated principals:\n%s\n%s", p.logA, p.logB)
			}
			if got := ma.creds.tickets[ma.service.String()].key.KeyType; got != c.wantTokenEnctype {
				t.Fatalf("session key enctype %d, want %d", got, c.wantTokenEnctype)
			}
		})
	}
}

func TestIKEv1GSSAPIRefusals(t *testing.T) {
	r := newRealm(t)
	r.kdc.AddHost("host/c.example.test", r.ktA)
	t.Run("principal not allowed", func(t *testing.T) {
		ma, mb := r.methods(t, func(a, b *Options) { b.Allowed = []string{"host/c.example.test"} })
		p := newV1Pair(t, ma, mb, "aes128-sha256-modp2048")
		refusedV1(t, p, "refused our AP-REQ with KDC_ERR_POLICY", "client host/a.example.test@EXAMPLE.TEST is not allowed (allowed: host/c.example.test@EXAMPLE.TEST)")
	})
	t.Run("wrong realm", func(t *testing.T) {
		ma, mb := r.methods(t, func(a, b *Options) { b.Allowed = []string{"@OTHER.TEST"} })
		p := newV1Pair(t, ma, mb, "aes128-sha256-modp2048")
		refusedV1(t, p, "KDC_ERR_POLICY", "client host/a.example.test@EXAMPLE.TEST is not allowed (allowed: @OTHER.TEST)")
	})
	t.Run("clock skew", func(t *testing.T) {
		ma, mb := r.methods(t, func(a, b *Options) { f := false; a.ClockResync = &f })
		ma.clockShift.Store(int64(10 * time.Minute))
		p := newV1Pair(t, ma, mb, "aes128-sha256-modp2048")
		refusedV1(t, p, "KRB_AP_ERR_SKEW", "clock skew with host/a.example.test@EXAMPLE.TEST is -10m0s, more than the 5m0s allowed")
	})
	t.Run("clock skew resynchronised", func(t *testing.T) {
		ma, mb := r.methods(t, nil)
		ma.clockShift.Store(int64(-20 * time.Minute))
		p := newV1Pair(t, ma, mb, "aes128-sha256-modp2048")
		refusedV1(t, p, "the next attempt uses a fresh ticket or the acceptor's clock", "KRB_AP_ERR_SKEW")
		if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
			t.Fatalf("the attempt after the acceptor's clock was adopted: %v\n%s", err, p.logA)
		}
	})
	t.Run("stale key version", func(t *testing.T) {
		ma, mb := r.methods(t, nil)
		p := newV1Pair(t, ma, mb, "aes128-sha256-modp2048")
		if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
			t.Fatal(err)
		}
		r.kdc.Rotate("host/b.example.test")
		ma.FlushTickets()
		p2 := newV1Pair(t, ma, mb, "aes128-sha256-modp2048")
		refusedV1(t, p2, "KRB_AP_ERR_BADKEYVER", "was the key changed on the KDC without updating the keytab?")
		r.kdc.Kadmin("ktadd -k " + r.ktB + " host/b.example.test")
		if _, err := p2.a.Initiate(ctxT(t), "a-b"); err != nil {
			t.Fatalf("after the keytab update: %v\n%s", err, p2.logB)
		}
	})
	t.Run("KDC unreachable", func(t *testing.T) {
		ma, mb := r.methods(t, func(a, b *Options) { a.KDCs = []string{"127.0.0.1:1"} })
		p := newV1Pair(t, ma, mb, "aes128-sha256-modp2048")
		_, err := p.a.Initiate(ctxT(t), "a-b")
		if err == nil || !strings.Contains(err.Error(), "no KDC reachable") {
			t.Fatalf("err %v, want a clear KDC error", err)
		}
		if n := p.tapA.Sent(); n != 0 {
			t.Fatalf("the initiator sent %d datagrams without a ticket", n)
		}
	})
}

// tapBind passes what an engine sends through tap (which may replace
// it), and counts it.
type tapBind struct {
	transport.Bind
	mu   sync.Mutex
	tap  func([]byte) []byte
	sent int
}

func (b *tapBind) WriteTo(p []byte, to netip.AddrPort) error {
	b.mu.Lock()
	b.sent++
	tap := b.tap
	b.mu.Unlock()
	if tap != nil {
		p = tap(append([]byte(nil), p...))
	}
	return b.Bind.WriteTo(p, to)
}

func (b *tapBind) Sent() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent
}

// gssToken returns the GSS token of a cleartext Main Mode message, or nil.
func gssToken(pkt []byte) []byte {
	m, err := isakmp.Parse(pkt)
	if err != nil || m.Header.Encrypted() {
		return nil
	}
	if g, _ := isakmp.Find(m.Payloads, isakmp.PayloadGSS).(*isakmp.GSS); g != nil {
		return g.Token
	}
	return nil
}

// withGSSToken returns pkt with its GSS token replaced.
func withGSSToken(t *testing.T, pkt, tok []byte) []byte {
	m, err := isakmp.Parse(pkt)
	if err != nil {
		t.Error(err)
		return pkt
	}
	for i, p := range m.Payloads {
		if _, ok := p.(*isakmp.GSS); ok {
			m.Payloads[i] = &isakmp.GSS{Token: tok}
		}
	}
	return m.Marshal()
}

// TestIKEv1GSSAPIReplay captures the initiator's initial context token
// (message 3) of a successful Main Mode and sends it again in a new one:
// the responder's replay cache refuses it, and both sides log it.
func TestIKEv1GSSAPIReplay(t *testing.T) {
	r := newRealm(t)
	ma, mb := r.methods(t, nil)
	p := newV1Pair(t, ma, mb, "aes128-sha256-modp2048")
	var captured []byte
	p.tapA.tap = func(b []byte) []byte {
		if tok := gssToken(b); tok != nil && captured == nil {
			captured = append([]byte(nil), tok...)
		}
		return b
	}
	if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	if captured == nil {
		t.Fatal("no initial context token captured")
	}
	// A new initiator (the first one would reuse its ISAKMP SA) to the
	// same responder method, whose replay cache remembers the token.
	p2 := newV1Pair(t, ma, mb, "aes128-sha256-modp2048")
	p2.tapA.tap = func(b []byte) []byte {
		if gssToken(b) != nil {
			return withGSSToken(t, b, captured)
		}
		return b
	}
	refusedV1(t, p2, "KRB_AP_ERR_REPEAT", "replayed AP-REQ from host/a.example.test@EXAMPLE.TEST")
}
