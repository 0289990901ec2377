package ike

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iked/iked/auth/psk"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

var (
	addrA = netip.MustParseAddrPort("192.0.2.1:500")
	addrB = netip.MustParseAddrPort("192.0.2.2:500")
)

func mustPSK(t testing.TB, s string) *psk.Method {
	t.Helper()
	secret, err := psk.NewSecret([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return psk.New(secret)
}

func mustIKE(t testing.TB, s ...string) []transform.Proposal {
	t.Helper()
	var out []transform.Proposal
	for _, x := range s {
		p, err := transform.ParseIKEProposal(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func mustESP(t testing.TB, s ...string) []transform.Proposal {
	t.Helper()
	var out []transform.Proposal
	for _, x := range s {
		p, err := transform.ParseESPProposal(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// pair is two engines joined by an in-memory pipe.
type pair struct {
	a, b       *Engine
	ba, bb     *transport.Mem
	memA, memB *memory.Backend
	connA      *Connection
	connB      *Connection
}

type pairOpt func(ca, cb *Connection, cfgA, cfgB *Config)

func newPair(t testing.TB, opts ...pairOpt) *pair {
	t.Helper()
	p := &pair{memA: memory.New(), memB: memory.New()}
	p.connA = &Connection{
		Name: "a-b", Local: addrA.Addr(), Remote: addrB,
		LocalID: Identity{Type: wire.IDFQDN, Value: []byte("a.example")}, RemoteID: Identity{Type: wire.IDFQDN, Value: []byte("b.example")},
		Auth: mustPSK(t, "correct horse battery"), IKEProposals: mustIKE(t, "aes256gcm16-prfsha256-x25519"),
		ESPProposals: mustESP(t, "aes256gcm16"),
	}
	p.connB = &Connection{
		Name: "b-a", Local: addrB.Addr(), Remote: addrA,
		LocalID: Identity{Type: wire.IDFQDN, Value: []byte("b.example")}, RemoteID: Identity{Type: wire.IDFQDN, Value: []byte("a.example")},
		Auth: mustPSK(t, "correct horse battery"), IKEProposals: mustIKE(t, "aes256gcm16-prfsha256-x25519"),
		ESPProposals: mustESP(t, "aes256gcm16"),
	}
	// Info lines go to a discarding handler, so that their formatting cost
	// is counted as it would be in the daemon.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		quiet = slog.Default()
	}
	cfgA := Config{SADB: sadb.New(p.memA), Logger: quiet, CookieThreshold: -1, RetransmitTimeout: 200 * time.Millisecond, Readers: 1}
	cfgB := Config{SADB: sadb.New(p.memB), Logger: quiet, CookieThreshold: -1, RetransmitTimeout: 200 * time.Millisecond, Readers: 1}
	for _, o := range opts {
		o(p.connA, p.connB, &cfgA, &cfgB)
	}
	cfgA.Connections = []*Connection{p.connA}
	cfgB.Connections = []*Connection{p.connB}
	var err error
	if p.a, err = New(cfgA); err != nil {
		t.Fatal(err)
	}
	if p.b, err = New(cfgB); err != nil {
		t.Fatal(err)
	}
	p.ba, p.bb = transport.Pipe(addrA, addrB)
	p.a.AddBind(p.ba)
	p.b.AddBind(p.bb)
	t.Cleanup(func() { p.a.Close(); p.b.Close() })
	return p
}

func ctxT(t testing.TB) context.Context {
	// A hang guard, generous for a loaded machine under -race: no test
	// asserts how fast an exchange is.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHandshakePSK(t *testing.T) {
	p := newPair(t)
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	ia := infos[0]
	sasB := p.b.SAs()
	if len(sasB) != 1 {
		t.Fatalf("responder has %d SAs", len(sasB))
	}
	ib := sasB[0]
	if ia.State != "established" || ib.State != "established" {
		t.Fatalf("states %s / %s", ia.State, ib.State)
	}
	if ia.SPIi != ib.SPIi || ia.SPIr != ib.SPIr {
		t.Fatalf("SPIs differ: %s/%s vs %s/%s", ia.SPIi, ia.SPIr, ib.SPIi, ib.SPIr)
	}
	if ia.Algorithms != "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519" || ib.Algorithms != ia.Algorithms {
		t.Fatalf("algorithms %q / %q", ia.Algorithms, ib.Algorithms)
	}
	if ia.RemoteID != "fqdn:b.example" || ib.RemoteID != "fqdn:a.example" {
		t.Fatalf("identities %q / %q", ia.RemoteID, ib.RemoteID)
	}
	if len(ia.Children) != 1 || len(ib.Children) != 1 {
		t.Fatalf("children %d / %d", len(ia.Children), len(ib.Children))
	}
	ca, cb := ia.Children[0], ib.Children[0]
	if ca.SPIIn != cb.SPIOut || ca.SPIOut != cb.SPIIn {
		t.Fatalf("child SPIs do not pair: %+v vs %+v", ca, cb)
	}
	// Keys on both sides must pair: A's outbound is B's inbound.
	keysA, keysB := map[uint32]string{}, map[uint32]string{}
	for _, s := range p.memA.SAs() {
		keysA[s.SPI] = string(s.EncrKey)
	}
	for _, s := range p.memB.SAs() {
		keysB[s.SPI] = string(s.EncrKey)
	}
	if len(keysA) != 2 || len(keysB) != 2 {
		t.Fatalf("backends hold %d and %d SAs", len(keysA), len(keysB))
	}
	for spi, k := range keysA {
		if keysB[spi] != k {
			t.Fatalf("Child SA %08x keys differ between the peers", spi)
		}
	}
	// Terminate from A removes everything on both sides.
	n, err := p.a.Terminate(ctxT(t), "a-b")
	if err != nil || n != 1 {
		t.Fatalf("terminate: %d, %v", n, err)
	}
	waitFor(t, func() bool { return len(p.b.SAs()) == 0 && len(p.memB.SAs()) == 0 })
	if len(p.a.SAs()) != 0 || len(p.memA.SAs()) != 0 {
		t.Fatalf("initiator kept SAs")
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hang guard, not a speed test
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holdFirstRequest holds the first request of exchange that m sends on
// the wire until release is closed; held reports that it is being held.
func holdFirstRequest(m *transport.Mem, exchange wire.ExchangeType) (held *atomic.Bool, release chan struct{}) {
	held, release = new(atomic.Bool), make(chan struct{})
	m.Filter = func(b []byte) bool {
		if h, err := wire.ParseHeader(b); err == nil && h.Exchange == exchange && !h.IsResponse() && !held.Swap(true) {
			<-release
		}
		return true
	}
	return held, release
}
