package interop

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// RSA certificates against charon's signature constraints (swanctl's
// auth = pubkey-sha256, rsa/pss-sha256, pubkey) with strongSwan's default
// rsa_pss = no. RFC 7427 does not negotiate the RSA padding, so iked's
// default signature: auto signs PKCS#1 v1.5 with SHA-2, which all of
// them accept; rsa/pss-sha256 leaves iked no choice but signature: pss.
// charon applies a constraint without the ike: prefix to the certificate
// chain too, so the PKI of each case is all RSA, signed as strongSwan's
// pki signs for such a set-up: PKCS#1 v1.5 with SHA-256, or RSASSA-PSS
// (pki --rsa-padding pss) for rsa/pss-sha256.

// constraintCase is one charon constraint and what both sides sign with.
type constraintCase struct {
	name string
	// charonAuth is the auth of both of charon's rounds: what it signs
	// with (local) and what it accepts from iked (remote).
	charonAuth string
	// ikedSignature is iked's auth.signature; empty: auto.
	ikedSignature string
	// charonVerified and charonSigned are the schemes charon logs for
	// iked's AUTH and its own.
	charonVerified, charonSigned string
	// sigAlg signs the certificates of the all-RSA PKI.
	sigAlg x509.SignatureAlgorithm
}

var constraintCases = []constraintCase{
	{"pubkey-sha256", "pubkey-sha256", "", "RSA_EMSA_PKCS1_SHA2_256", "RSA_EMSA_PKCS1_SHA2_256", x509.SHA256WithRSA},
	{"rsa-pss-sha256", "rsa/pss-sha256", "pss", "RSA_EMSA_PSS_SHA2_256_SALT_32", "RSA_EMSA_PSS_SHA2_256_SALT_32", x509.SHA256WithRSAPSS},
	{"default", "pubkey", "", "RSA_EMSA_PKCS1_SHA2_256", "RSA_EMSA_PKCS1_SHA2_256", x509.SHA256WithRSA},
}

// setup is the case's certificates and iked's signature.
func (cc constraintCase) setup() certSetup {
	return certSetup{interKind: "rsa2048", ikedKey: "rsa2048", charonKey: "rsa2048", ikedSignature: cc.ikedSignature, rsaPKI: true, sigAlg: cc.sigAlg}
}

// TestCertConstraints establishes RSA-2048 certificate SAs under each of
// charon's constraints, both directions: charon logs the scheme it
// verified iked's AUTH with and the one it signed with, both AUTH payloads
// are Digital Signature (14), and the keys are proven on the wire.
func TestCertConstraints(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			for _, cc := range constraintCases {
				t.Run(cc.name, func(t *testing.T) {
					p, m := newCertPair(t, cc.setup(),
						func(_ *ikedConn, c *charonConn) { c.LocalAuth, c.RemoteAuth = cc.charonAuth, cc.charonAuth }, nil)
					establish(t, p, dir.charonInitiates)
					checkEstablished(t, p, dir.charonInitiates, certIKE, certESP)
					log := p.charon.Log()
					wantLog(t, "charon", log, "authentication of '"+idValue(ikedID)+"' with "+cc.charonVerified+" successful")
					wantLog(t, "charon", log, "authentication of '"+idValue(charonID)+"' (myself) with "+cc.charonSigned+" successful")
					terminate(t, p, dir.charonInitiates)
					proof := checkWireDecrypts(t, p.cap, p.iked)
					if ia, ca := authMethods(t, p, proof.Frames); ia != authDigital || ca != authDigital {
						t.Errorf("AUTH methods on the wire: iked %q, charon %q; want 14 and 14", ia, ca)
					}
					checkCertPayloads(t, p, m, proof.Frames)
				})
			}
		})
	}
}

// refusedSignatureCases are iked signatures charon's constraint refuses;
// charonVerified is the scheme charon then calls "not acceptable".
var refusedSignatureCases = []constraintCase{
	// The interop gap of issue 17: PSS towards pubkey-sha256 with
	// rsa_pss = no.
	{name: "pss-vs-pubkey-sha256", charonAuth: "pubkey-sha256", ikedSignature: "pss", sigAlg: x509.SHA256WithRSA, charonVerified: "RSA_EMSA_PSS"},
	// And the other way: auto (PKCS#1 v1.5) towards a PSS constraint.
	{name: "auto-vs-rsa-pss-sha256", charonAuth: "rsa/pss-sha256", sigAlg: x509.SHA256WithRSAPSS, charonVerified: "RSA_EMSA_PKCS1_SHA2_256"},
}

// TestAuthFailedAfterIKEAuth: charon initiates and refuses iked's AUTH by
// its signature constraint after IKE_AUTH, telling iked in an
// INFORMATIONAL with N(AUTHENTICATION_FAILED) (RFC 7296 §2.21.2). iked,
// which as responder had established the IKE SA and installed its Child
// SA, removes both at once: no liveness check of its own in between, a
// WARN line naming the notify and the Child SA it removed, the notify and
// the failure counted.
func TestAuthFailedAfterIKEAuth(t *testing.T) {
	for _, cc := range refusedSignatureCases {
		t.Run(cc.name, func(t *testing.T) {
			p, _ := newCertPair(t, cc.setup(),
				func(_ *ikedConn, c *charonConn) { c.LocalAuth, c.RemoteAuth = cc.charonAuth, cc.charonAuth },
				func(io *ikedOptions, _ *charonOptions) { io.Metrics = true })
			if out, err := p.charon.Initiate(childName, connName); err == nil {
				t.Fatalf("charon accepted iked's AUTH:\n%s", out)
			}
			wantLog(t, "charon", p.charon.Log(), "IKE signature scheme "+cc.charonVerified+" not acceptable")
			wantLog(t, "charon", p.charon.Log(), "selected peer config 'interop' unacceptable: constraint checking failed")
			wantLog(t, "charon", p.charon.Log(), "generating INFORMATIONAL request", "N(AUTH_FAILED)")
			// A hang guard: iked's DPD (30 s) and charon's
			// retransmissions are far beyond it, and the log below
			// says what removed the SA.
			waitFor(t, 10*time.Second, func() string {
				if sas, err := p.iked.SAs(); err != nil || len(sas) != 0 {
					return "iked still lists SAs"
				}
				return ""
			})
			log := p.iked.Log()
			line := wantLog(t, "iked", log, "peer refused our authentication")
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			if rec["level"] != "WARN" || rec["notify"] != "AUTHENTICATION_FAILED" || rec["child_sas"] != float64(1) || rec["role"] != "responder" {
				t.Errorf("iked's line %s: want WARN, AUTHENTICATION_FAILED, one Child SA, responder", line)
			}
			wantLog(t, "iked", log, "CHILD SA removed")
			wantLog(t, "iked", log, "IKE SA deleted", "peer refused our authentication (AUTHENTICATION_FAILED)")
			wantMetric(t, p.iked, "iked_notifies_received_total", `type="AUTHENTICATION_FAILED"`, 1)
			wantMetric(t, p.iked, "iked_handshakes_failed_total", `reason="authentication_failed"`, 1)
			if m, err := p.iked.Metrics(); err != nil {
				t.Fatal(err)
			} else if v, ok := metricValue(m, "iked_child_sas", ""); !ok || v != 0 {
				t.Errorf("iked_child_sas = %v (present %v), want 0", v, ok)
			}
			if csas := p.charon.mustListSAs(); len(csas) != 0 {
				t.Errorf("charon lists %+v", csas)
			}

			// On the wire: charon's INFORMATIONAL request carries
			// AUTHENTICATION_FAILED (24) and iked answered it; iked sent
			// no request of its own after IKE_AUTH (no DPD took it down).
			proof := checkWireDecrypts(t, p.cap, p.iked)
			iked := p.topo.IkedAddr.String()
			var refusal, answer bool
			for _, f := range proof.Frames {
				switch {
				case f.Exchange == exchangeInformatio && !f.Response && f.Src != iked && slices.Contains(f.Notifies, notifyAuthFailed):
					refusal = true
				case f.Exchange == exchangeInformatio && f.Response && f.Src == iked:
					answer = true
				case f.Src == iked && !f.Response && f.Exchange != exchangeIKESAInit && f.Exchange != exchangeIKEAuth:
					t.Errorf("iked sent a request of its own: %s", f)
				}
			}
			if !refusal || !answer {
				t.Errorf("want charon's INFORMATIONAL with N(AUTHENTICATION_FAILED) and iked's answer:\n%s", describeFrames(proof.Frames))
			}
			if s := strings.Join(logLines(log, `"level":"ERROR"`), "\n"); s != "" {
				t.Errorf("iked logged errors:\n%s", s)
			}
		})
	}
}

// TestAuthFailedIkedIked: the same with iked as the peer that refuses. A
// initiates and does not trust B's certificate (another PKI), B trusts
// A's: B establishes and installs its Child SA, A refuses B's AUTH and
// says so in an INFORMATIONAL (RFC 7296 §2.21.2, ike's refuseAnswer), and
// B removes its IKE SA and Child SA at once, logged at WARN and counted.
func TestAuthFailedIkedIked(t *testing.T) {
	requireRoot(t)
	requireTools(t, "tcpdump", "tshark")
	topo := newTopology(t)
	capt := startCaptureFilter(t, topo.S, "veth-s", "")
	pkiA, pkiB := newTestPKI(t, "Interop A", "p256", 0), newTestPKI(t, "Interop B", "p256", 0)
	ka, kb := pkiKey(t, "p256", certKeyLabel("iked-a")), pkiKey(t, "p256", certKeyLabel("iked-b"))
	host := func(id string) string { return strings.TrimPrefix(id, "fqdn:") }
	certA := pkiA.issue(t, ka, leafSpec{cn: host(ikedAID), dns: []string{host(ikedAID)}})
	certB := pkiB.issue(t, kb, leafSpec{cn: host(ikedBID), dns: []string{host(ikedBID)}})
	auth := &ikedCertAuth{Cert: "cert.pem", Key: "key.pem", CA: []string{"root.pem"}, Intermediates: []string{"inter.pem"}}
	aAddr, bAddr := topo.IkedAddr.String(), topo.CharonAddr.String()
	a := startIked(t, topo.I, ikedOptions{
		Listen: []string{aAddr + ":500", aAddr + ":4500"}, Metrics: true,
		Conns: []ikedConn{{Name: connName, Local: aAddr, Remote: bAddr, LocalID: ikedAID, RemoteID: ikedBID, Cert: auth,
			LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}}},
		// A trusts only its own PKI.
		Files: map[string][]byte{"cert.pem": certPEM(certA), "key.pem": keyPEM(t, ka), "root.pem": certPEM(pkiA.root), "inter.pem": certPEM(pkiA.inter)},
	})
	b := startIked(t, topo.S, ikedOptions{
		Listen: []string{bAddr + ":500", bAddr + ":4500"}, Metrics: true,
		Conns: []ikedConn{{Name: connName, Local: bAddr, Remote: aAddr, LocalID: ikedBID, RemoteID: ikedAID, Cert: auth,
			LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}},
		// B trusts A's root and sends its own chain.
		Files: map[string][]byte{"cert.pem": certPEM(certB), "key.pem": keyPEM(t, kb), "root.pem": certPEM(pkiA.root), "inter.pem": certPEM(pkiB.inter)},
	})
	t.Cleanup(func() {
		if t.Failed() || verbose() {
			t.Logf("capture on veth-s:\n%s", capt.Summary(a.KeyLogPrefs()))
		}
	})
	out, err := a.Initiate(connName)
	if err == nil || !strings.Contains(err.Error(), "not issued by a trusted CA") {
		t.Fatalf("A's initiation: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, func() string {
		if sas, err := b.SAs(); err != nil || len(sas) != 0 {
			return fmt.Sprintf("B lists %+v (%v)", sas, err)
		}
		return ""
	})
	line := wantLog(t, "iked B", b.Log(), "peer refused our authentication")
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["level"] != "WARN" || rec["child_sas"] != float64(1) || rec["role"] != "responder" {
		t.Errorf("B's line %s: want WARN, one Child SA, responder", line)
	}
	wantLog(t, "iked B", b.Log(), "CHILD SA removed")
	wantMetric(t, b, "iked_notifies_received_total", `type="AUTHENTICATION_FAILED"`, 1)
	wantMetric(t, b, "iked_handshakes_failed_total", `reason="authentication_failed"`, 1)
	wantMetric(t, a, "iked_notifies_sent_total", `type="AUTHENTICATION_FAILED"`, 1)
	if sas, err := a.SAs(); err != nil || len(sas) != 0 {
		t.Errorf("A lists %+v (%v)", sas, err)
	}
	proof := checkWireDecrypts(t, capt, a)
	refusal := false
	for _, f := range proof.Frames {
		if f.Exchange == exchangeInformatio && !f.Response && f.Src == aAddr && slices.Contains(f.Notifies, notifyAuthFailed) {
			refusal = true
		}
	}
	if !refusal {
		t.Errorf("no INFORMATIONAL with N(AUTHENTICATION_FAILED) from A:\n%s", describeFrames(proof.Frames))
	}
}
