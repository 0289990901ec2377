package cert

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/internal/enginetest"
	"github.com/iked/iked/internal/testpki"
)

// certPair issues certificates for a.example and b.example with keys of
// the given kinds from one PKI and returns both sides' files.
func certPair(t testing.TB, p *testpki.PKI, kindA, kindB string) (*side, *side) {
	t.Helper()
	ka, kb := testpki.Key(t, kindA, ""), testpki.Key(t, kindB, "")
	la := p.Issue(t, ka, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"}})
	lb := p.Issue(t, kb, testpki.Leaf{CN: "b.example", DNS: []string{"b.example"}})
	return writeSide(t, p, p, ka, la), writeSide(t, p, p, kb, lb)
}

// recorder notes the scheme each side signed with.
type recorder struct {
	mu      sync.Mutex
	schemes map[bool]Scheme // by initiator
}

func (r *recorder) hook(initiator bool, s Scheme) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.schemes == nil {
		r.schemes = map[bool]Scheme{}
	}
	r.schemes[initiator] = s
}

func (r *recorder) get(initiator bool) Scheme {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.schemes[initiator]
}

// establish runs one handshake and checks that both sides have an
// established IKE SA with one Child SA.
func establish(t *testing.T, p *enginetest.Pair) {
	t.Helper()
	infos, err := p.A.InitiateNew(enginetest.Context(t), "a-b")
	if err != nil {
		t.Fatalf("initiate: %v\ninitiator log:\n%s\nresponder log:\n%s", err, p.LogA, p.LogB)
	}
	ia := infos[0]
	if ia.State != "established" || len(ia.Children) != 1 || ia.Auth != "cert" {
		t.Fatalf("initiator: state %s, %d children, auth %s", ia.State, len(ia.Children), ia.Auth)
	}
	sas := p.B.SAs()
	if len(sas) != 1 || sas[0].State != "established" || len(sas[0].Children) != 1 {
		t.Fatalf("responder SAs: %+v", sas)
	}
	if ia.RemoteID != "fqdn:b.example" || sas[0].RemoteID != "fqdn:a.example" {
		t.Fatalf("identities: initiator sees %s, responder sees %s", ia.RemoteID, sas[0].RemoteID)
	}
}

func TestHandshakes(t *testing.T) {
	p := testpki.New(t, "hs", "p256", 0)
	cases := []struct {
		name         string
		kindA, kindB string
		sigA, sigB   string
		wantA, wantB string // Scheme.String of the initiator's and responder's AUTH
	}{
		{"rsa2048/method1", "rsa2048", "rsa2048", SignatureRSA, SignatureRSA, "rsa-signature(1)/rsa-pkcs1-sha1", "rsa-signature(1)/rsa-pkcs1-sha1"},
		{"rsa2048/pss", "rsa2048", "rsa2048", "", SignaturePSS, "digital-signature(14)/rsa-pss-sha256", "digital-signature(14)/rsa-pss-sha256"},
		{"rsa2048/pkcs1-digital", "rsa2048", "rsa2048", SignatureDigital, SignatureDigital, "digital-signature(14)/rsa-pkcs1-sha256", "digital-signature(14)/rsa-pkcs1-sha256"},
		{"p256/method9", "p256", "p256", SignatureECDSA, SignatureECDSA, "ecdsa(9)/ecdsa-sha256", "ecdsa(9)/ecdsa-sha256"},
		{"p384/method10", "p384", "p384", SignatureECDSA, SignatureECDSA, "ecdsa(10)/ecdsa-sha384", "ecdsa(10)/ecdsa-sha384"},
		{"p521/method11", "p521", "p521", SignatureECDSA, SignatureECDSA, "ecdsa(11)/ecdsa-sha512", "ecdsa(11)/ecdsa-sha512"},
		{"p256/digital", "p256", "p256", "", "", "digital-signature(14)/ecdsa-sha256", "digital-signature(14)/ecdsa-sha256"},
		{"p384/digital", "p384", "p384", SignatureDigital, "", "digital-signature(14)/ecdsa-sha384", "digital-signature(14)/ecdsa-sha384"},
		{"ed25519", "ed25519", "ed25519", SignatureEd25519, "", "digital-signature(14)/ed25519", "digital-signature(14)/ed25519"},
		{"mixed/ed25519-rsa", "ed25519", "rsa2048", "", SignatureRSA, "digital-signature(14)/ed25519", "rsa-signature(1)/rsa-pkcs1-sha1"},
		{"rsa4096/pss", "rsa4096", "rsa4096", "", "", "digital-signature(14)/rsa-pss-sha256", "digital-signature(14)/rsa-pss-sha256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sa, sb := certPair(t, p, c.kindA, c.kindB)
			sa.opts.Signature, sb.opts.Signature = c.sigA, c.sigB
			ma, mb := sa.method(t), sb.method(t)
			var rec recorder
			ma.onProve, mb.onProve = rec.hook, rec.hook
			pr := newPair(t, ma, mb, enginetest.FQDN("a.example"), enginetest.FQDN("b.example"), slog.LevelInfo)
			establish(t, pr)
			if got := rec.get(true).String(); got != c.wantA {
				t.Errorf("initiator signed with %s, want %s", got, c.wantA)
			}
			if got := rec.get(false).String(); got != c.wantB {
				t.Errorf("responder signed with %s, want %s", got, c.wantB)
			}
		})
	}
}

// TestHandshakeDNAndIPIdentities binds DN and IP identities.
func TestHandshakeDNAndIPIdentities(t *testing.T) {
	p := testpki.New(t, "ids", "p256", 0)
	ka, kb := testpki.Key(t, "p256", ""), testpki.Key(t, "p256", "b")
	la := p.Issue(t, ka, testpki.Leaf{CN: "a.example"})
	lb := p.Issue(t, kb, testpki.Leaf{CN: "b.example", IPs: []net.IP{enginetest.AddrB.Addr().AsSlice()}})
	sa, sb := writeSide(t, p, p, ka, la), writeSide(t, p, p, kb, lb)
	ma, mb := sa.method(t), sb.method(t)
	idA := ma.ProvenIdentity()
	if idA.IDType != wire.IDDERASN1DN {
		t.Fatalf("default identity of a certificate with a subject: type %d", idA.IDType)
	}
	pr := newPair(t, ma, mb, ike.IdentityFromPayload(idA), ike.IdentityFromPayload(&wire.ID{IDType: wire.IDIPv4Addr, Data: enginetest.AddrB.Addr().AsSlice()}), slog.LevelInfo)
	if _, err := pr.A.InitiateNew(enginetest.Context(t), "a-b"); err != nil {
		t.Fatalf("initiate: %v\n%s\n%s", err, pr.LogA, pr.LogB)
	}
}

// refusal runs a handshake that must fail and returns the initiator's
// error and both logs.
func refusal(t *testing.T, pr *enginetest.Pair) (string, error) {
	t.Helper()
	_, err := pr.A.InitiateNew(enginetest.Context(t), "a-b")
	if err == nil {
		t.Fatal("handshake succeeded, want a refusal")
	}
	return pr.LogA.String() + pr.LogB.String(), err
}

// wantResponderRefusal checks that B answered A's IKE_AUTH with
// AUTHENTICATION_FAILED and logged reason.
func wantResponderRefusal(t *testing.T, pr *enginetest.Pair, reason string) {
	t.Helper()
	logs, err := refusal(t, pr)
	if !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Errorf("initiator error %q, want AUTHENTICATION_FAILED", err)
	}
	if !strings.Contains(pr.LogB.String(), reason) {
		t.Errorf("responder log lacks %q:\n%s", reason, logs)
	}
	if n := len(pr.B.SAs()); n != 0 {
		waitFor(t, "responder to drop the SA", func() bool { return len(pr.B.SAs()) == 0 })
	}
}

// wantInitiatorRefusal checks that A refused B's AUTH with reason.
func wantInitiatorRefusal(t *testing.T, pr *enginetest.Pair, reason string) {
	t.Helper()
	logs, err := refusal(t, pr)
	var f *auth.Failure
	if !errors.As(err, &f) || !strings.Contains(f.Reason, reason) {
		t.Errorf("initiator error %v, want an auth failure with %q\n%s", err, reason, logs)
	}
}

func TestRefusals(t *testing.T) {
	p := testpki.New(t, "ref", "p256", 0)
	other := testpki.New(t, "other", "p256", 0)
	ka, kb := testpki.Key(t, "p256", ""), testpki.Key(t, "p256", "b")
	goodA := p.Issue(t, ka, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"}})
	goodB := p.Issue(t, kb, testpki.Leaf{CN: "b.example", DNS: []string{"b.example"}})

	t.Run("expired/initiator", func(t *testing.T) {
		la := p.Issue(t, ka, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"},
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
		sa, sb := writeSide(t, p, p, ka, la), writeSide(t, p, p, kb, goodB)
		pr := newPair(t, sa.method(t), sb.method(t), enginetest.FQDN("a.example"), enginetest.FQDN("b.example"), slog.LevelInfo)
		wantResponderRefusal(t, pr, `certificate \"CN=a.example,O=iked interop,C=CH\" expired at`)
	})
	t.Run("expired/responder", func(t *testing.T) {
		lb := p.Issue(t, kb, testpki.Leaf{CN: "b.example", DNS: []string{"b.example"},
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
		sa, sb := writeSide(t, p, p, ka, goodA), writeSide(t, p, p, kb, lb)
		pr := newPair(t, sa.method(t), sb.method(t), enginetest.FQDN("a.example"), enginetest.FQDN("b.example"), slog.LevelInfo)
		wantInitiatorRefusal(t, pr, `certificate "CN=b.example,O=iked interop,C=CH" expired at`)
	})
	t.Run("untrusted-ca", func(t *testing.T) {
		la := other.Issue(t, ka, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"}})
		sa, sb := writeSide(t, other, p, ka, la), writeSide(t, p, p, kb, goodB)
		pr := newPair(t, sa.method(t), sb.method(t), enginetest.FQDN("a.example"), enginetest.FQDN("b.example"), slog.LevelInfo)
		wantResponderRefusal(t, pr, `is not issued by a trusted CA`)
	})
	t.Run("id-not-in-cert/responder-sends", func(t *testing.T) {
		// B is configured to claim c.example, which its certificate does
		// not hold: B refuses to sign that ID and answers
		// AUTHENTICATION_FAILED.
		sa, sb := writeSide(t, p, p, ka, goodA), writeSide(t, p, p, kb, goodB)
		pr := newPair(t, sa.method(t), sb.method(t), enginetest.FQDN("a.example"), enginetest.FQDN("c.example"), slog.LevelInfo)
		wantResponderRefusal(t, pr, `local identity fqdn:c.example is not in certificate`)
	})
	t.Run("id-not-in-cert/initiator-sends", func(t *testing.T) {
		// A's own ID is checked before it signs.
		sa, sb := writeSide(t, p, p, ka, goodA), writeSide(t, p, p, kb, goodB)
		pr := newPair(t, sa.method(t), sb.method(t), enginetest.FQDN("c.example"), enginetest.FQDN("b.example"), slog.LevelInfo)
		_, err := refusal(t, pr)
		if !strings.Contains(err.Error(), "local identity fqdn:c.example is not in certificate") {
			t.Errorf("initiator error %v", err)
		}
	})
	t.Run("id-not-in-cert/verify", func(t *testing.T) {
		// The responder side of the binding, without the initiator's own
		// check: a session verifying an IDi its certificate lacks.
		sa, sb := writeSide(t, p, p, ka, goodA), writeSide(t, p, p, kb, goodB)
		ma, mb := sa.method(t), sb.method(t)
		init, _ := ma.NewSession(&auth.Params{Initiator: true})
		resp, _ := mb.NewSession(&auth.Params{PeerInit: init.SAInitPayloads()})
		octets := []byte("initiator signed octets")
		proof, err := init.Prove(octets, resp.SAInitPayloads())
		if err != nil {
			t.Fatal(err)
		}
		peer := append([]wire.Payload{&wire.ID{IDType: wire.IDFQDN, Data: []byte("c.example")}}, proof...)
		err = resp.Verify(octets, peer)
		var f *auth.Failure
		if !errors.As(err, &f) || !strings.Contains(f.Reason, "identity fqdn:c.example is not in certificate") {
			t.Fatalf("verify: %v", err)
		}
		peer[0] = &wire.ID{IDType: wire.IDFQDN, Data: []byte("A.Example")}
		if err := resp.Verify(octets, peer); err != nil {
			t.Fatalf("verify with the certificate's name: %v", err)
		}
	})
	t.Run("wrong-key", func(t *testing.T) {
		sa, sb := writeSide(t, p, p, ka, goodA), writeSide(t, p, p, kb, goodB)
		ma := sa.method(t)
		ma.key = PrivateKey{signer: testpki.Key(t, "p256", "intruder")} // signs with a key the certificate does not hold
		pr := newPair(t, ma, sb.method(t), enginetest.FQDN("a.example"), enginetest.FQDN("b.example"), slog.LevelInfo)
		wantResponderRefusal(t, pr, "signature does not verify with the certificate's key")
	})
	t.Run("eku", func(t *testing.T) {
		la := p.Issue(t, ka, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"}, EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})
		sa, sb := writeSide(t, p, p, ka, goodA), writeSide(t, p, p, kb, goodB)
		if _, err := FromOptions(Options{Cert: "bad.pem", Key: "key.pem", CA: []string{"ca.pem"}}, writeCert(t, sa.dir, "bad.pem", la)); err == nil ||
			!strings.Contains(err.Error(), "extendedKeyUsage") {
			t.Fatalf("own certificate without an IKE EKU loaded: %v", err)
		}
		// Our own check refuses such a certificate at load; swap it in
		// afterwards to see the peer refuse it.
		ma := sa.method(t)
		ma.leaf, ma.chain[0] = la, la
		pr := newPair(t, ma, sb.method(t), enginetest.FQDN("a.example"), enginetest.FQDN("b.example"), slog.LevelInfo)
		wantResponderRefusal(t, pr, "extendedKeyUsage without serverAuth, clientAuth, ipsecIKE or anyExtendedKeyUsage")
	})
}

func TestRevocationAndReload(t *testing.T) {
	p := testpki.New(t, "crl", "p256", 0)
	ka, kb := testpki.Key(t, "p256", ""), testpki.Key(t, "p256", "b")
	la := p.Issue(t, ka, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"}})
	lb := p.Issue(t, kb, testpki.Leaf{CN: "b.example", DNS: []string{"b.example"}})
	sa, sb := writeSide(t, p, p, ka, la), writeSide(t, p, p, kb, lb)
	crlPath := filepath.Join(sb.dir, "inter.crl")
	writeFile(t, crlPath, p.CRL(t, big.NewInt(99999)), 0o644) // revokes someone else
	sb.opts.CRLs = []string{"inter.crl"}
	ma, mb := sa.method(t), sb.method(t)
	pr := newPair(t, ma, mb, enginetest.FQDN("a.example"), enginetest.FQDN("b.example"), slog.LevelInfo)
	establish(t, pr)
	if _, err := pr.A.Terminate(enginetest.Context(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "responder to delete", func() bool { return len(pr.B.SAs()) == 0 })

	// The CA revokes A; B picks up the new CRL without a restart.
	writeFile(t, crlPath, p.CRL(t, big.NewInt(99999), la.SerialNumber), 0o644)
	wantResponderRefusal(t, pr, fmt.Sprintf(`certificate \"CN=a.example,O=iked interop,C=CH\" (serial %s) is revoked since`, hexSerial(la.SerialNumber)))
	if !strings.Contains(pr.LogB.String(), "keyCompromise") {
		t.Errorf("revocation reason not logged:\n%s", pr.LogB)
	}

	// And it takes it back.
	writeFile(t, crlPath, p.CRL(t), 0o644)
	pr2 := newPair(t, ma, mb, enginetest.FQDN("a.example"), enginetest.FQDN("b.example"), slog.LevelInfo)
	establish(t, pr2)
}

func writeCert(t testing.TB, dir, name string, c *x509.Certificate) string {
	t.Helper()
	writeFile(t, filepath.Join(dir, name), testpki.CertPEM(c), 0o644)
	return dir
}
