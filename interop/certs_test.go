package interop

import (
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"
)

// Certificate authentication against charon: both peers hold end-entity
// certificates issued by an intermediate CA below a root CA that the test
// makes (pki_test.go). iked gets cert.pem, key.pem, root.pem, inter.pem
// (and crl.pem); charon gets swanctl/x509/charon.pem and inter.pem,
// swanctl/x509ca/root.pem and swanctl/private/charon.key, loaded by
// swanctl --load-all, with local { auth = pubkey, certs = charon.pem }
// and remote { auth = pubkey, cacerts = root.pem }.

// AUTH methods (RFC 7296 §3.8, RFC 7427) as tshark shows them.
const (
	authRSA      = "1"
	authECDSA256 = "9"
	authDigital  = "14"
)

// certSetup describes the certificates and signature settings of a pair.
type certSetup struct {
	// interKind, ikedKey and charonKey are key kinds (pkiKey).
	interKind, ikedKey, charonKey string
	// ikedSignature is iked's auth.signature (empty: auto).
	ikedSignature string
	// charonSettings are extra strongswan.conf lines (rsa_pss = yes,
	// signature_authentication = no).
	charonSettings []string
	// charonDN: charon has no local id and so uses its certificate's
	// subject DN (strongSwan's default); iked's remote_id is that DN.
	charonDN bool
	// charonID overrides the ID charon claims (local id) and iked's
	// remote_id, keeping the certificate's names.
	charonID string
	// charonExpired issues charon's certificate expired yesterday.
	charonExpired bool
	// charonUntrusted issues charon's certificate from another PKI that
	// iked does not trust.
	charonUntrusted bool
	// revokeCharon gives iked a CRL of the intermediate revoking charon's
	// certificate.
	revokeCharon bool
	// validity of the CAs and end-entity certificates from now; zero: ten
	// years for the CAs, one for the end entities.
	validity time.Duration
}

// certMaterial is what newCertPair made, for the test's assertions.
type certMaterial struct {
	pki, otherPKI          *testPKI
	ikedCert, charonCert   *x509.Certificate
	ikedKey, charonKey     crypto.Signer
	ikedFiles, charonFiles map[string][]byte
}

// certKeyLabel keeps one key per kind and role for the whole package run.
func certKeyLabel(role string) string { return "interop-" + role }

// newCertMaterial makes the PKI, the certificates and both peers' files
// as s describes, and iked's auth settings.
func newCertMaterial(t *testing.T, s certSetup) (*certMaterial, *ikedCertAuth) {
	t.Helper()
	if s.interKind == "" {
		s.interKind = "p256"
	}
	m := &certMaterial{pki: newTestPKI(t, "Interop "+strings.ToUpper(s.interKind), s.interKind, s.validity)}
	m.ikedKey = pkiKey(t, s.ikedKey, certKeyLabel("iked"))
	m.charonKey = pkiKey(t, s.charonKey, certKeyLabel("charon"))
	host := func(id string) string { return strings.TrimPrefix(id, "fqdn:") }
	var notAfter time.Time
	if s.validity != 0 {
		notAfter = time.Now().Add(s.validity)
	}
	m.ikedCert = m.pki.issue(t, m.ikedKey, leafSpec{cn: host(ikedID), dns: []string{host(ikedID)}, notAfter: notAfter})
	charonIssuer := m.pki
	if s.charonUntrusted {
		m.otherPKI = newTestPKI(t, "Untrusted", "p256", 0)
		charonIssuer = m.otherPKI
	}
	cs := leafSpec{cn: host(charonID), dns: []string{host(charonID)}, notAfter: notAfter}
	if s.charonExpired {
		cs.notBefore, cs.notAfter = time.Now().Add(-30*24*time.Hour), time.Now().Add(-24*time.Hour)
	}
	m.charonCert = charonIssuer.issue(t, m.charonKey, cs)

	m.ikedFiles = map[string][]byte{
		"cert.pem": certPEM(m.ikedCert), "key.pem": keyPEM(t, m.ikedKey),
		"root.pem": certPEM(m.pki.root), "inter.pem": certPEM(m.pki.inter),
	}
	auth := &ikedCertAuth{Cert: "cert.pem", Key: "key.pem", CA: []string{"root.pem"}, Intermediates: []string{"inter.pem"}, Signature: s.ikedSignature}
	if s.revokeCharon {
		m.ikedFiles["crl.pem"] = m.pki.crl(t, m.charonCert.SerialNumber)
		auth.CRLs = []string{"crl.pem"}
	}
	m.charonFiles = map[string][]byte{
		"x509/charon.pem": certPEM(m.charonCert), "x509/inter.pem": certPEM(charonIssuer.inter),
		"x509ca/root.pem": certPEM(m.pki.root), "private/charon.key": keyPEM(t, m.charonKey),
	}
	if s.charonUntrusted {
		// charon trusts its own root too, so that its own chain is
		// complete; only iked lacks it.
		m.charonFiles["x509ca/other-root.pem"] = certPEM(m.otherPKI.root)
	}
	return m, auth
}

// certCharonConn turns charon's connection into a certificate one: local
// { auth = pubkey, certs = charon.pem }, remote { auth = pubkey, cacerts =
// root.pem }, no PSK.
func certCharonConn(cc *charonConn) {
	cc.PSK = ""
	cc.LocalAuth, cc.RemoteAuth = "pubkey", "pubkey"
	cc.LocalCerts, cc.RemoteCACerts = []string{"charon.pem"}, []string{"root.pem"}
}

// newCertPair is newPairOpts with certificate authentication set up as
// s describes; edit and opts adjust further.
func newCertPair(t *testing.T, s certSetup, edit func(*ikedConn, *charonConn), opts func(*ikedOptions, *charonOptions)) (*pair, *certMaterial) {
	t.Helper()
	requireCharon(t)
	m, auth := newCertMaterial(t, s)
	p := newPairOpts(t, func(ic *ikedConn, cc *charonConn) {
		ic.PSK, ic.Cert = "", auth
		certCharonConn(cc)
		switch {
		case s.charonDN:
			cc.LocalID = ""
			ic.RemoteID = "dn:" + dnOf(m.charonCert)
		case s.charonID != "":
			cc.LocalID, ic.RemoteID = s.charonID, s.charonID
		}
		if edit != nil {
			edit(ic, cc)
		}
	}, func(io *ikedOptions, co *charonOptions) {
		io.Files, co.Files = m.ikedFiles, m.charonFiles
		co.Settings = append(co.Settings, s.charonSettings...)
		if opts != nil {
			opts(io, co)
		}
	})
	return p, m
}

// authMethods returns the AUTH method each side sent in IKE_AUTH, read
// from the decrypted capture: iked's and charon's.
func authMethods(t *testing.T, p *pair, frames []ikeFrame) (iked, charon string) {
	t.Helper()
	for _, f := range frames {
		if f.Exchange != "IKE_AUTH" || f.AuthMethod == "" {
			continue
		}
		if f.Src == p.topo.IkedAddr.String() {
			iked = f.AuthMethod
		} else {
			charon = f.AuthMethod
		}
	}
	return iked, charon
}

// certCase is one key type and signature scheme combination.
type certCase struct {
	name  string
	setup certSetup
	// wantIkedAuth and wantCharonAuth are the AUTH methods on the wire.
	wantIkedAuth, wantCharonAuth string
	// charonVerified is the scheme charon logs for iked's AUTH
	// ("authentication of 'iked.example' with <scheme> successful"),
	// charonSigned the one it logs for its own ("(myself) with ...").
	charonVerified, charonSigned string
}

var certCases = []certCase{
	{
		// Both sides use RSA Digital Signature (1), PKCS#1 v1.5 with
		// SHA-1: iked by configuration, charon because RFC 7427 is off.
		name:         "rsa2048-rsa",
		setup:        certSetup{ikedKey: "rsa2048", charonKey: "rsa2048", ikedSignature: "rsa", charonSettings: []string{"signature_authentication = no"}},
		wantIkedAuth: authRSA, wantCharonAuth: authRSA,
		charonVerified: "RSA signature", charonSigned: "RSA signature",
	},
	{
		// RSASSA-PSS in Digital Signature (14) both ways: iked with
		// signature: pss, charon with rsa_pss = yes.
		name:         "rsa2048-pss",
		setup:        certSetup{ikedKey: "rsa2048", charonKey: "rsa2048", ikedSignature: "pss", charonSettings: []string{"rsa_pss = yes"}},
		wantIkedAuth: authDigital, wantCharonAuth: authDigital,
		charonVerified: "RSA_EMSA_PSS_SHA2_256_SALT_32", charonSigned: "RSA_EMSA_PSS_SHA2_256_SALT_32",
	},
	{
		// iked signs with ECDSA (9, P-256/SHA-256), charon with
		// Digital Signature (14) and ECDSA-SHA256.
		name:         "ecdsa-p256",
		setup:        certSetup{ikedKey: "p256", charonKey: "p256", ikedSignature: "ecdsa"},
		wantIkedAuth: authECDSA256, wantCharonAuth: authDigital,
		charonVerified: "ECDSA-256 signature", charonSigned: "ECDSA_WITH_SHA256_DER",
	},
	{
		name:         "ecdsa-p384",
		setup:        certSetup{ikedKey: "p384", charonKey: "p384"},
		wantIkedAuth: authDigital, wantCharonAuth: authDigital,
		charonVerified: "ECDSA_WITH_SHA384_DER", charonSigned: "ECDSA_WITH_SHA384_DER",
	},
	{
		name:         "ed25519",
		setup:        certSetup{ikedKey: "ed25519", charonKey: "ed25519"},
		wantIkedAuth: authDigital, wantCharonAuth: authDigital,
		charonVerified: "ED25519", charonSigned: "ED25519",
	},
	{
		// charon sends its subject DN as ID (no local id), iked expects
		// it as remote_id "dn:C=CH, O=iked interop, CN=charon.example".
		name:         "ecdsa-p256-charon-dn",
		setup:        certSetup{ikedKey: "p256", charonKey: "p256", charonDN: true},
		wantIkedAuth: authDigital, wantCharonAuth: authDigital,
		charonVerified: "ECDSA_WITH_SHA256_DER", charonSigned: "ECDSA_WITH_SHA256_DER",
	},
}

const (
	certIKE = "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519"
	certESP = "AES_GCM_16-256/NO_EXT_SEQ"
)

// TestCerts establishes certificate-authenticated SAs in both directions
// for each key type and signature scheme: charon ESTABLISHED/INSTALLED,
// iked the same SPIs and algorithms with auth "cert", the AUTH methods on
// the wire and in charon's log as expected, the keys proven on the wire.
func TestCerts(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			for _, cc := range certCases {
				t.Run(cc.name, func(t *testing.T) {
					p, m := newCertPair(t, cc.setup, nil, nil)
					establish(t, p, dir.charonInitiates)
					is, cs := checkEstablished(t, p, dir.charonInitiates, certIKE, certESP)
					if is.Auth != "cert" {
						t.Errorf("iked reports auth %q, want cert", is.Auth)
					}
					charonSelf := idValue(p.ic.RemoteID)
					log := p.charon.Log()
					wantLog(t, "charon", log, "authentication of '"+idValue(ikedID)+"' with "+cc.charonVerified+" successful")
					wantLog(t, "charon", log, "authentication of '"+charonSelf+"' (myself) with "+cc.charonSigned+" successful")
					if cc.setup.charonDN && cs.LocalID != dnOf(m.charonCert) {
						t.Errorf("charon's local ID %q, want its subject %q", cs.LocalID, dnOf(m.charonCert))
					}
					terminate(t, p, dir.charonInitiates)
					proof := checkWireDecrypts(t, p.cap, p.iked)
					ia, ca := authMethods(t, p, proof.Frames)
					if ia != cc.wantIkedAuth || ca != cc.wantCharonAuth {
						t.Errorf("AUTH methods on the wire: iked %q, charon %q; want %q and %q\n%s",
							ia, ca, cc.wantIkedAuth, cc.wantCharonAuth, describeFrames(proof.Frames))
					}
					checkCertPayloads(t, p, m, proof.Frames)
				})
			}
		})
	}
}

// spkiHash is the CERTREQ entry of a CA certificate: the SHA-1 hash of
// its SubjectPublicKeyInfo (RFC 7296 §3.7), in hex.
func spkiHash(c *x509.Certificate) string {
	h := sha1.Sum(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(h[:])
}

// checkCertPayloads asserts the CERT and CERTREQ payloads of IKE_AUTH:
// the initiator's request carries a CERTREQ naming the root CA; each
// message with AUTH carries CERT payloads; iked sends its end-entity
// certificate and, as docs/certificates.md says, the intermediate unless
// charon's CERTREQ names the intermediate itself (charon's IKE_SA_INIT
// response lists every CA it holds, root and intermediate; its IKE_AUTH
// request only the remote's cacerts, the root).
func checkCertPayloads(t *testing.T, p *pair, m *certMaterial, frames []ikeFrame) {
	t.Helper()
	iked := p.topo.IkedAddr.String()
	root, inter := spkiHash(m.pki.root), spkiHash(m.pki.inter)
	interRequested := false
	for _, f := range frames {
		fromIked := f.Src == iked
		if !fromIked && slices.Contains(f.CertReqCAs, inter) {
			interRequested = true
		}
		if f.Exchange != "IKE_AUTH" || f.AuthMethod == "" {
			continue
		}
		certs := 0
		for _, x := range f.Inner {
			if x == "37" {
				certs++
			}
		}
		want := 2
		if interRequested {
			want = 1
		}
		switch {
		case fromIked && certs != want:
			t.Errorf("%s from iked carries %d CERT payloads, want %d (end entity, intermediate unless requested: %v): %v", f, certs, want, interRequested, f.Inner)
		case !fromIked && certs < 1:
			t.Errorf("%s from charon carries no CERT payload: %v", f, f.Inner)
		}
		if !f.Response && !slices.Contains(f.CertReqCAs, root) {
			t.Errorf("%s (IKE_AUTH request from %s) has no CERTREQ naming the root CA %s: %v", f, f.Src, root, f.CertReqCAs)
		}
	}
}

// TestCertFragmentation: RSA-4096 end-entity certificates and an RSA-4096
// intermediate make IKE_AUTH larger than iked's fragment_size (1232, the
// default) and charon's (1280-octet IP datagrams, its default): with
// fragmentation on both sides (iked's default, charon's fragmentation =
// yes) IKE_AUTH travels as Encrypted Fragment (SKF, type 53) payloads,
// every datagram within the sender's limit, every fragment decrypts with
// iked's key log, and the SA establishes.
func TestCertFragmentation(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			yes := true
			p, m := newCertPair(t, certSetup{interKind: "rsa4096", ikedKey: "rsa4096", charonKey: "rsa4096"},
				func(_ *ikedConn, cc *charonConn) { cc.Fragmentation = "yes" },
				func(io *ikedOptions, _ *charonOptions) { io.Fragmentation = &yes })
			establish(t, p, dir.charonInitiates)
			checkEstablished(t, p, dir.charonInitiates, certIKE, certESP)
			terminate(t, p, dir.charonInitiates)
			proof := checkWireDecrypts(t, p.cap, p.iked)
			checkFragments(t, p, proof.Frames)
			// tshark reassembled the decrypted fragments: the AUTH
			// payloads (RSASSA-PSS in 14 from both) are inside.
			if ia, ca := authMethods(t, p, proof.Frames); ia != authDigital || ca != authDigital {
				t.Errorf("AUTH methods in the reassembled IKE_AUTH messages: iked %q, charon %q, want 14 and 14\n%s", ia, ca, describeFrames(proof.Frames))
			}
			checkCertPayloads(t, p, m, proof.Frames)
		})
	}
}

// Datagram limits (UDP payload, with the non-ESP marker): iked's
// ike.fragment_size default, and charon's fragment_size default of 1280
// octets of IP datagram less the IPv4 and UDP headers.
const (
	ikedFragmentSize   = 1232
	charonFragmentSize = 1280 - 20 - 8
)

// checkFragments asserts that IKE_AUTH went as SKF fragments from both
// sides, each within its sender's limit, and that every fragment and
// every other datagram fits.
func checkFragments(t *testing.T, p *pair, frames []ikeFrame) {
	t.Helper()
	iked := p.topo.IkedAddr.String()
	skf := map[bool]int{}
	for _, f := range frames {
		fromIked := f.Src == iked
		limit := charonFragmentSize
		if fromIked {
			limit = ikedFragmentSize
		}
		if len(f.Payload) > limit {
			t.Errorf("%s from %s is %d octets of UDP payload, more than %d", f, f.Src, len(f.Payload), limit)
		}
		if f.Exchange == "IKE_AUTH" {
			if slices.Contains(f.Payloads, "46") {
				t.Errorf("%s from %s went unfragmented (SK, %d octets)", f, f.Src, len(f.Payload))
			}
			if slices.Contains(f.Payloads, "53") {
				skf[fromIked]++
			}
		}
	}
	if skf[true] < 2 || skf[false] < 2 {
		t.Fatalf("IKE_AUTH as SKF fragments: %d datagrams from iked, %d from charon; want at least 2 each\n%s",
			skf[true], skf[false], describeFrames(frames))
	}
	t.Logf("IKE_AUTH fragments: %d datagrams from iked (<= %d octets), %d from charon (<= %d)", skf[true], ikedFragmentSize, skf[false], charonFragmentSize)
}

// certRefusal is a certificate iked must refuse.
type certRefusal struct {
	name  string
	setup certSetup
	// ikedSays is what iked's "IKE_AUTH failed" line must contain.
	ikedSays func(m *certMaterial) string
}

var certRefusals = []certRefusal{
	{
		name:     "expired",
		setup:    certSetup{charonExpired: true},
		ikedSays: func(m *certMaterial) string { return "expired at " + m.charonCert.NotAfter.UTC().Format(time.RFC3339) },
	},
	{
		name:     "untrusted-ca",
		setup:    certSetup{charonUntrusted: true},
		ikedSays: func(*certMaterial) string { return "is not issued by a trusted CA" },
	},
	{
		name:     "id-not-in-cert",
		setup:    certSetup{charonID: "fqdn:other.example"},
		ikedSays: func(*certMaterial) string { return "peer identity fqdn:other.example is not in certificate" },
	},
	{
		name:     "revoked",
		setup:    certSetup{revokeCharon: true},
		ikedSays: func(*certMaterial) string { return "is revoked since" },
	},
}

// TestCertRefused: charon initiates with a certificate iked must refuse.
// iked logs why ("IKE_AUTH failed" with the reason) and answers
// AUTHENTICATION_FAILED, charon logs that it received it, no SA remains,
// and the IKE_AUTH exchange decrypts with iked's key log.
func TestCertRefused(t *testing.T) {
	for _, rc := range certRefusals {
		t.Run(rc.name, func(t *testing.T) {
			s := rc.setup
			s.ikedKey, s.charonKey = "p256", "p256"
			p, m := newCertPair(t, s, nil, func(io *ikedOptions, _ *charonOptions) { io.Metrics = true })
			if out, err := p.charon.Initiate(childName, connName); err == nil {
				t.Fatalf("charon initiate succeeded with a certificate iked must refuse:\n%s", out)
			}
			line := wantLog(t, "iked", p.iked.Log(), "IKE_AUTH failed", rc.ikedSays(m))
			t.Logf("iked: %s", line)
			wantLog(t, "charon", p.charon.Log(), "received AUTHENTICATION_FAILED notify error")
			wantMetric(t, p.iked, "iked_notifies_sent_total", `type="AUTHENTICATION_FAILED"`, 1)
			wantMetric(t, p.iked, "iked_handshakes_failed_total", `reason="authentication_failed"`, 1)
			waitGone(t, p)
			proof := checkWireDecrypts(t, p.cap, p.iked)
			resps := distinct(framesOf(proof.Frames, "IKE_AUTH", true))
			if len(resps) != 1 || !slices.Contains(resps[0].Notifies, notifyAuthFailed) || slices.Contains(resps[0].Inner, "39") {
				t.Fatalf("want one IKE_AUTH response carrying N(AUTHENTICATION_FAILED) and no AUTH; captured:\n%s", describeFrames(proof.Frames))
			}
		})
	}
}

// TestCertConfigRendering checks the certificate settings the harness
// writes for iked and charon.
func TestCertConfigRendering(t *testing.T) {
	yes := true
	y := ikedConfig("/d/s", "/d/k", ikedOptions{Listen: []string{"10.99.1.1:500"}, Fragmentation: &yes, FragmentSize: 1232, Conns: []ikedConn{{
		Name: "c", Local: "10.99.1.1", Remote: "10.99.1.2", RemoteID: "dn:C=CH, O=iked interop, CN=charon.example",
		Cert: &ikedCertAuth{Cert: "cert.pem", Key: "key.pem", CA: []string{"root.pem"}, Intermediates: []string{"inter.pem"}, CRLs: []string{"crl.pem"}, Signature: "pss"},
	}}})
	for _, want := range []string{
		`auth: {method: cert, cert: "cert.pem", key: "key.pem", ca: ["root.pem"], intermediates: ["inter.pem"], crls: ["crl.pem"], signature: pss}`,
		"fragmentation: true, fragment_size: 1232}", `remote_id: "dn:C=CH, O=iked interop, CN=charon.example"`,
	} {
		if !strings.Contains(y, want) {
			t.Errorf("iked config lacks %q:\n%s", want, y)
		}
	}
	if strings.Contains(y, "psk") {
		t.Errorf("cert connection renders a PSK:\n%s", y)
	}
	cc := charonConn{Name: "c", Child: "net", LocalAddr: "10.99.1.2", RemoteAddr: "10.99.1.1", RemoteID: ikedID, Fragmentation: "yes"}
	certCharonConn(&cc)
	sw := swanctlConf([]charonConn{cc})
	for _, want := range []string{"local {\n\t\t\tauth = pubkey\n\t\t\tcerts = charon.pem\n\t\t}", "remote {\n\t\t\tauth = pubkey\n\t\t\tid = \"fqdn:iked.example\"\n\t\t\tcacerts = root.pem\n",
		"fragmentation = yes"} {
		if !strings.Contains(sw, want) {
			t.Errorf("swanctl.conf lacks %q:\n%s", want, sw)
		}
	}
	if strings.Contains(sw, "secret =") {
		t.Errorf("swanctl.conf has a secret for a cert connection:\n%s", sw)
	}
	ss := strongswanConf("/d", charonOptions{Log: defaultCharonLog, Settings: []string{"rsa_pss = yes"}})
	if !strings.Contains(ss, "\trsa_pss = yes\n\tfilelog {") {
		t.Errorf("strongswan.conf lacks the extra setting:\n%s", ss)
	}
}
