package cert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// Test keys are generated once per kind: RSA-4096 takes seconds.
var (
	keyMu    sync.Mutex
	keyCache = map[string]crypto.Signer{}
)

// testKey returns the shared key of a kind: rsa2048, rsa4096, p256, p384,
// p521, ed25519. Suffixes ("p256-other") give further keys of the kind.
func testKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	if k := keyCache[kind]; k != nil {
		return k
	}
	base, _, _ := strings.Cut(kind, "-")
	var k crypto.Signer
	var err error
	switch base {
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa4096":
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	keyCache[kind] = k
	return k
}

// pki is a root CA and an intermediate CA below it.
type pki struct {
	name              string
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
	serial            atomic.Int64
}

func newPKI(t testing.TB, name string) *pki {
	t.Helper()
	p := &pki{name: name}
	p.serial.Store(100)
	p.rootKey = testKey(t, "p384-"+name+"-root")
	p.interKey = testKey(t, "p256-"+name+"-inter")
	now := time.Now()
	rootT := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"iked test " + name}, CommonName: name + " Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.root = mustCreate(t, rootT, rootT, p.rootKey.Public(), p.rootKey)
	interT := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{Organization: []string{"iked test " + name}, CommonName: name + " Intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.inter = mustCreate(t, interT, p.root, p.interKey.Public(), p.rootKey)
	return p
}

func mustCreate(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leafOpts describes an end-entity certificate.
type leafOpts struct {
	cn         string
	dns        []string
	emails     []string
	ips        []net.IP
	notBefore  time.Time
	notAfter   time.Time
	eku        []x509.ExtKeyUsage
	unknownEKU []asn1.ObjectIdentifier
	ku         x509.KeyUsage
	byRoot     bool // issued directly by the root
}

// issue makes an end-entity certificate for key.
func (p *pki) issue(t testing.TB, key crypto.Signer, o leafOpts) *x509.Certificate {
	t.Helper()
	now := time.Now()
	if o.notBefore.IsZero() {
		o.notBefore = now.Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = now.Add(365 * 24 * time.Hour)
	}
	if o.ku == 0 {
		o.ku = x509.KeyUsageDigitalSignature
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial.Add(1)), Subject: pkix.Name{Organization: []string{"iked test " + p.name}, CommonName: o.cn},
		NotBefore: o.notBefore, NotAfter: o.notAfter, KeyUsage: o.ku, ExtKeyUsage: o.eku, UnknownExtKeyUsage: o.unknownEKU,
		DNSNames: o.dns, EmailAddresses: o.emails, IPAddresses: o.ips, BasicConstraintsValid: true,
	}
	parent, pk := p.inter, p.interKey
	if o.byRoot {
		parent, pk = p.root, p.rootKey
	}
	return mustCreate(t, tmpl, parent, key.Public(), pk)
}

// crl returns a PEM CRL of the intermediate CA revoking serials.
func (p *pki) crl(t testing.TB, number int64, serials ...*big.Int) []byte {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: s, RevocationTime: now.Add(-time.Minute), ReasonCode: 1,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.inter, p.interKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func certPEM(cs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range cs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func keyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

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
func writeSide(t testing.TB, p, trust *pki, key crypto.Signer, leaf *x509.Certificate) *side {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cert.pem"), certPEM(leaf), 0o644)
	writeFile(t, filepath.Join(dir, "key.pem"), keyPEM(t, key), 0o600)
	writeFile(t, filepath.Join(dir, "ca.pem"), certPEM(trust.root), 0o644)
	writeFile(t, filepath.Join(dir, "inter.pem"), certPEM(p.inter), 0o644)
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
