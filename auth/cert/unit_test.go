package cert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/internal/testpki"
)

// The AlgorithmIdentifier objects of RFC 7427 Appendix A (A.1, A.3,
// A.4.3 and its SHA-384/512 siblings) and RFC 8420 §2, transcribed from
// the RFCs independently of sig.go.
var rfc7427Objects = []struct {
	name   string
	scheme Scheme
	hex    string
}{
	{"sha256WithRSAEncryption", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA256}, "300d 0609 2a86 4886 f70d 0101 0b05 00"},
	{"sha384WithRSAEncryption", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA384}, "300d 0609 2a86 4886 f70d 0101 0c05 00"},
	{"sha512WithRSAEncryption", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA512}, "300d 0609 2a86 4886 f70d 0101 0d05 00"},
	{"ecdsa-with-sha256", Scheme{Method: wire.AuthDigitalSig, kind: kindECDSA, Hash: crypto.SHA256}, "300a 0608 2a86 48ce 3d04 0302"},
	{"ecdsa-with-sha384", Scheme{Method: wire.AuthDigitalSig, kind: kindECDSA, Hash: crypto.SHA384}, "300a 0608 2a86 48ce 3d04 0303"},
	{"ecdsa-with-sha512", Scheme{Method: wire.AuthDigitalSig, kind: kindECDSA, Hash: crypto.SHA512}, "300a 0608 2a86 48ce 3d04 0304"},
	{"RSASSA-PSS SHA-256", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA256, PSS: true, SaltLength: 32},
		"3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0201 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0201 0500 a203 0201 20"},
	{"RSASSA-PSS SHA-384", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA384, PSS: true, SaltLength: 48},
		"3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0202 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0202 0500 a203 0201 30"},
	{"RSASSA-PSS SHA-512", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA512, PSS: true, SaltLength: 64},
		"3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0203 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0203 0500 a203 0201 40"},
	{"Ed25519", Scheme{Method: wire.AuthDigitalSig, kind: kindEd25519}, "3005 0603 2b65 70"},
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAlgorithmIdentifierEncoding(t *testing.T) {
	for _, o := range rfc7427Objects {
		want := unhex(t, o.hex)
		got, err := o.scheme.AlgorithmIdentifier()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: encoded %x, %v; want %x", o.name, got, err, want)
		}
		s, err := ParseAlgorithmIdentifier(want)
		if err != nil || s != o.scheme {
			t.Errorf("%s: decoded %+v, %v; want %+v", o.name, s, err, o.scheme)
		}
	}
}

// TestAlgorithmIdentifierMatchesX509 checks the PSS and PKCS#1 blobs
// against what crypto/x509 puts in certificates it signs.
func TestAlgorithmIdentifierMatchesX509(t *testing.T) {
	key := testpki.Key(t, "rsa2048", "")
	for _, c := range []struct {
		alg x509.SignatureAlgorithm
		der []byte
	}{
		{x509.SHA256WithRSAPSS, derPSSSHA256}, {x509.SHA384WithRSAPSS, derPSSSHA384}, {x509.SHA512WithRSAPSS, derPSSSHA512},
		{x509.SHA256WithRSA, derSHA256WithRSA}, {x509.SHA512WithRSA, derSHA512WithRSA},
	} {
		tmpl := &x509.Certificate{SerialNumber: bigOne, SignatureAlgorithm: c.alg}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		var outer struct {
			TBS    asn1.RawValue
			SigAlg asn1.RawValue
			Sig    asn1.BitString
		}
		if _, err := asn1.Unmarshal(der, &outer); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(outer.SigAlg.FullBytes, c.der) {
			t.Errorf("%v: crypto/x509 encodes %x, we send %x", c.alg, outer.SigAlg.FullBytes, c.der)
		}
	}
}

func TestAlgorithmIdentifierDecodingEdges(t *testing.T) {
	// RFC 7427 A.4.1, RSASSA-PSS without parameters: SHA-1 defaults.
	s, err := ParseAlgorithmIdentifier(unhex(t, "300b 0609 2a86 4886 f70d 0101 0a"))
	if err != nil || !s.PSS || s.Hash != crypto.SHA1 || s.SaltLength != 20 {
		t.Fatalf("PSS with absent parameters: %+v, %v", s, err)
	}
	if err := s.acceptable(); err == nil || !strings.Contains(err.Error(), "SHA-1") {
		t.Errorf("SHA-1 PSS accepted: %v", err)
	}
	// RFC 7427 A.4.2 as published: the default parameters spelled out.
	s, err = ParseAlgorithmIdentifier(unhex(t, "303e 0609 2a86 4886 f70d 0101 0a30 31a0 0b30 0906 052b 0e03 021a 0500 a118 3016 0609 2a86 4886 f70d 0101 0830 0906 052b 0e03 021a 0500 a203 0201 14a3 0302 0101"))
	if err != nil || s.Hash != crypto.SHA1 || s.SaltLength != 20 {
		t.Fatalf("PSS with explicit default parameters: %+v, %v", s, err)
	}
	// sha1WithRSAEncryption (A.1) decodes but is refused in method 14.
	s, err = ParseAlgorithmIdentifier(unhex(t, "300d 0609 2a86 4886 f70d 0101 0505 00"))
	if err != nil || s.Hash != crypto.SHA1 || s.acceptable() == nil {
		t.Fatalf("sha1WithRSAEncryption: %+v, %v", s, err)
	}
	// ECDSA with NULL parameters (RFC 5758 wants them absent; some
	// implementations add NULL, as for RSA) is read leniently.
	if s, err := ParseAlgorithmIdentifier(unhex(t, "300c 0608 2a86 48ce 3d04 0302 0500")); err != nil || s.Hash != crypto.SHA256 {
		t.Fatalf("ECDSA with NULL parameters: %+v, %v", s, err)
	}
	// PSS with SHA-256 and a 20-octet salt (as some peers send) decodes.
	s, err = ParseAlgorithmIdentifier(unhex(t, "3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0201 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0201 0500 a203 0201 14"))
	if err != nil || s.Hash != crypto.SHA256 || s.SaltLength != 20 || s.acceptable() != nil {
		t.Fatalf("PSS SHA-256 salt 20: %+v, %v", s, err)
	}
	for name, bad := range map[string]string{
		"empty":           "",
		"trailing data":   "300a 0608 2a86 48ce 3d04 0302 00",
		"unknown oid":     "3006 0604 2a03 0405",
		"ecdsa params":    "300c 0608 2a86 48ce 3d04 0302 0201 00",
		"ed25519 params":  "3007 0603 2b65 70 0500",
		"mgf1 other hash": "3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0201 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0202 0500 a203 0201 20",
	} {
		if _, err := ParseAlgorithmIdentifier(unhex(t, bad)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	// AUTH data framing.
	data := EncodeAuthData(derEd25519, []byte("sig"))
	if data[0] != byte(len(derEd25519)) {
		t.Fatalf("length octet %d", data[0])
	}
	s, sig, err := DecodeAuthData(data)
	if err != nil || s.kind != kindEd25519 || string(sig) != "sig" {
		t.Fatalf("decode: %+v %q %v", s, sig, err)
	}
	for _, bad := range [][]byte{nil, {0}, {7, 0x30, 0x05}, append([]byte{7}, derEd25519...)} {
		if _, _, err := DecodeAuthData(bad); err == nil {
			t.Errorf("AUTH data %x decoded", bad)
		}
	}
}

// TestSignVerifyAllSchemes signs and verifies with every scheme and key
// and checks that tampered data fails.
func TestSignVerifyAllSchemes(t *testing.T) {
	data := []byte("signed octets")
	for _, c := range []struct {
		key    string
		scheme Scheme
	}{
		{"rsa2048", Scheme{Method: wire.AuthRSASig, kind: kindRSA, Hash: crypto.SHA1}},
		{"rsa2048", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA256, PSS: true}},
		{"rsa2048", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA512, PSS: true}},
		{"rsa2048", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA384}},
		{"p256", Scheme{Method: wire.AuthECDSA256, kind: kindECDSA, Hash: crypto.SHA256}},
		{"p384", Scheme{Method: wire.AuthECDSA384, kind: kindECDSA, Hash: crypto.SHA384}},
		{"p521", Scheme{Method: wire.AuthECDSA521, kind: kindECDSA, Hash: crypto.SHA512}},
		{"p256", Scheme{Method: wire.AuthDigitalSig, kind: kindECDSA, Hash: crypto.SHA384}},
		{"ed25519", Scheme{Method: wire.AuthDigitalSig, kind: kindEd25519}},
	} {
		t.Run(c.key+"/"+c.scheme.String(), func(t *testing.T) {
			k := testpki.Key(t, c.key, "")
			sig, err := sign(k, c.scheme, data, nil)
			if err != nil {
				t.Fatal(err)
			}
			a := &wire.Auth{Method: c.scheme.Method, Data: sig}
			if _, err := verifyAuth(k.Public(), a, data); err != nil {
				t.Fatal(err)
			}
			if _, err := verifyAuth(k.Public(), a, []byte("other octets")); err == nil {
				t.Fatal("verified over other data")
			}
			other := testpki.Key(t, c.key, "other")
			if _, err := verifyAuth(other.Public(), a, data); err == nil {
				t.Fatal("verified with another key")
			}
		})
	}
	// A method 9 signature does not verify with a P-384 key.
	sig, _ := sign(testpki.Key(t, "p256", ""), Scheme{Method: wire.AuthECDSA256, kind: kindECDSA, Hash: crypto.SHA256}, data, nil)
	if _, err := verifyAuth(testpki.Key(t, "p384", "").Public(), &wire.Auth{Method: wire.AuthECDSA256, Data: sig}, data); err == nil {
		t.Fatal("method 9 verified with a P-384 key")
	}
}

func TestHashNotify(t *testing.T) {
	n := HashAlgorithmsNotify(announcedHashes)
	if n.Code != wire.NotifySignatureHashAlgorithms || !bytes.Equal(n.Data, []byte{0, 2, 0, 3, 0, 4, 0, 5}) {
		t.Fatalf("notify %d %x", n.Code, n.Data)
	}
	hs, ok := PeerHashes([]wire.Payload{&wire.Nonce{}, n})
	if !ok || fmt.Sprint(hs) != "[2 3 4 5]" {
		t.Fatalf("peer hashes %v %v", hs, ok)
	}
	if _, ok := PeerHashes(nil); ok {
		t.Fatal("hashes found in nothing")
	}
}

func TestCertReq(t *testing.T) {
	p := testpki.New(t, "req", "p256", 0)
	// The hash is over the whole SubjectPublicKeyInfo (RFC 7296 §3.7),
	// computed here from the public key independently of the certificate.
	spki, err := x509.MarshalPKIXPublicKey(p.RootKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	if h := CertReqHash(p.Root); h != sha1.Sum(spki) {
		t.Fatalf("CERTREQ hash %x, want %x", h, sha1.Sum(spki))
	}
	r := CertReq([]*x509.Certificate{p.Root, p.Inter})
	if r.Encoding != 4 || len(r.Data) != 40 {
		t.Fatalf("CERTREQ encoding %d, %d octets", r.Encoding, len(r.Data))
	}
	set := requestedCAs([]wire.Payload{r, &wire.CertReq{Encoding: 12, Data: make([]byte, 20)}}, []wire.Payload{CertReq([]*x509.Certificate{p.Root})})
	if len(set) != 2 || !set[CertReqHash(p.Root)] || !set[CertReqHash(p.Inter)] {
		t.Fatalf("requested CAs %v", set)
	}

	// What is sent for which request.
	k := testpki.Key(t, "p256", "")
	leaf := p.Issue(t, k, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"}})
	unrelated := testpki.New(t, "unrelated", "p256", 0)
	s := writeSide(t, p, p, k, leaf)
	writeFile(t, filepath.Join(s.dir, "more.pem"), testpki.CertPEM(unrelated.Inter), 0o644)
	s.opts.Intermediates = append(s.opts.Intermediates, "more.pem")
	m := s.method(t)
	count := func(req map[[20]byte]bool) []string {
		var out []string
		for _, p := range m.certPayloads(req) {
			c, _ := x509.ParseCertificate(p.(*wire.Cert).Data)
			out = append(out, c.Subject.CommonName)
		}
		return out
	}
	for _, c := range []struct {
		name string
		req  []*x509.Certificate
		want string
	}{
		{"no CERTREQ", nil, "[a.example req Intermediate CA unrelated Intermediate CA]"},
		{"the root", []*x509.Certificate{p.Root}, "[a.example req Intermediate CA]"},
		{"the intermediate", []*x509.Certificate{p.Inter}, "[a.example]"},
		{"an unknown CA", []*x509.Certificate{unrelated.Root}, "[a.example req Intermediate CA unrelated Intermediate CA]"},
	} {
		var req map[[20]byte]bool
		if c.req != nil {
			req = requestedCAs([]wire.Payload{CertReq(c.req)})
		}
		if got := fmt.Sprint(count(req)); got != c.want {
			t.Errorf("%s: sent %s, want %s", c.name, got, c.want)
		}
	}
}

func TestMatchIdentity(t *testing.T) {
	p := testpki.New(t, "match", "p256", 0)
	k := testpki.Key(t, "p256", "")
	c := p.Issue(t, k, testpki.Leaf{CN: "gw.example", DNS: []string{"gw.example", "vpn.example."},
		Emails: []string{"admin@Example.org"}, IPs: []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")}})
	dnT := &x509.Certificate{SerialNumber: bigOne, Subject: pkix.Name{CommonName: "user", Country: []string{"CH"},
		ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidEmailAddress, Value: "user@example.org"}}}}
	dnCert := p.IssueTemplate(t, dnT, k.Public())

	// The same DN re-encoded with other case: matches attribute by attribute.
	var rdn pkix.RDNSequence
	if _, err := asn1.Unmarshal(dnCert.RawSubject, &rdn); err != nil {
		t.Fatal(err)
	}
	for i := range rdn {
		for j := range rdn[i] {
			if s, ok := rdn[i][j].Value.(string); ok && rdn[i][j].Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}) {
				rdn[i][j].Value = strings.ToUpper(s)
			}
		}
	}
	upper, _ := asn1.Marshal(rdn)
	otherDN, _ := asn1.Marshal(pkix.Name{CommonName: "someone"}.ToRDNSequence())

	id := func(t wire.IDType, v []byte) *wire.ID { return &wire.ID{IDType: t, Data: v} }
	v4, v6 := net.ParseIP("192.0.2.7").To4(), net.ParseIP("2001:db8::7").To16()
	for _, x := range []struct {
		id   *wire.ID
		cert *x509.Certificate
		ok   bool
	}{
		{id(wire.IDFQDN, []byte("gw.example")), c, true},
		{id(wire.IDFQDN, []byte("GW.Example")), c, true},
		{id(wire.IDFQDN, []byte("vpn.example")), c, true},
		{id(wire.IDFQDN, []byte("other.example")), c, false},
		{id(wire.IDFQDN, []byte("example")), c, false},
		{id(wire.IDRFC822Addr, []byte("admin@example.org")), c, true},
		{id(wire.IDRFC822Addr, []byte("Admin@example.org")), c, false},
		{id(wire.IDRFC822Addr, []byte("user@example.org")), dnCert, true}, // emailAddress in the subject
		{id(wire.IDRFC822Addr, []byte("user@example.org")), c, false},
		{id(wire.IDIPv4Addr, v4), c, true},
		{id(wire.IDIPv4Addr, []byte{192, 0, 2, 8}), c, false},
		{id(wire.IDIPv4Addr, v6), c, false},
		{id(wire.IDIPv6Addr, v6), c, true},
		{id(wire.IDIPv6Addr, net.ParseIP("2001:db8::8").To16()), c, false},
		{id(wire.IDDERASN1DN, dnCert.RawSubject), dnCert, true},
		{id(wire.IDDERASN1DN, upper), dnCert, true},
		{id(wire.IDDERASN1DN, otherDN), dnCert, false},
		{id(wire.IDDERASN1DN, []byte{0x30}), dnCert, false},
		{id(wire.IDKeyID, []byte("gw.example")), c, false},
		{id(wire.IDDERASN1GN, []byte{0x30}), c, false},
	} {
		err := MatchIdentity(x.id, x.cert)
		if (err == nil) != x.ok {
			t.Errorf("%s against %s: %v, want match %v", IdentityString(x.id), subjectString(x.cert), err, x.ok)
		}
	}
	if err := MatchIdentity(id(wire.IDFQDN, []byte("other.example")), c); err == nil ||
		!strings.Contains(err.Error(), "subjectAltNames: DNS:gw.example, DNS:vpn.example., email:admin@Example.org, IP:192.0.2.7, IP:2001:db8::7") {
		t.Errorf("reason %v", err)
	}

	// Default identities.
	if d, _ := CertIdentity(dnCert); d.IDType != wire.IDDERASN1DN || !bytes.Equal(d.Data, dnCert.RawSubject) {
		t.Errorf("default identity %s", IdentityString(d))
	}
	sanOnly := p.IssueTemplate(t, &x509.Certificate{SerialNumber: bigOne, DNSNames: []string{"san.example"}}, k.Public())
	if d, _ := CertIdentity(sanOnly); IdentityString(d) != "fqdn:san.example" {
		t.Errorf("default identity of a SAN-only certificate: %s", IdentityString(d))
	}
	if s := IdentityString(id(wire.IDDERASN1DN, dnCert.RawSubject)); s != "dn:1.2.840.113549.1.9.1=#0c1075736572406578616d706c652e6f7267,CN=user,C=CH" &&
		!strings.Contains(s, "CN=user") {
		t.Errorf("DN printed as %s", s)
	}
}

func TestCheckUsage(t *testing.T) {
	ipsecIKE := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 17}
	for _, c := range []struct {
		c  x509.Certificate
		ok bool
	}{
		{x509.Certificate{}, true},
		{x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}, true},
		{x509.Certificate{KeyUsage: x509.KeyUsageKeyEncipherment}, false},
		{x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, true},
		{x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true},
		{x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}, true},
		{x509.Certificate{UnknownExtKeyUsage: []asn1.ObjectIdentifier{ipsecIKE}}, true},
		{x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageEmailProtection}}, false},
		{x509.Certificate{UnknownExtKeyUsage: []asn1.ObjectIdentifier{{1, 2, 3}}}, false},
	} {
		if err := checkUsage(&c.c); (err == nil) != c.ok {
			t.Errorf("KU %v EKU %v %v: %v", c.c.KeyUsage, c.c.ExtKeyUsage, c.c.UnknownExtKeyUsage, err)
		}
	}
}

func TestKeyFilePermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602} {
		writeFile(t, path, testpki.KeyPEM(t, testpki.Key(t, "p256", "")), mode)
		_, err := LoadPrivateKey(path)
		if err == nil || !strings.Contains(err.Error(), "accessible by group or others") || !strings.Contains(err.Error(), fmt.Sprintf("%04o", mode)) {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		writeFile(t, path, testpki.KeyPEM(t, testpki.Key(t, "p256", "")), mode)
		if _, err := LoadPrivateKey(path); err != nil {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
}

func TestPEMKeyFormats(t *testing.T) {
	rsaKey := testpki.Key(t, "rsa2048", "").(*rsa.PrivateKey)
	ecKey := testpki.Key(t, "p384", "").(*ecdsa.PrivateKey)
	edKey := testpki.Key(t, "ed25519", "").(ed25519.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	ecParams := block("EC PARAMETERS", []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22})
	for _, c := range []struct {
		name string
		pem  []byte
		pub  crypto.PublicKey
	}{
		{"PKCS#8 RSA", testpki.KeyPEM(t, rsaKey), rsaKey.Public()},
		{"PKCS#8 ECDSA", testpki.KeyPEM(t, ecKey), ecKey.Public()},
		{"PKCS#8 Ed25519", testpki.KeyPEM(t, edKey), edKey.Public()},
		{"PKCS#1 RSA", block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), rsaKey.Public()},
		{"SEC1 ECDSA", block("EC PRIVATE KEY", sec1), ecKey.Public()},
		{"SEC1 ECDSA after EC PARAMETERS", append(ecParams, block("EC PRIVATE KEY", sec1)...), ecKey.Public()},
	} {
		k, err := ParsePrivateKeyPEM(c.pem)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.pub) {
			t.Errorf("%s: another key", c.name)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}})
	for _, c := range []struct {
		name, want string
		pem        []byte
	}{
		{"no key", "no PEM private key", testpki.CertPEM(testpki.New(t, "pem", "p256", 0).Root)},
		{"garbage", "no PEM private key", []byte("not a key")},
		{"encrypted PKCS#8", "encrypted PKCS#8", block("ENCRYPTED PRIVATE KEY", []byte{1})},
		{"encrypted PEM", "encrypted PEM", encrypted},
		{"corrupt", "PRIVATE KEY block", block("PRIVATE KEY", []byte{0x30, 0x00})},
		{"RSA-1024", "too short", block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small))},
	} {
		if _, err := ParsePrivateKeyPEM(c.pem); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestKeysNeverPrint formats keys and methods every way fmt can.
func TestKeysNeverPrint(t *testing.T) {
	p := testpki.New(t, "print", "p256", 0)
	k := testpki.Key(t, "rsa2048", "").(*rsa.PrivateKey)
	s := writeSide(t, p, p, k, p.Issue(t, k, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"}}))
	m := s.method(t)
	sess, _ := m.NewSession(nil)
	secret := k.D.String()
	secretHex := k.D.Text(16)
	for _, v := range []any{m, m.key, &m.key, struct{ K PrivateKey }{m.key}, sess} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, secret) || strings.Contains(out, secretHex) || strings.Contains(out, secretHex[:16]) {
				t.Fatalf("%s of %T shows the key", verb, v)
			}
		}
	}
}

func TestOptions(t *testing.T) {
	p := testpki.New(t, "opts", "p256", 0)
	k := testpki.Key(t, "p256", "")
	s := writeSide(t, p, p, k, p.Issue(t, k, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"}}))
	writeFile(t, filepath.Join(s.dir, "other-key.pem"), testpki.KeyPEM(t, testpki.Key(t, "p256", "other")), 0o600)
	writeFile(t, filepath.Join(s.dir, "bad.crl"), []byte("not a CRL"), 0o644)
	for _, c := range []struct {
		name string
		edit func(o *Options)
		want string
	}{
		{"no ca", func(o *Options) { o.CA = nil }, "ca is required"},
		{"no key", func(o *Options) { o.Key = "" }, "both cert and key are required"},
		{"missing cert", func(o *Options) { o.Cert = "nope.pem" }, "no such file"},
		{"key of another cert", func(o *Options) { o.Key = "other-key.pem" }, "private key does not belong to certificate"},
		{"signature for another key", func(o *Options) { o.Signature = SignaturePSS }, `signature "pss" needs an RSA key, the certificate holds an ECDSA key`},
		{"unknown signature", func(o *Options) { o.Signature = "dsa" }, `unknown signature "dsa"`},
		{"bad crl", func(o *Options) { o.CRLs = []string{"bad.crl"} }, "bad.crl"},
	} {
		o := s.opts
		c.edit(&o)
		if _, err := FromOptions(o, s.dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Absolute paths are used as they are.
	o := s.opts
	o.Cert = filepath.Join(s.dir, o.Cert)
	if _, err := FromOptions(o, "/nonexistent"); err == nil {
		t.Error("relative key found from another directory")
	}
	o.Key, o.CA, o.Intermediates = filepath.Join(s.dir, o.Key), []string{filepath.Join(s.dir, "ca.pem")}, nil
	if _, err := FromOptions(o, "/nonexistent"); err != nil {
		t.Error(err)
	}
}
