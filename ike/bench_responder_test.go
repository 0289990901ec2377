package ike

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// The responder's hot path measured without a network: requests are made
// by a minimal initiator (below) and handed to Engine.handlePacket, and
// the responses are caught by a bind that keeps the last datagram. What is
// timed is the responder's own work.

// sinkBind is a bind that never receives and keeps the last datagram sent
// (the engine sends one datagram per message here: fragmentation is off).
type sinkBind struct {
	local netip.AddrPort
	mu    sync.Mutex
	last  []byte
	sent  atomic.Int64
}

func (s *sinkBind) ReadFrom([]byte) (int, netip.AddrPort, error) {
	return 0, netip.AddrPort{}, transport.ErrClosed
}

func (s *sinkBind) WriteTo(b []byte, _ netip.AddrPort) error {
	s.mu.Lock()
	s.last = append(s.last[:0], b...)
	s.mu.Unlock()
	s.sent.Add(1)
	return nil
}

func (s *sinkBind) LocalAddr() netip.AddrPort { return s.local }
func (s *sinkBind) Close() error              { return nil }

// take returns a copy of the last datagram sent.
func (s *sinkBind) take() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.last...)
}

const benchPSK = "correct horse battery staple"

// benchResponder is an engine configured as the responder comparison's
// iked (bench/responders): PSK, any initiator identity, childless IKE SAs
// accepted, no cookies, no fragmentation, rekeying and DPD armed at 24 h.
type benchResponder struct {
	eng  *Engine
	bind *sinkBind
	ini  *Engine // owns the initiator halves (never registered, never bound)
	conn *Connection
}

func newBenchResponder(tb testing.TB) *benchResponder {
	tb.Helper()
	conn := &Connection{
		Name:         "load",
		LocalID:      Identity{Type: wire.IDFQDN, Value: []byte("responder.example")},
		Auth:         mustPSK(tb, benchPSK),
		IKEProposals: mustIKE(tb, "aes256gcm16-prfsha256-x25519"),
		ESPProposals: mustESP(tb, "aes256gcm16"),
		DPDDelay:     24 * time.Hour, RekeyTime: 24 * time.Hour, IKERekeyTime: 24 * time.Hour,
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	eng, err := New(Config{
		SADB: sadb.New(memory.New()), Logger: quiet, CookieThreshold: -1, NoFragmentation: true,
		HalfOpenTimeout: time.Hour, Connections: []*Connection{conn},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ini, err := New(Config{SADB: sadb.New(memory.New()), Logger: quiet, NoFragmentation: true})
	if err != nil {
		tb.Fatal(err)
	}
	r := &benchResponder{eng: eng, ini: ini, conn: conn, bind: &sinkBind{local: netip.MustParseAddrPort("10.77.0.1:500")}}
	tb.Cleanup(func() { eng.Close(); ini.Close() })
	return r
}

// benchInitiator is one handshake's initiator half, just enough to make
// valid requests: an ikeSA of the initiator engine that is never
// registered, so that sealing and key derivation are the engine's own.
type benchInitiator struct {
	sa   *ikeSA
	from netip.AddrPort
	dh   transform.PrivateKey
	id   Identity
}

// sourceFor spreads the initiators over 10.77.0.2–5 and many ports, as
// ikeload's workers do.
func sourceFor(n int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 77, 0, byte(2 + n%4)}), uint16(1024+n%60000))
}

// saInit returns an IKE_SA_INIT request from a fresh initiator.
func (r *benchResponder) saInit(tb testing.TB, n int, id Identity) (*benchInitiator, []byte) {
	g := transform.GroupByID(transform.DHCurve25519)
	dh, err := g.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	var spi [8]byte
	_, _ = rand.Read(spi[:])
	ni := make([]byte, 32)
	_, _ = rand.Read(ni)
	sa := &ikeSA{eng: r.ini, initiator: true, spii: binary.BigEndian.Uint64(spi[:]) | 1, saHandshake: &saHandshake{ni: ni}}
	m := wire.Message{
		Header: wire.Header{SPIi: sa.spii, Version: wire.Version, Exchange: wire.IKE_SA_INIT, Flags: wire.FlagInitiator},
		Payloads: []wire.Payload{
			&wire.SA{Proposals: toWire(r.conn.IKEProposals, wire.ProtoIKE, nil, true)},
			&wire.KE{Group: g.ID(), Data: dh.Public()}, &wire.Nonce{Data: ni},
		},
	}
	sa.msgI = m.Marshal()
	return &benchInitiator{sa: sa, from: sourceFor(n), dh: dh, id: id}, sa.msgI
}

// auth takes the IKE_SA_INIT response and returns the IKE_AUTH request:
// IDi, AUTH (PSK), SET_WINDOW_SIZE, childless (RFC 6023).
func (bi *benchInitiator) auth(tb testing.TB, r *benchResponder, resp []byte) []byte {
	m, err := wire.Parse(resp)
	if err != nil {
		tb.Fatal(err)
	}
	sa := bi.sa
	saP, _ := wire.Find(m.Payloads, wire.PayloadSA).(*wire.SA)
	ke, _ := wire.Find(m.Payloads, wire.PayloadKE).(*wire.KE)
	nonce, _ := wire.Find(m.Payloads, wire.PayloadNonce).(*wire.Nonce)
	if saP == nil || ke == nil || nonce == nil {
		tb.Fatalf("IKE_SA_INIT response without SA, KE, Nonce: %v", m.Payloads)
	}
	sa.suite = acceptChosen(r.conn.IKEProposals, saP, wire.ProtoIKE, true)
	sa.spir, sa.nr, sa.msgR = m.Header.SPIr, append([]byte(nil), nonce.Data...), resp
	shared, err := bi.dh.SharedSecret(ke.Data)
	if err != nil {
		tb.Fatal(err)
	}
	if err := sa.deriveKeys(shared); err != nil {
		tb.Fatal(err)
	}
	s, err := mustPSK(tb, benchPSK).NewSession(&auth.Params{Initiator: true, PRF: sa.suite.prf, SPIi: sa.spii, SPIr: sa.spir})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	idi := bi.id.Payload(false)
	proof, err := s.Prove(sa.signedOctets(true, idi), m.Payloads)
	if err != nil {
		tb.Fatal(err)
	}
	ps := append(append([]wire.Payload{idi}, proof...), windowNotify())
	pkts, err := sa.sealMessage(wire.IKE_AUTH, 1, false, ps)
	if err != nil {
		tb.Fatal(err)
	}
	return pkts[0]
}

// checkAuthResponse fails unless resp is an IKE_AUTH response that opens
// and carries AUTH.
func (bi *benchInitiator) checkAuthResponse(tb testing.TB, resp []byte) {
	m, err := wire.Parse(resp)
	if err != nil || m.Header.Exchange != wire.IKE_AUTH {
		tb.Fatalf("not an IKE_AUTH response: %v", err)
	}
	inner, err := bi.sa.openMessage(resp, m)
	if err != nil {
		tb.Fatal(err)
	}
	if wire.Find(inner, wire.PayloadAUTH) == nil {
		tb.Fatalf("IKE_AUTH response without AUTH: %v", inner)
	}
}

// identityFor is the n-th initiator's identity: one per SA (ikeload's
// fqdn:c-N.example) or one shared.
func identityFor(n int, shared bool) Identity {
	if shared {
		return Identity{Type: wire.IDFQDN, Value: []byte("shared.example")}
	}
	return Identity{Type: wire.IDFQDN, Value: []byte("c-" + strconv.Itoa(n) + ".example")}
}

// handshake runs one whole responder handshake through handlePacket.
func (r *benchResponder) handshake(tb testing.TB, n int, shared bool) {
	bi, req := r.saInit(tb, n, identityFor(n, shared))
	r.eng.handlePacket(r.bind, bi.from, req)
	authReq := bi.auth(tb, r, r.bind.take())
	r.eng.handlePacket(r.bind, bi.from, authReq)
	bi.sa.keys.Wipe()
}

// BenchmarkResponderSAInit is the responder's work for one IKE_SA_INIT
// request: parse, proposal, X25519 key generation and shared secret, key
// derivation, the half-open SA, the response. The requests are made
// outside the timer; every one is new (its own SPIi).
func BenchmarkResponderSAInit(b *testing.B) {
	r := newBenchResponder(b)
	_, tmpl := r.saInit(b, 0, Identity{})
	pkt := make([]byte, len(tmpl))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(pkt, tmpl)
		// A new SPIi makes it a new request rather than a retransmission.
		binary.BigEndian.PutUint64(pkt, uint64(i)+1)
		r.eng.handlePacket(r.bind, sourceFor(i), pkt)
	}
	b.StopTimer()
	if got := r.eng.Stats().IKESAs["authenticating"]; got != b.N {
		b.Fatalf("%d half-open SAs, want %d", got, b.N)
	}
}

// BenchmarkResponderAuth is the responder's work for one IKE_AUTH request
// (childless, PSK): decrypt, verify the initiator's AUTH, prove its own,
// seal the response, establish the SA. IKE_SA_INIT and the initiator's
// half are done outside the timer, in batches.
func BenchmarkResponderAuth(b *testing.B) {
	r := newBenchResponder(b)
	type pending struct {
		bi  *benchInitiator
		req []byte
	}
	const batch = 256
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		n := min(batch, b.N-done)
		reqs := make([]pending, n)
		for i := range reqs {
			bi, req := r.saInit(b, done+i, identityFor(done+i, false))
			r.eng.handlePacket(r.bind, bi.from, req)
			reqs[i] = pending{bi, bi.auth(b, r, r.bind.take())}
		}
		b.StartTimer()
		for _, p := range reqs {
			r.eng.handlePacket(r.bind, p.bi.from, p.req)
		}
		done += n
	}
	b.StopTimer()
	if got := r.eng.Stats().IKESAs["established"]; got != b.N {
		b.Fatalf("%d established SAs, want %d", got, b.N)
	}
}

// TestBenchResponderHandshake checks that the benchmarks' initiator makes
// handshakes the responder completes, so the benchmarks measure success.
func TestBenchResponderHandshake(t *testing.T) {
	r := newBenchResponder(t)
	for i := range 3 {
		bi, req := r.saInit(t, i, identityFor(i, i == 2))
		r.eng.handlePacket(r.bind, bi.from, req)
		authReq := bi.auth(t, r, r.bind.take())
		r.eng.handlePacket(r.bind, bi.from, authReq)
		bi.checkAuthResponse(t, r.bind.take())
	}
	if got := r.eng.Stats().IKESAs["established"]; got != 3 {
		t.Fatalf("%d established SAs, want 3", got)
	}
}

// heldSAs is how many established SAs BenchmarkHeldSAs holds:
// IKED_BENCH_SAS, else 10,000 (100,000 takes about a minute here).
func heldSAs() int {
	if n, err := strconv.Atoi(os.Getenv("IKED_BENCH_SAS")); err == nil && n > 0 {
		return n
	}
	return 10000
}

// writeHeapProfile writes the heap profile with the SAs held to
// $IKED_BENCH_HEAPPROFILE-name.pprof when that is set: what each SA keeps,
// by allocation site (go tool pprof -sample_index=inuse_space).
func writeHeapProfile(b *testing.B, name string) {
	prefix := os.Getenv("IKED_BENCH_HEAPPROFILE")
	if prefix == "" {
		return
	}
	f, err := os.Create(prefix + "-" + strings.ReplaceAll(name, "=", "-") + ".pprof")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// startCPUProfile profiles the timed handshakes, without the building of
// the held SAs, into $IKED_BENCH_CPUPROFILE-name.pprof when that is set.
// (The initiator's half, outside the timer, is in it too.)
func startCPUProfile(b *testing.B, name string) (stop func()) {
	prefix := os.Getenv("IKED_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(prefix + "-" + strings.ReplaceAll(name, "=", "-") + ".pprof")
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// liveHeap is the heap in use after a full collection, in bytes and in
// objects (each object is work for every cycle of the garbage collector).
func liveHeap() (bytes, objects uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapObjects
}

// BenchmarkHeldSAs holds heldSAs() established childless IKE SAs in a
// responder, with one identity per SA or one shared identity, and reports
// the live heap per SA held (B/SA, what the bench's RSS per SA is made
// of), the live heap objects per SA held (objects/SA, what each garbage
// collection cycle visits) and the responder's handshake time with them held (ns/op: both
// requests of a new handshake, minus the initiator's side).
func BenchmarkHeldSAs(b *testing.B) {
	for _, shared := range []bool{false, true} {
		name := "ids=distinct"
		if shared {
			name = "ids=shared"
		}
		b.Run(fmt.Sprintf("%s/sas=%d", name, heldSAs()), func(b *testing.B) {
			r := newBenchResponder(b)
			before, beforeObjs := liveHeap()
			held := heldSAs()
			for i := range held {
				r.handshake(b, i, shared)
			}
			r.bind.last = nil
			after, afterObjs := liveHeap()
			if got := r.eng.Stats().IKESAs["established"]; got != held {
				b.Fatalf("%d established SAs, want %d", got, held)
			}
			perSA := float64(after-before) / float64(held)
			objsPerSA := float64(afterObjs-beforeObjs) / float64(held)
			writeHeapProfile(b, name)
			b.ReportAllocs()
			stopProfile := startCPUProfile(b, name)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				bi, req := r.saInit(b, held+i, identityFor(held+i, shared))
				b.StartTimer()
				r.eng.handlePacket(r.bind, bi.from, req)
				b.StopTimer()
				authReq := bi.auth(b, r, r.bind.take())
				b.StartTimer()
				r.eng.handlePacket(r.bind, bi.from, authReq)
			}
			b.StopTimer()
			stopProfile()
			// After the loop: ResetTimer drops metrics reported before it.
			b.ReportMetric(perSA, "B/SA")
			b.ReportMetric(objsPerSA, "objects/SA")
		})
	}
}

// BenchmarkShutdown holds heldSAs() established IKE SAs (IKED_BENCH_SAS;
// 100000 for the figure in docs/performance.md) and times Shutdown: one
// Delete each, paced, then the wait for answers that never come (the sink
// answers nothing), then the removal of every SA. It reports the seconds
// per shutdown and the Deletes sent.
func BenchmarkShutdown(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := newBenchResponder(b)
		held := heldSAs()
		for n := range held {
			r.handshake(b, n, false)
		}
		sent := r.bind.sent.Load()
		b.StartTimer()
		began := time.Now()
		if err := r.eng.Shutdown(context.Background()); err != nil {
			b.Fatal(err)
		}
		took := time.Since(began)
		b.StopTimer()
		b.ReportMetric(took.Seconds(), "s/shutdown")
		b.ReportMetric(float64(r.bind.sent.Load()-sent), "deletes")
		b.ReportMetric(float64(held), "SAs")
	}
}
