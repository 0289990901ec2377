package transform

import (
	"bytes"
	"crypto/mlkem"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// TestMLKEMExchange runs both sides of each ML-KEM exchange as IKEv2 uses
// them (initiator: GenerateKey, Public, SharedSecret; responder: Respond)
// and checks the sizes of draft-ietf-ipsecme-ikev2-mlkem's table 1.
func TestMLKEMExchange(t *testing.T) {
	for _, tc := range []struct {
		id       uint16
		name     string
		ek, ct   int
		pq       bool
		response int
	}{
		{DHMLKEM768, "ML_KEM_768", 1184, 1088, true, 1088},
		{DHMLKEM1024, "ML_KEM_1024", 1568, 1568, true, 1568},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := GroupByID(tc.id)
			if g == nil || g.Name() != tc.name || g.ID() != tc.id {
				t.Fatalf("GroupByID(%d) = %v", tc.id, g)
			}
			if !IsPostQuantum(tc.id) {
				t.Error("not post-quantum")
			}
			if g.PublicLen() != tc.ek || ResponseLen(g) != tc.ct {
				t.Errorf("lengths %d/%d, want %d/%d", g.PublicLen(), ResponseLen(g), tc.ek, tc.ct)
			}
			priv, err := g.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if len(priv.Public()) != tc.ek {
				t.Fatalf("encapsulation key of %d octets", len(priv.Public()))
			}
			ct, sr, err := Respond(g, rand.Reader, priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			if len(ct) != tc.ct || len(sr) != 32 {
				t.Fatalf("ciphertext %d octets, secret %d", len(ct), len(sr))
			}
			si, err := priv.SharedSecret(ct)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(si, sr) {
				t.Fatal("the two sides' secrets differ")
			}
			// Keys are never reused: a second decapsulation is refused.
			if _, err := priv.SharedSecret(ct); !errors.Is(err, errKEMKeyUsed) {
				t.Errorf("second decapsulation: %v, want errKEMKeyUsed", err)
			}
			// Each encapsulation is fresh.
			ct2, sr2, err := Respond(g, rand.Reader, priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(ct, ct2) || bytes.Equal(sr, sr2) {
				t.Error("two encapsulations gave the same ciphertext or secret")
			}
		})
	}
}

// TestMLKEMInputChecks: the responder rejects an encapsulation key of the
// wrong length or with a coefficient not below the modulus (FIPS 203 §7.2);
// the initiator rejects a ciphertext of the wrong length (§7.3). A
// ciphertext of the right length that was tampered with decapsulates to
// another secret (implicit rejection), which AUTH then catches.
func TestMLKEMInputChecks(t *testing.T) {
	g := GroupByID(DHMLKEM768)
	priv, err := g.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ek := priv.Public()
	// The first coefficient is 12 bits little-endian in octets 0 and 1:
	// 0xfff is above q = 3329.
	bad := bytes.Clone(ek)
	bad[0], bad[1] = 0xff, bad[1]|0x0f
	for name, v := range map[string][]byte{"short": ek[:len(ek)-1], "long": append(bytes.Clone(ek), 0), "modulus": bad, "empty": nil} {
		if _, _, err := Respond(g, nil, v); !errors.Is(err, ErrKEMEncapsulationKey) {
			t.Errorf("%s encapsulation key: %v, want ErrKEMEncapsulationKey", name, err)
		}
	}
	ct, sr, err := Respond(g, nil, ek)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string][]byte{"short": ct[:len(ct)-1], "long": append(bytes.Clone(ct), 0)} {
		p, _ := g.GenerateKey(nil)
		if _, err := p.SharedSecret(v); !errors.Is(err, ErrKEMCiphertext) {
			t.Errorf("%s ciphertext: %v, want ErrKEMCiphertext", name, err)
		}
	}
	tampered := bytes.Clone(ct)
	tampered[10] ^= 1
	si, err := priv.SharedSecret(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(si, sr) {
		t.Error("a tampered ciphertext decapsulated to the right secret")
	}
}

// TestRespondDH: for a Diffie-Hellman group Respond is a fresh key pair
// and g^ir, the same as the initiator computes.
func TestRespondDH(t *testing.T) {
	g := GroupByID(DHCurve25519)
	priv, err := g.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, sr, err := Respond(g, rand.Reader, priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	si, err := priv.SharedSecret(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(si, sr) || ResponseLen(g) != 32 || IsPostQuantum(DHCurve25519) {
		t.Error("Curve25519 through Respond")
	}
	if _, _, err := Respond(g, rand.Reader, make([]byte, 32)); err == nil {
		t.Error("an all-zero Curve25519 value was accepted")
	}
}

// The sizes this package states agree with crypto/mlkem's.
func TestMLKEMSizes(t *testing.T) {
	if mlkem768.ekLen != mlkem.EncapsulationKeySize768 || mlkem1024.ctLen != mlkem.CiphertextSize1024 {
		t.Fatal("sizes")
	}
}

func BenchmarkMLKEM768(b *testing.B) {
	g := GroupByID(DHMLKEM768)
	for b.Loop() {
		priv, _ := g.GenerateKey(nil)
		ct, _, err := Respond(g, nil, priv.Public())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := priv.SharedSecret(ct); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRekeySKEYSEED: RFC 9370's SKEYSEED from an earlier SK_d puts the
// first secret before the nonces and the additional ones after them; with
// one secret it is RFC 7296 §2.18's prf(SK_d, g^ir | Ni | Nr).
func TestRekeySKEYSEED(t *testing.T) {
	prf := PRFByID(PRFHMACSHA2_256)
	skd, ni, nr := []byte("sk_d-of-the-old-sa"), []byte("nonce-i-nonce-i-"), []byte("nonce-r-nonce-r-")
	s0, s1, s2 := []byte("secret-0"), []byte("secret-1"), []byte("secret-2")
	one := prf.Sum(nil, skd, append(append(append([]byte(nil), s0...), ni...), nr...))
	if got := RekeySKEYSEED(prf, skd, [][]byte{s0}, ni, nr); !bytes.Equal(got, one) {
		t.Fatalf("one secret: %x, want %x", got, one)
	}
	var data []byte
	for _, b := range [][]byte{s0, ni, nr, s1, s2} {
		data = append(data, b...)
	}
	if got, want := RekeySKEYSEED(prf, skd, [][]byte{s0, s1, s2}, ni, nr), prf.Sum(nil, skd, data); !bytes.Equal(got, want) {
		t.Fatalf("three secrets: %x, want %x", got, want)
	}
	// KEYMAT with additional secrets: prf+(SK_d, SK(0) | Ni | Nr | SK(1)).
	k, err := DeriveChildKeys(prf, skd, s0, ni, nr, 36, 0, s1)
	if err != nil {
		t.Fatal(err)
	}
	seed := append(append(append(append([]byte(nil), s0...), ni...), nr...), s1...)
	km, _ := prf.Plus(skd, seed, 72)
	if !bytes.Equal(k.EncI, km[:36]) || !bytes.Equal(k.EncR, km[36:]) {
		t.Fatal("KEYMAT with an additional secret")
	}
}

// TestPQNotInIKEv1: ML-KEM and additional key exchanges are IKEv2 only;
// IKEv1's legacy groups are no additional key exchange.
func TestPQNotInIKEv1(t *testing.T) {
	for _, tc := range []struct {
		parse func(string) (Proposal, error)
		in    string
		want  string
	}{
		{ParseIKEv1Proposal, "aes256-sha256-modp2048-ke1_mlkem768", "IKEv2 only"},
		{ParseIKEv1ESPProposal, "aes256-sha256-modp2048-ke1_mlkem768", "IKEv2 only"},
		{ParseIKEv1Proposal, "aes256-sha256-mlkem768", `"mlkem768" is not available in IKEv1`},
		{ParseIKEProposal, "aes256-sha256-x25519-ke1_modp1024", `unknown key exchange method "modp1024"`},
	} {
		if _, err := tc.parse(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}
