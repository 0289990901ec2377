package ikev1

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/auth/cert"
	"github.com/iked/iked/ikev1/isakmp"
)

// testPKI is a CA and end-entity certificates for hosts a and b, written
// as PEM files in dir.
type testPKI struct {
	dir    string
	caKey  crypto.Signer
	caCert *x509.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "iked test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: t.TempDir(), caKey: key, caCert: ca}
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate for name (an FQDN SAN) with a key of kind
// "rsa" or "ecdsa" and returns the cert method that uses it.
func (p *testPKI) issue(t *testing.T, name, kind string) *cert.Method {
	t.Helper()
	var key crypto.Signer
	var err error
	if kind == "rsa" {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name, Organization: []string{"iked"}},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(p.dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(p.dir, name+".key"), "PRIVATE KEY", pk)
	m, err := cert.FromOptions(cert.Options{Cert: name + ".pem", Key: name + ".key", CA: []string{"ca.pem"}}, p.dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMainModeCertificates(t *testing.T) {
	for _, kind := range []string{"rsa", "ecdsa"} {
		t.Run(kind, func(t *testing.T) {
			pki := newTestPKI(t)
			ma, mb := pki.issue(t, "a.example", kind), pki.issue(t, "b.example", kind)
			p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
				ca.Auth, cb.Auth = ma, mb
				ca.LocalID = Identity{Type: isakmp.IDFQDN, Value: []byte("a.example")}
				ca.RemoteID = Identity{Type: isakmp.IDFQDN, Value: []byte("b.example")}
				cb.LocalID, cb.RemoteID = ca.RemoteID, ca.LocalID
			})
			info, err := p.a.Initiate(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			want := "rsa-sig"
			if kind == "ecdsa" {
				want = "ecdsa-sig"
			}
			if info.Auth != want || info.RemoteID != "fqdn:b.example" || len(info.Children) != 1 {
				t.Fatalf("initiator SA %+v", info)
			}
			waitFor(t, "responder", func() bool { s := p.b.SAs(); return len(s) == 1 && len(s[0].Children) == 1 })
			checkKeys(t, p.memA.SAs(), p.memB.SAs())
		})
	}
}

// TestMainModeCertificateDN: without a configured local identity the
// certificate's subject is sent (ID_DER_ASN1_DN), and the peer's chain is
// checked against it.
func TestMainModeCertificateDN(t *testing.T) {
	pki := newTestPKI(t)
	ma, mb := pki.issue(t, "a.example", "rsa"), pki.issue(t, "b.example", "rsa")
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) { ca.Auth, cb.Auth = ma, mb })
	info, err := p.a.Initiate(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if info.LocalID != "dn:CN=a.example,O=iked" || info.RemoteID != "dn:CN=b.example,O=iked" {
		t.Fatalf("identities %s === %s", info.LocalID, info.RemoteID)
	}
}

// TestMainModeCertificateUntrusted: a peer whose certificate does not
// chain to our CA is refused with AUTHENTICATION-FAILED.
func TestMainModeCertificateUntrusted(t *testing.T) {
	pki, other := newTestPKI(t), newTestPKI(t)
	ma, mb := pki.issue(t, "a.example", "ecdsa"), other.issue(t, "b.example", "ecdsa")
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) { ca.Auth, cb.Auth = ma, mb })
	if _, err := p.a.Initiate(ctxT(t), "a-b"); err == nil {
		t.Fatal("Main Mode with an untrusted certificate succeeded")
	}
	// The responder counts the failure as it sends AUTHENTICATION-FAILED.
	waitFor(t, "the responder's failure", func() bool { return p.b.Stats().HandshakesFailed["authentication_failed"] == 1 })
}

// TestFragmentation: with a fragment size smaller than the certificate
// messages, Main Mode's fifth and sixth messages go as IKE fragments
// (payload 132) both ways and are reassembled.
func TestFragmentation(t *testing.T) {
	pki := newTestPKI(t)
	ma, mb := pki.issue(t, "a.example", "rsa"), pki.issue(t, "b.example", "rsa")
	var mu sync.Mutex
	frags := map[string]int{}
	p := newPair(t, func(ca, cb *Connection, fa, fb *Config) {
		ca.Auth, cb.Auth = ma, mb
		fa.FragmentSize, fb.FragmentSize = 576, 576
	})
	count := func(who string) func([]byte) bool {
		return func(b []byte) bool {
			if len(b) > 576 {
				t.Errorf("%s sent a datagram of %d octets", who, len(b))
			}
			if h, err := isakmp.ParseHeader(b); err == nil && h.Next == isakmp.PayloadFragment {
				mu.Lock()
				frags[who]++
				mu.Unlock()
			}
			return true
		}
	}
	p.ab.Filter, p.ba.Filter = count("a"), count("b")
	info, err := p.a.Initiate(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if info.Auth != "rsa-sig" || len(info.Children) != 1 {
		t.Fatalf("SA %+v", info)
	}
	mu.Lock()
	defer mu.Unlock()
	if frags["a"] < 2 || frags["b"] < 2 {
		t.Errorf("fragments sent: %v, want at least two each way", frags)
	}
}
