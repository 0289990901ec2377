package ikev1

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// testPSK is a PresharedKeyer.
type testPSK []byte

func (k testPSK) PresharedKey() []byte { return append([]byte(nil), k...) }

func mustIKE(t testing.TB, s ...string) []transform.Proposal {
	t.Helper()
	var out []transform.Proposal
	for _, x := range s {
		p, err := transform.ParseIKEv1Proposal(x)
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
		p, err := transform.ParseIKEv1ESPProposal(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

var (
	addrA = netip.MustParseAddrPort("192.0.2.1:500")
	addrB = netip.MustParseAddrPort("192.0.2.2:500")
)

// pair is two engines joined by an in-memory pipe: a initiates, b answers.
type pair struct {
	a, b       *Engine
	ab, ba     *transport.Mem // a's end and b's end
	dbA, dbB   *sadb.DB
	memA, memB *memory.Backend
	ca, cb     *Connection
	// logA and logB hold each engine's log at debug level, for a failing
	// test to tell what happened (IKEV1_LOG sends it to stderr instead).
	logA, logB *logBuf
}

// logBuf is a goroutine-safe buffer for an engine's log.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines logged so far.
func (l *logBuf) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// logger logs to l, or to stderr when IKEV1_LOG is set.
func (l *logBuf) logger() *slog.Logger {
	if os.Getenv("IKEV1_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// story logs the lines of both engines' logs about an IPsec SA: those
// naming its SPI and those of the ISAKMP SAs (by initiator cookie) that
// held it.
func (p *pair) story(t testing.TB, spi uint32) {
	t.Helper()
	k := fmt.Sprintf("%08x", spi)
	keys := []string{k}
	for _, l := range append(p.logA.lines(), p.logB.lines()...) {
		if i := strings.Index(l, "cookie_i="); i >= 0 && strings.Contains(l, k) && i+25 <= len(l) {
			keys = append(keys, l[i:i+25])
		}
	}
	for _, side := range []struct {
		name string
		l    *logBuf
	}{{"a", p.logA}, {"b", p.logB}} {
		for _, line := range side.l.lines() {
			for _, k := range keys {
				if strings.Contains(line, k) {
					t.Logf("%s: %s", side.name, line)
					break
				}
			}
		}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("IKEV1_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newPair builds the pair; tweak adjusts connections and configs first.
func newPair(t testing.TB, tweak func(ca, cb *Connection, fa, fb *Config)) *pair {
	t.Helper()
	p := &pair{memA: memory.New(), memB: memory.New(), logA: &logBuf{}, logB: &logBuf{}}
	p.dbA, p.dbB = sadb.New(p.memA), sadb.New(p.memB)
	p.ca = &Connection{Name: "a-b", Remote: addrB, Auth: testPSK("a very secret key"),
		IKEProposals: mustIKE(t, "aes256-sha256-modp2048"), ESPProposals: mustESP(t, "aes256-sha256")}
	p.cb = &Connection{Name: "b-a", Remote: addrA, Auth: testPSK("a very secret key"),
		IKEProposals: mustIKE(t, "aes256-sha256-modp2048"), ESPProposals: mustESP(t, "aes256-sha256")}
	fa := Config{SADB: p.dbA, Logger: p.logA.logger(), RetransmitTimeout: 200 * time.Millisecond, Readers: 1}
	fb := Config{SADB: p.dbB, Logger: p.logB.logger(), RetransmitTimeout: 200 * time.Millisecond, Readers: 1}
	if tweak != nil {
		tweak(p.ca, p.cb, &fa, &fb)
	}
	fa.Connections, fb.Connections = []*Connection{p.ca}, []*Connection{p.cb}
	var err error
	if p.a, err = New(fa); err != nil {
		t.Fatal(err)
	}
	if p.b, err = New(fb); err != nil {
		t.Fatal(err)
	}
	p.ab, p.ba = transport.Pipe(addrA, addrB)
	p.a.AddBind(p.ab)
	p.b.AddBind(p.ba)
	t.Cleanup(func() {
		p.a.Close()
		p.b.Close()
	})
	return p
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after a generous
// hang guard.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
