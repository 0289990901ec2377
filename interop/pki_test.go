package interop

import (
	"crypto"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/iked/iked/internal/testpki"
)

// The certificate interop tests make their certificates with
// internal/testpki; these names keep the tests short.

func pkiKey(t testing.TB, kind, label string) crypto.Signer { return testpki.Key(t, kind, label) }

type testPKI struct {
	*testpki.PKI
	root, inter *x509.Certificate
}

func newTestPKI(t testing.TB, name, interKind string, validity time.Duration) *testPKI {
	p := testpki.New(t, name, interKind, validity)
	return &testPKI{PKI: p, root: p.Root, inter: p.Inter}
}

// newTestPKIWith is newTestPKI with the root's key kind and the
// certificates' signature algorithm (testpki.NewWith).
func newTestPKIWith(t testing.TB, name, rootKind, interKind string, sigAlg x509.SignatureAlgorithm) *testPKI {
	p := testpki.NewWith(t, name, rootKind, interKind, sigAlg, 0)
	return &testPKI{PKI: p, root: p.Root, inter: p.Inter}
}

type leafSpec struct {
	cn                  string
	dns                 []string
	notAfter, notBefore time.Time
}

func (p *testPKI) issue(t testing.TB, key crypto.Signer, s leafSpec) *x509.Certificate {
	return p.Issue(t, key, testpki.Leaf{CN: s.cn, DNS: s.dns, NotAfter: s.notAfter, NotBefore: s.notBefore})
}

func (p *testPKI) crl(t testing.TB, serials ...*big.Int) []byte { return p.CRL(t, serials...) }

func certPEM(cs ...*x509.Certificate) []byte      { return testpki.CertPEM(cs...) }
func keyPEM(t testing.TB, k crypto.Signer) []byte { return testpki.KeyPEM(t, k) }
func dnOf(c *x509.Certificate) string             { return testpki.DN(c) }
