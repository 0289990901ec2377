package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/auth/psk"
	"github.com/iked/iked/bench/flood"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/internal/enginetest"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transport"
)

const testSecret = "correct horse battery staple"

// responder is an in-process iked engine on a loopback UDP port that
// answers any peer with the PSK.
type responder struct {
	eng  *ike.Engine
	addr netip.AddrPort
}

type responderOpt func(*ike.Connection, *ike.Config)

func newResponder(t testing.TB, opts ...responderOpt) *responder {
	t.Helper()
	conn := &ike.Connection{
		Name:         "load",
		LocalID:      enginetest.FQDN("responder.example"),
		Auth:         enginetest.PSK(t, testSecret),
		IKEProposals: enginetest.IKE(t, "aes256gcm16-prfsha256-x25519"),
		ESPProposals: enginetest.ESP(t, "aes256gcm16"),
	}
	cfg := ike.Config{
		SADB:              sadb.New(memory.New()),
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		CookieThreshold:   -1,
		RetransmitTimeout: 200 * time.Millisecond,
	}
	for _, o := range opts {
		o(conn, &cfg)
	}
	cfg.Connections = []*ike.Connection{conn}
	b, err := transport.ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	return &responder{eng: enginetest.Start(t, cfg, b), addr: b.LocalAddr()}
}

// established counts the responder's established IKE SAs.
func (r *responder) established() int { return r.eng.Stats().IKESAs["established"] }

func (r *responder) completed() uint64 { return r.eng.Stats().HandshakesCompleted["responder"] }

func baseOptions(t testing.TB, r *responder) Options {
	return Options{
		Target:            r.addr,
		Auth:              enginetest.PSK(t, testSecret),
		AuthName:          "psk",
		IKEProposals:      enginetest.IKE(t, "aes256gcm16-prfsha256-x25519"),
		ProposalText:      "aes256gcm16-prfsha256-x25519",
		ESPProposals:      enginetest.ESP(t, "aes256gcm16"),
		Concurrency:       4,
		RetransmitTimeout: 500 * time.Millisecond,
		RetransmitTries:   3,
	}
}

func runT(t *testing.T, o Options) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitFor polls cond until it holds: the responder may process a Delete
// a moment after its answer arrives. The deadline is a hang guard, long
// enough for a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestChildlessDeleted(t *testing.T) {
	r := newResponder(t)
	o := baseOptions(t, r)
	o.Childless, o.Count = true, 50
	res := runT(t, o)
	if res.Completed != 50 || res.Failed != 0 {
		t.Fatalf("completed %d failed %d %v (%s)", res.Completed, res.Failed, res.Failures, res.FirstFailure)
	}
	if res.Deleted != 50 || res.ChildSAs != 0 {
		t.Errorf("deleted %d child SAs %d, want 50 and 0", res.Deleted, res.ChildSAs)
	}
	if got := r.completed(); got != 50 {
		t.Errorf("responder completed %d handshakes, want 50", got)
	}
	waitFor(t, "every SA deleted", func() bool { return r.established() == 0 })
	if s := r.eng.Stats(); s.ChildSAs != 0 {
		t.Errorf("responder has %d Child SAs after childless handshakes", s.ChildSAs)
	}
	if res.LatencyP50 <= 0 || res.LatencyP99 < res.LatencyP50 || res.LatencyMax < res.LatencyP99 {
		t.Errorf("latency percentiles out of order: %+v", res)
	}
	if res.CPUTotalUS <= 0 {
		t.Errorf("no CPU time per handshake: %+v", res)
	}
}

func TestChildSAKept(t *testing.T) {
	r := newResponder(t)
	o := baseOptions(t, r)
	o.Count, o.Keep = 20, true
	res := runT(t, o)
	if res.Completed != 20 || res.ChildSAs != 20 || res.Deleted != 0 {
		t.Fatalf("completed %d child SAs %d deleted %d (%v %s)", res.Completed, res.ChildSAs, res.Deleted, res.Failures, res.FirstFailure)
	}
	if got := r.established(); got != 20 {
		t.Errorf("responder holds %d established IKE SAs, want 20", got)
	}
	if got := r.eng.Stats().ChildSAs; got != 20 {
		t.Errorf("responder holds %d Child SAs, want 20", got)
	}
}

// TestIdentityPerSA numbers IDi per handshake: the responder sees as many
// identities as SAs.
func TestIdentityPerSA(t *testing.T) {
	r := newResponder(t)
	o := baseOptions(t, r)
	o.Childless, o.Keep, o.Count = true, true, 10
	o.LocalID = "fqdn:client-%d.example"
	o.RemoteID = enginetest.FQDN("responder.example")
	res := runT(t, o)
	if res.Completed != 10 {
		t.Fatalf("completed %d (%v %s)", res.Completed, res.Failures, res.FirstFailure)
	}
	ids := map[string]bool{}
	for _, sa := range r.eng.SAs() {
		ids[sa.RemoteID] = true
	}
	if len(ids) != 10 {
		t.Errorf("responder saw %d identities, want 10: %v", len(ids), ids)
	}
}

func TestWrongRemoteID(t *testing.T) {
	r := newResponder(t)
	o := baseOptions(t, r)
	o.Childless, o.Count = true, 3
	o.RemoteID = enginetest.FQDN("someone-else.example")
	res := runT(t, o)
	if res.Completed != 0 || res.Failures["authentication_failed"] != 3 {
		t.Fatalf("want 3 authentication failures, got %+v", res)
	}
}

func TestWrongPSK(t *testing.T) {
	r := newResponder(t)
	o := baseOptions(t, r)
	o.Childless, o.Count = true, 5
	o.Auth = enginetest.PSK(t, "not the responder's secret")
	res := runT(t, o)
	if res.Completed != 0 || res.Failed != 5 || res.Failures["authentication_failed"] != 5 {
		t.Fatalf("want 5 authentication failures, got completed %d %v", res.Completed, res.Failures)
	}
	waitFor(t, "no SA left", func() bool { return r.established() == 0 })
}

func TestNoProposalChosen(t *testing.T) {
	r := newResponder(t)
	o := baseOptions(t, r)
	o.Childless, o.Count = true, 2
	o.IKEProposals = enginetest.IKE(t, "aes128-sha256-modp2048")
	res := runT(t, o)
	if res.Failures["no_proposal_chosen"] != 2 {
		t.Fatalf("want no_proposal_chosen, got %v", res.Failures)
	}
}

// TestCookie makes the responder demand a cookie on every IKE_SA_INIT.
func TestCookie(t *testing.T) {
	r := newResponder(t, func(_ *ike.Connection, c *ike.Config) { c.CookieThreshold = 0 })
	o := baseOptions(t, r)
	o.Childless, o.Count = true, 10
	res := runT(t, o)
	if res.Completed != 10 || res.Cookies != 10 {
		t.Fatalf("completed %d cookies %d (%v %s)", res.Completed, res.Cookies, res.Failures, res.FirstFailure)
	}
}

// TestSpoofedFlood: while IKE_SA_INIT requests from spoofed addresses
// (raw packets from 127.0.9.1-16, bench/flood) keep more SAs half open
// than the cookie threshold, the responder demands cookies, and every one
// of ikeload's handshakes, which return the cookie, completes: a datagram
// the busy responder's socket drops is retransmitted, and the
// retransmissions (5, 7.5 s in all) outlast any load the machine is under.
// How fast they complete is a benchmark's business (docs/performance.md).
// Raw sockets need root.
func TestSpoofedFlood(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raw sockets need root")
	}
	r := newResponder(t, func(_ *ike.Connection, c *ike.Config) { c.CookieThreshold = 10 })
	var spoofed []netip.Addr
	for i := 1; i <= 16; i++ {
		spoofed = append(spoofed, netip.AddrFrom4([4]byte{127, 0, 9, byte(i)}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	flooded := make(chan flood.Result, 1)
	go func() {
		res, err := flood.Run(ctx, flood.Options{Target: r.addr, Sources: spoofed, Rate: 3000, Count: 30000, Duration: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		flooded <- res
	}()
	// The flood fills the half-open table first.
	waitFor(t, "the cookie threshold", func() bool { return r.eng.Stats().PacketsDropped[ike.DropCookieRequired] > 0 })
	o := baseOptions(t, r)
	o.Childless, o.Rate, o.Count, o.Concurrency = true, 100, 100, 16
	o.RetransmitTries = 5
	res := runT(t, o)
	cancel()
	fr := <-flooded
	st := r.eng.Stats()
	t.Logf("flood: %d sent, %d refused by the kernel; responder demanded %d cookies; ikeload: %d completed, %d failed, %d cookies",
		fr.Sent, fr.Errors, st.PacketsDropped[ike.DropCookieRequired], res.Completed, res.Failed, res.Cookies)
	if res.Completed != 100 || res.Failed != 0 {
		t.Fatalf("completed %d of 100 during the flood, %d failed (%v %s)", res.Completed, res.Failed, res.Failures, res.FirstFailure)
	}
	if res.Cookies == 0 {
		t.Fatal("ikeload was never asked for a cookie: the flood did not reach the threshold")
	}
	if got := st.IKESAs["authenticating"]; got > 10+int(o.Concurrency) {
		t.Fatalf("%d half-open SAs: the flood made state beyond the cookie threshold", got)
	}
}

// TestInvalidKE offers ECP-256 first; the responder wants X25519 and says
// so with INVALID_KE_PAYLOAD.
func TestInvalidKE(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		r := newResponder(t)
		o := baseOptions(t, r)
		o.Childless, o.Count, o.FreshDH = true, 5, fresh
		o.IKEProposals = enginetest.IKE(t, "aes256gcm16-prfsha256-ecp256-x25519")
		res := runT(t, o)
		if res.Completed != 5 || res.InvalidKE != 5 {
			t.Fatalf("fresh DH %v: completed %d invalid_ke %d (%v %s)", fresh, res.Completed, res.InvalidKE, res.Failures, res.FirstFailure)
		}
	}
}

func TestSeveralSources(t *testing.T) {
	r := newResponder(t)
	o := baseOptions(t, r)
	// Workers take the sources in turn and share the count: enough
	// handshakes that no worker can be left without one, even when the
	// scheduler runs some workers late (8 were not, under a loaded CI).
	o.Childless, o.Keep, o.Count = true, true, 40
	o.Sources = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
	res := runT(t, o)
	if res.Completed != 40 {
		t.Fatalf("completed %d (%v %s)", res.Completed, res.Failures, res.FirstFailure)
	}
	peers := map[string]bool{}
	for _, sa := range r.eng.SAs() {
		a, err := netip.ParseAddrPort(sa.RemoteAddr)
		if err != nil {
			t.Fatal(err)
		}
		peers[a.Addr().String()] = true
	}
	if !peers["127.0.0.1"] || !peers["127.0.0.2"] {
		t.Errorf("responder's peers %v, want both sources", peers)
	}
}

// TestRate: the rate is a ceiling ikeload never exceeds, whatever the
// machine (how close it comes is a benchmark's business). 50 handshakes
// at 100/s: the last one starts no sooner than 0.5 s after the first token
// is due, and all complete. 100/s for one second: no more than 100 start,
// and the run lasts the second.
func TestRate(t *testing.T) {
	r := newResponder(t)
	o := baseOptions(t, r)
	o.Childless, o.Rate, o.Count = true, 100, 50
	res := runT(t, o)
	if res.Completed != 50 || res.Failed != 0 {
		t.Fatalf("completed %d of 50, failed %d (%v %s)", res.Completed, res.Failed, res.Failures, res.FirstFailure)
	}
	if res.Elapsed < 0.5 {
		t.Errorf("50 handshakes at 100/s took %.3f s, less than 0.5 s: faster than the rate", res.Elapsed)
	}
	o.Count, o.Duration = 0, time.Second
	res = runT(t, o)
	// The rate is a ceiling over the run's own time: a loaded machine may
	// end the run a little after its second, never start faster.
	if limit := uint64(100*res.Elapsed) + 1; res.Completed+res.Failed > limit || res.Completed == 0 {
		t.Errorf("at 100/s for %.3f s: %d completed and %d failed, want at most %d and some", res.Elapsed, res.Completed, res.Failed, limit)
	}
	if res.Elapsed < 0.99 { // the deadline is set a moment before the clock starts
		t.Errorf("a 1 s run ended after %.3f s", res.Elapsed)
	}
	t.Logf("at 100/s for 1 s: %d completed (%.1f/s), %d not started in time", res.Completed, res.Rate, res.RateShortfall)
}

// TestTimeout: nothing answers on the target port.
func TestTimeout(t *testing.T) {
	b, err := transport.ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := Options{
		Target: b.LocalAddr(), Auth: enginetest.PSK(t, testSecret), IKEProposals: enginetest.IKE(t, "aes256gcm16-prfsha256-x25519"),
		Childless: true, Count: 1, RetransmitTimeout: 20 * time.Millisecond, RetransmitTries: 2,
	}
	res := runT(t, o)
	if res.Failures["timeout"] != 1 || res.Retransmits != 2 {
		t.Fatalf("want one timeout after 2 retransmissions, got %+v", res)
	}
}

// lossyProxy relays datagrams between a client and the responder and drops
// the first copy of every request, so that each exchange needs one
// retransmission.
func lossyProxy(t *testing.T, to netip.AddrPort) netip.AddrPort {
	t.Helper()
	front, err := transport.ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	back, err := transport.ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); back.Close() })
	var client netip.AddrPort
	clientCh := make(chan netip.AddrPort, 1)
	go func() {
		seen := map[string]bool{}
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case clientCh <- from:
			default:
			}
			key := string(buf[:min(n, 28)])
			if !seen[key] {
				seen[key] = true
				continue
			}
			_ = back.WriteTo(buf[:n], to)
		}
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := back.ReadFrom(buf)
			if err != nil {
				return
			}
			if !client.IsValid() {
				client = <-clientCh
			}
			_ = front.WriteTo(buf[:n], client)
		}
	}()
	return front.LocalAddr()
}

func TestRetransmission(t *testing.T) {
	r := newResponder(t)
	o := baseOptions(t, r)
	o.Target = lossyProxy(t, r.addr)
	o.Childless, o.Count, o.Concurrency = true, 3, 1
	// 100 ms, doubled: the first copy is always lost, and 5
	// retransmissions (3.1 s) leave a busy responder time to answer.
	o.RetransmitTimeout, o.RetransmitTries = 100*time.Millisecond, 5
	res := runT(t, o)
	// A slow machine may add retransmissions, never remove one.
	if res.Completed != 3 || res.Retransmits < 9 {
		t.Fatalf("completed %d retransmits %d (want 3 and 9: INIT, AUTH, Delete each once) %v %s",
			res.Completed, res.Retransmits, res.Failures, res.FirstFailure)
	}
}

func TestReportFormat(t *testing.T) {
	res := &Result{
		Target: "192.0.2.1:500", Proposal: "aes256gcm16-prfsha256-x25519", Auth: "psk", Childless: true,
		Concurrency: 8, Sources: 1, Completed: 1000, Failed: 3,
		Failures: map[string]uint64{"timeout": 2, "authentication_failed": 1},
		Elapsed:  2, Rate: 500, LatencyP50: 1.5, LatencyP90: 2.5, LatencyP99: 4, LatencyMax: 9,
		CPUUserUS: 40, CPUSysUS: 10, CPUTotalUS: 50, Deleted: 1000,
	}
	var b bytes.Buffer
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ikeload → 192.0.2.1:500  aes256gcm16-prfsha256-x25519  psk  childless, SAs deleted after each handshake",
		"  completed    1000\n",
		"  failed       3 (timeout 2, authentication_failed 1)\n",
		"  rate         500.0 handshakes/s\n",
		"  latency      p50 1.500 ms  p90 2.500 ms  p99 4.000 ms  max 9.000 ms\n",
		"  cpu          50.0 µs/handshake (user 40.0, sys 10.0)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := res.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"completed", "failed", "failures", "rate", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "cpu_us_per_handshake"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b.String())
		}
	}
	var back Result
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Completed != 1000 || back.Failures["timeout"] != 2 {
		t.Errorf("JSON does not round-trip: %v %+v", err, back)
	}
}

// TestCLI runs the command's entry point with flags against the responder.
func TestCLI(t *testing.T) {
	r := newResponder(t)
	var out, errOut bytes.Buffer
	code := cli(context.Background(), []string{
		"--target", r.addr.String(), "--psk", testSecret, "--childless", "--count", "20",
		"--concurrency", "2", "--json", "--progress", "10ms", "--id", "fqdn:load-%d.example",
	}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Completed != 20 || !res.Childless || res.Auth != "psk" {
		t.Errorf("result %+v", res)
	}
	// Bad flags exit 2 with a message.
	errOut.Reset()
	if code := cli(context.Background(), []string{"--target", r.addr.String()}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "no authentication") {
		t.Errorf("without auth: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := cli(context.Background(), []string{"--target", r.addr.String(), "--psk", testSecret, "--proposal", "aes256-bogus"}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "bogus") {
		t.Errorf("bad proposal: exit %d, %q", code, errOut.String())
	}
}

// ensure auth.Method is what Options takes (compile-time).
var _ auth.Method = (*psk.Method)(nil)

// BenchmarkInProcessResponder drives the in-process iked responder with
// childless handshakes, each deleted, over loopback UDP: ikeload and the
// engine share the process, so a CPU profile shows both (the engine's
// frames are under ike.(*Engine).readLoop). Used for the profile in
// docs/performance.md:
//
//	go test ./cmd/ikeload -run '^$' -bench InProcessResponder -cpuprofile cpu.out
func BenchmarkInProcessResponder(b *testing.B) {
	r := newResponder(b)
	o := baseOptions(b, r)
	o.Childless, o.Concurrency, o.Count = true, 16, uint64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	res, err := Run(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	if res.Failed > 0 {
		b.Fatalf("%d failed: %s", res.Failed, res.FirstFailure)
	}
	b.ReportMetric(res.Rate, "handshakes/s")
}

// TestHybridProposals: ikeload offers hybrid post-quantum proposals (RFC
// 9370 additional key exchanges in IKE_INTERMEDIATE, RFC 9242) and the
// responder establishes them, Child SA and Delete included; ML-KEM as the
// only exchange works too, and the optional form falls back to the
// classical one with a responder that has no ML-KEM.
func TestHybridProposals(t *testing.T) {
	for _, tc := range []struct {
		offer, responder, want string
	}{
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768"},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768/KE2_ML_KEM_1024"},
		{"aes256gcm16-prfsha384-mlkem768", "aes256gcm16-prfsha384-mlkem768", "AES_GCM_16-256/PRF_HMAC_SHA2_384/ML_KEM_768"},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha384-x25519", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519"},
	} {
		t.Run(tc.offer, func(t *testing.T) {
			r := newResponder(t, func(c *ike.Connection, _ *ike.Config) { c.IKEProposals = enginetest.IKE(t, tc.responder) })
			o := baseOptions(t, r)
			o.IKEProposals, o.ProposalText, o.Count, o.Keep = enginetest.IKE(t, tc.offer), tc.offer, 6, true
			res := runT(t, o)
			if res.Completed != 6 || res.ChildSAs != 6 {
				t.Fatalf("completed %d child SAs %d (%v %s)", res.Completed, res.ChildSAs, res.Failures, res.FirstFailure)
			}
			for _, sa := range r.eng.SAs() {
				if sa.Algorithms != tc.want {
					t.Fatalf("responder's SA %s, want %s", sa.Algorithms, tc.want)
				}
			}
			o.Keep, o.Count = false, 4
			if res := runT(t, o); res.Completed != 4 || res.Deleted != 4 {
				t.Fatalf("with deletes: completed %d deleted %d (%v %s)", res.Completed, res.Deleted, res.Failures, res.FirstFailure)
			}
		})
	}
}
