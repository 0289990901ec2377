// Package testpki makes throwaway X.509 material for iked's tests: a root
// CA and an intermediate CA per PKI, end-entity certificates the
// intermediate issues (with the key usages IKE wants), CRLs, and PEM
// encodings that both iked and strongSwan read. Nothing here is for
// production: keys are generated fast and cached per process.
package testpki

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
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Keys are generated once per label and process: RSA-4096 takes a second.
var (
	keyMu sync.Mutex
	keys  = map[string]crypto.Signer{}
)

// Key returns the key labelled label, generating one of kind (rsa2048,
// rsa4096, p256, p384, p521, ed25519) on first use.
func Key(t testing.TB, kind, label string) crypto.Signer {
	t.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	if k := keys[kind+"/"+label]; k != nil {
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
	keys[kind+"/"+label] = k
	return k
}

// oidIPsecIKE is the ipsecIKE extended key usage (RFC 4945).
var oidIPsecIKE = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 17}

// PKI is a root CA and an intermediate CA it issued.
type PKI struct {
	Name              string
	Root, Inter       *x509.Certificate
	RootKey, InterKey crypto.Signer
	crlNumber         atomic.Int64 // the last CRL's number
}

// Org is the organisation of every test certificate's subject.
const Org = "iked interop"

// New makes a root CA (P-384) and an intermediate CA with a key of
// interKind, both valid from an hour ago for validity (at least ten years
// when zero).
func New(t testing.TB, name, interKind string, validity time.Duration) *PKI {
	t.Helper()
	if validity == 0 {
		validity = 10 * 365 * 24 * time.Hour
	}
	p := &PKI{Name: name, RootKey: Key(t, "p384", name+"-root"), InterKey: Key(t, interKind, name+"-inter")}
	now := time.Now()
	rootT := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{Org}, CommonName: name + " Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity + time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.Root = createCert(t, rootT, rootT, p.RootKey.Public(), p.RootKey)
	interT := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{Org}, CommonName: name + " Intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.Inter = createCert(t, interT, p.Root, p.InterKey.Public(), p.RootKey)
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

// Leaf describes an end-entity certificate.
type Leaf struct {
	CN       string   // subject CN (with C=CH, O=Org)
	DNS      []string // dNSName subjectAltNames
	Emails   []string // rfc822Name subjectAltNames
	IPs      []net.IP // iPAddress subjectAltNames
	NotAfter time.Time
	// NotBefore defaults to an hour ago, NotAfter to a year ahead.
	NotBefore time.Time
	// EKU, when set, replaces the default extended key usages (serverAuth,
	// clientAuth and ipsecIKE): a certificate IKE should refuse.
	EKU []x509.ExtKeyUsage
}

// Issue makes an end-entity certificate for key, issued by the
// intermediate: keyUsage digitalSignature, extendedKeyUsage serverAuth,
// clientAuth and ipsecIKE unless s.EKU says otherwise.
func (p *PKI) Issue(t testing.TB, key crypto.Signer, s Leaf) *x509.Certificate {
	t.Helper()
	now := time.Now()
	if s.NotBefore.IsZero() {
		s.NotBefore = now.Add(-time.Hour)
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = now.Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{Country: []string{"CH"}, Organization: []string{Org}, CommonName: s.CN},
		NotBefore: s.NotBefore, NotAfter: s.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{oidIPsecIKE},
		DNSNames:           s.DNS, EmailAddresses: s.Emails, IPAddresses: s.IPs, BasicConstraintsValid: true,
	}
	if s.EKU != nil {
		tmpl.ExtKeyUsage, tmpl.UnknownExtKeyUsage = s.EKU, nil
	}
	return createCert(t, tmpl, p.Inter, key.Public(), p.InterKey)
}

// IssueTemplate signs tmpl as it is with the intermediate, for the
// certificates Issue does not make (a subject of other attributes, no
// subject at all).
func (p *PKI) IssueTemplate(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	return createCert(t, tmpl, p.Inter, pub, p.InterKey)
}

// CRL returns a PEM CRL of the intermediate CA revoking serials (reason
// keyCompromise). Each CRL of a PKI is numbered one above the last.
func (p *PKI) CRL(t testing.TB, serials ...*big.Int) []byte {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(p.crlNumber.Add(1)), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: s, RevocationTime: now.Add(-time.Minute), ReasonCode: 1,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.Inter, p.InterKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// CertPEM encodes certificates as PEM.
func CertPEM(cs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range cs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// KeyPEM encodes a private key as PKCS#8 PEM ("PRIVATE KEY"), which both
// iked and charon (swanctl/private/) read.
func KeyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// DN is a certificate's subject in strongSwan's notation ("C=CH,
// O=iked interop, CN=charon.example"), which iked's ParseIdentity takes
// after "dn:".
func DN(c *x509.Certificate) string {
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
