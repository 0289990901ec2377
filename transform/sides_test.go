package transform

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// TestIKEKeysProtectors: what the initiator's protectors seal, the
// responder's open, in both directions; and each side's outbound protector
// uses its own keys (SK_ei for the initiator, SK_er for the responder), so
// that a side cannot open what it sealed itself.
func TestIKEKeysProtectors(t *testing.T) {
	for _, c := range []struct {
		name  string
		encr  uint16
		bits  uint16
		integ *Integ
	}{
		{"aes256gcm16", EncrAESGCM16, 256, nil},
		{"aes256-sha256", EncrAESCBC, 256, IntegByID(IntegHMACSHA2_256_128)},
	} {
		t.Run(c.name, func(t *testing.T) {
			prf, encr := PRFByID(PRFHMACSHA2_256), EncrByID(c.encr)
			keys, err := DeriveIKEKeys(prf, []byte("skeyseed"), []byte("ni"), []byte("nr"), 1, 2, encr.KeyMaterialLen(c.bits), c.integ)
			if err != nil {
				t.Fatal(err)
			}
			iOut, iIn, err := keys.Protectors(encr, c.integ, true)
			if err != nil {
				t.Fatal(err)
			}
			rOut, rIn, err := keys.Protectors(encr, c.integ, false)
			if err != nil {
				t.Fatal(err)
			}
			aad := []byte("header and SK payload header")
			for _, d := range []struct {
				name              string
				seal, open, wrong *Protector
			}{{"initiator to responder", iOut, rIn, iIn}, {"responder to initiator", rOut, iIn, rIn}} {
				msg, err := d.seal.Seal(bytes.Clone(aad), []byte("inner payloads"), nil)
				if err != nil {
					t.Fatal(err)
				}
				plain, err := d.open.Open(aad, msg[len(aad):])
				if err != nil || string(plain) != "inner payloads" {
					t.Errorf("%s: opened %q, %v", d.name, plain, err)
				}
				if _, err := d.wrong.Open(aad, msg[len(aad):]); err == nil {
					t.Errorf("%s: the sender's own inbound protector opened it", d.name)
				}
			}
		})
	}
}

// TestSignedOctets checks §2.15's octets against HMAC-SHA-256 written out:
// RealMessage | Nonce | prf(SK_p, RestOfIDPayload).
func TestSignedOctets(t *testing.T) {
	prf := PRFByID(PRFHMACSHA2_256)
	msg, nonce, skp, id := []byte("IKE_SA_INIT request"), []byte("responder's nonce"), []byte("SK_pi"), []byte{2, 0, 0, 0, 'a'}
	m := hmac.New(sha256.New, skp)
	m.Write(id)
	want := append(append(bytes.Clone(msg), nonce...), m.Sum(nil)...)
	checkBytes(t, "signed octets", SignedOctets(prf, msg, nonce, skp, id), want)
}
