package interop

import (
	"bytes"
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
	"math/big"
	"sync"
	"testing"
	"time"
)

// This file makes the certificates of the certificate interop tests in Go
// (like auth/cert's unit tests): a root CA and an intermediate CA per
// PKI, end-entity certificates issued by the intermediate, and CRLs of
// the intermediate. Everything is PEM, for iked's files and charon's
// swanctl directories alike.

// Keys are generated once per label and process: RSA-4096 takes a second.
var (
	pkiKeyMu sync.Mutex
	pkiKeys  = map[string]crypto.Signer{}
)

// pkiKey returns the key labelled label, generating one of kind (rsa2048,
// rsa4096, p256, p384, ed25519) on first use.
func pkiKey(t testing.TB, kind, label string) crypto.Signer {
	t.Helper()
	pkiKeyMu.Lock()
	defer pkiKeyMu.Unlock()
	if k := pkiKeys[kind+"/"+label]; k != nil {
		return k
	}
	var k crypto.Signer
	var err error
	switch kind {
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa4096":
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	pkiKeys[kind+"/"+label] = k
	return k
}

// oidIPsecIKE is the ipsecIKE extended key usage (RFC 4945).
var oidIPsecIKE = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 17}

// testPKI is a root CA and an intermediate CA it issued.
type testPKI struct {
	name              string
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
}

// certOrg is the organisation of every test certificate's subject.
const certOrg = "iked interop"

// newTestPKI makes a root CA (P-384) and an intermediate CA with a key of
// interKind, both valid from an hour ago for validity (at least ten years
// when zero).
func newTestPKI(t testing.TB, name, interKind string, validity time.Duration) *testPKI {
	t.Helper()
	if validity == 0 {
		validity = 10 * 365 * 24 * time.Hour
	}
	p := &testPKI{name: name, rootKey: pkiKey(t, "p384", name+"-root"), interKey: pkiKey(t, interKind, name+"-inter")}
	now := time.Now()
	rootT := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{certOrg}, CommonName: name + " Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity + time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.root = createCert(t, rootT, rootT, p.rootKey.Public(), p.rootKey)
	interT := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{certOrg}, CommonName: name + " Intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.inter = createCert(t, interT, p.root, p.interKey.Public(), p.rootKey)
	return p
}

func randSerial(t testing.TB) *big.Int {
	t.Helper()
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return s.Add(s, big.NewInt(1))
}

func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
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

// leafSpec describes an end-entity certificate.
type leafSpec struct {
	cn       string   // subject CN (with C=CH, O=certOrg)
	dns      []string // dNSName subjectAltNames
	notAfter time.Time
	// notBefore defaults to an hour ago, notAfter to a year ahead.
	notBefore time.Time
}

// issue makes an end-entity certificate for key, issued by the
// intermediate: keyUsage digitalSignature, extendedKeyUsage serverAuth,
// clientAuth and ipsecIKE.
func (p *testPKI) issue(t testing.TB, key crypto.Signer, s leafSpec) *x509.Certificate {
	t.Helper()
	now := time.Now()
	if s.notBefore.IsZero() {
		s.notBefore = now.Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = now.Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{certOrg}, CommonName: s.cn},
		NotBefore: s.notBefore, NotAfter: s.notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{oidIPsecIKE},
		DNSNames:           s.dns, BasicConstraintsValid: true,
	}
	return createCert(t, tmpl, p.inter, key.Public(), p.interKey)
}

// crl returns a PEM CRL of the intermediate CA revoking serials (reason
// keyCompromise).
func (p *testPKI) crl(t testing.TB, serials ...*big.Int) []byte {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour)}
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

// certPEM encodes certificates as PEM.
func certPEM(cs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range cs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// keyPEM encodes a private key as PKCS#8 PEM ("PRIVATE KEY"), which both
// iked and charon (swanctl/private/) read.
func keyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// dnOf is a certificate's subject in strongSwan's notation ("C=CH,
// O=iked interop, CN=charon.example"), which iked's ParseIdentity takes
// after "dn:".
func dnOf(c *x509.Certificate) string {
	var parts []string
	for _, rdn := range c.Subject.ToRDNSequence() {
		for _, a := range rdn {
			name := a.Type.String()
			switch {
			case a.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 6}):
				name = "C"
			case a.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 10}):
				name = "O"
			case a.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}):
				name = "CN"
			}
			parts = append(parts, name+"="+a.Value.(string))
		}
	}
	return joinComma(parts)
}

func joinComma(parts []string) string {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p)
	}
	return b.String()
}
