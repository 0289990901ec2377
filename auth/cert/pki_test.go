package cert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/internal/testpki"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// side is one peer's files.
type side struct {
	dir  string
	leaf *x509.Certificate
	opts Options
}

// writeSide writes a peer's certificate, key, CA and intermediate into a
// fresh directory and returns Options with relative paths.
func writeSide(t testing.TB, p, trust *testpki.PKI, key crypto.Signer, leaf *x509.Certificate) *side {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cert.pem"), testpki.CertPEM(leaf), 0o644)
	writeFile(t, filepath.Join(dir, "key.pem"), testpki.KeyPEM(t, key), 0o600)
	writeFile(t, filepath.Join(dir, "ca.pem"), testpki.CertPEM(trust.Root), 0o644)
	writeFile(t, filepath.Join(dir, "inter.pem"), testpki.CertPEM(p.Inter), 0o644)
	return &side{dir: dir, leaf: leaf, opts: Options{Cert: "cert.pem", Key: "key.pem", CA: []string{"ca.pem"}, Intermediates: []string{"inter.pem"}}}
}

func (s *side) method(t testing.TB) *Method {
	t.Helper()
	m, err := FromOptions(s.opts, s.dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// logBuf collects log lines from an engine.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	addrA = netip.MustParseAddrPort("192.0.2.1:500")
	addrB = netip.MustParseAddrPort("192.0.2.2:500")
)

// pair is two engines over an in-memory pipe, A initiating to B.
type pair struct {
	a, b       *ike.Engine
	logA, logB *logBuf
}

func fqdn(s string) ike.Identity { return ike.Identity{Type: wire.IDFQDN, Value: []byte(s)} }

// newPair starts two engines: A (local ID idA, method ma) initiates the
// connection "a-b" to B (idB, mb). Remote IDs are "any": the certificates
// decide.
func newPair(t testing.TB, ma, mb auth.Method, idA, idB ike.Identity, level slog.Level) *pair {
	t.Helper()
	p := &pair{logA: &logBuf{}, logB: &logBuf{}}
	prop := func(s string, esp bool) []transform.Proposal {
		var pr transform.Proposal
		var err error
		if esp {
			pr, err = transform.ParseESPProposal(s)
		} else {
			pr, err = transform.ParseIKEProposal(s)
		}
		if err != nil {
			t.Fatal(err)
		}
		return []transform.Proposal{pr}
	}
	connA := &ike.Connection{Name: "a-b", Local: addrA.Addr(), Remote: addrB, LocalID: idA, Auth: ma,
		IKEProposals: prop("aes256gcm16-prfsha256-x25519", false), ESPProposals: prop("aes256gcm16", true)}
	connB := &ike.Connection{Name: "b-a", Local: addrB.Addr(), Remote: addrA, LocalID: idB, Auth: mb,
		IKEProposals: prop("aes256gcm16-prfsha256-x25519", false), ESPProposals: prop("aes256gcm16", true)}
	mk := func(c *ike.Connection, w io.Writer) *ike.Engine {
		e, err := ike.New(ike.Config{
			Connections: []*ike.Connection{c}, SADB: sadb.New(memory.New()), CookieThreshold: -1,
			RetransmitTimeout: 2 * time.Second, Readers: 1,
			Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})),
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	p.a, p.b = mk(connA, p.logA), mk(connB, p.logB)
	ba, bb := transport.Pipe(addrA, addrB)
	p.a.AddBind(ba)
	p.b.AddBind(bb)
	t.Cleanup(func() { p.a.Close(); p.b.Close() })
	return p
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var bigOne = big.NewInt(1)
