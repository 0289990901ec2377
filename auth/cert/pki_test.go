package cert

import (
	"crypto"
	"crypto/x509"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/internal/enginetest"
	"github.com/iked/iked/internal/testpki"
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

// newPair starts two engines: A (local ID idA, method ma) initiates the
// connection "a-b" to B (idB, mb). Remote IDs are "any": the certificates
// decide.
func newPair(t testing.TB, ma, mb auth.Method, idA, idB ike.Identity, level slog.Level) *enginetest.Pair {
	t.Helper()
	return enginetest.NewPair(t, enginetest.Options{Level: level, Edit: func(ca, cb *ike.Connection, cfgA, cfgB *ike.Config) {
		ca.LocalID, ca.RemoteID, ca.Auth = idA, ike.Identity{}, ma
		cb.LocalID, cb.RemoteID, cb.Auth = idB, ike.Identity{}, mb
		cfgA.RetransmitTimeout, cfgB.RetransmitTimeout = 2*time.Second, 2*time.Second
	}})
}

// waitFor polls cond until it holds; the deadline is a hang guard, long
// enough for a loaded machine under the race detector.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var bigOne = big.NewInt(1)
