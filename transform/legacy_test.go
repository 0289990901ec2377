package transform

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
)

func TestParseIKEv1Proposal(t *testing.T) {
	p, err := ParseIKEv1Proposal("3des-sha1-modp1024")
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != "3DES/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024" {
		t.Errorf("String() = %q", p.String())
	}
	if got := p.LegacyAlgorithms(); !slices.Equal(got, []string{"3DES", "HMAC_SHA1_96", "PRF_HMAC_SHA1", "MODP_1024"}) {
		t.Errorf("LegacyAlgorithms() = %v", got)
	}
	p, err = ParseIKEv1Proposal("aes256-aes128-sha384-sha256-ecp384-modp2048")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.PRF, []uint16{PRFHMACSHA2_384, PRFHMACSHA2_256}) || len(p.LegacyAlgorithms()) != 0 {
		t.Errorf("PRF %v, legacy %v", p.PRF, p.LegacyAlgorithms())
	}
	e, err := ParseIKEv1ESPProposal("aes128-sha256-modp2048")
	if err != nil || !slices.Equal(e.DH, []uint16{DHModp2048}) {
		t.Fatalf("%v %v", e, err)
	}
	for in, want := range map[string]string{
		"aes256gcm16-sha256-modp2048": `"aes256gcm16" is not available in IKEv1`,
		"aes256-prfsha256-modp2048":   `"prfsha256" is not available`,
		"aes256-sha256-x25519":        `"x25519" is not available`,
		"aes256-sha256":               "no Diffie-Hellman",
	} {
		if _, err := ParseIKEv1Proposal(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
	if _, err := ParseIKEv1ESPProposal("aes256-sha256-esn"); err == nil {
		t.Error("esn accepted in an IKEv1 ESP proposal")
	}
}

// TestDES3 checks 3DES-EDE against the first of NIST SP 800-67's
// example (keys K1 K2 K3, plaintext "The qufc", checked with OpenSSL's
// des-ede3 as well) and the CBC round trip.
func TestDES3(t *testing.T) {
	key, _ := hex.DecodeString("0123456789abcdef23456789abcdef01456789abcdef0123")
	b, err := EncrByID(EncrDES3).NewBlock(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 8)
	b.Encrypt(out, []byte("The qufc"))
	if want := "a826fd8ce53b855f"; hex.EncodeToString(out) != want {
		t.Errorf("3DES(The qufc) = %x, want %s", out, want)
	}
	if _, err := EncrByID(EncrDES3).NewBlock(key[:16]); err == nil {
		t.Error("16-octet 3DES key accepted")
	}
	if _, err := EncrByID(EncrAESGCM16).NewBlock(key[:16]); err == nil {
		t.Error("GCM as a CBC block accepted")
	}
	a, err := EncrByID(EncrAESCBC).NewBlock(key[:16])
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, 16)
	plain := bytes.Repeat([]byte("0123456789abcdef"), 3)
	ct := make([]byte, len(plain))
	cipher.NewCBCEncrypter(a, iv).CryptBlocks(ct, plain)
	back := make([]byte, len(ct))
	cipher.NewCBCDecrypter(a, iv).CryptBlocks(back, ct)
	if !bytes.Equal(back, plain) {
		t.Error("AES-CBC round trip")
	}
}

// TestHMACSHA1 checks PRF_HMAC_SHA1 against RFC 2202 test case 2.
func TestHMACSHA1(t *testing.T) {
	got := PRFByID(PRFHMACSHA1).Sum(nil, []byte("Jefe"), []byte("what do ya want for nothing?"))
	if want := "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"; hex.EncodeToString(got) != want {
		t.Errorf("HMAC-SHA1 = %x, want %s", got, want)
	}
	if i := IntegByID(IntegHMACSHA1_96); i.KeyLen != 20 || i.ICVLen != 12 {
		t.Errorf("HMAC_SHA1_96 %+v", i)
	}
	if h := PRFByID(PRFHMACSHA1).NewHash(); h.Size() != 20 {
		t.Error("NewHash of SHA-1")
	}
}

func TestMODP1024(t *testing.T) {
	g := GroupByID(DHModp1024)
	if g.PublicLen() != 128 || g.Name() != "MODP_1024" {
		t.Fatalf("%s %d", g.Name(), g.PublicLen())
	}
	a, err := g.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	za, err := a.SharedSecret(b.Public())
	if err != nil {
		t.Fatal(err)
	}
	zb, err := b.SharedSecret(a.Public())
	if err != nil || !bytes.Equal(za, zb) || len(za) != 128 {
		t.Fatalf("shared secrets differ or wrong length: %v", err)
	}
	if _, err := a.SharedSecret(bytes.Repeat([]byte{0xff}, 128)); err == nil {
		t.Error("out-of-range public value accepted")
	}
}
