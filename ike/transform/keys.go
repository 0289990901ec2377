package transform

// IKEKeys are the keys of an IKE SA (RFC 7296 §2.14). SkAi/SkAr are empty
// for AEAD encryption; SkEi/SkEr include the salt for AEAD encryption.
type IKEKeys struct {
	SkD, SkAi, SkAr, SkEi, SkEr, SkPi, SkPr []byte
}

// Wipe overwrites every key with zeros.
func (k *IKEKeys) Wipe() { panic("unimplemented") }

// SKEYSEED computes prf(Ni | Nr, g^ir) (§2.14). For the PRFs iked implements
// (HMAC), the nonces are used whole as the key.
func SKEYSEED(prf *PRF, ni, nr, sharedSecret []byte) []byte { panic("unimplemented") }

// DeriveIKEKeys computes {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
// = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (§2.14). encKeyLen is the
// Encr.KeyMaterialLen; integ is nil for AEAD ciphers.
func DeriveIKEKeys(prf *PRF, skeyseed, ni, nr []byte, spii, spir uint64, encKeyLen int, integ *Integ) (*IKEKeys, error) {
	panic("unimplemented")
}

// ChildKeys are the keys of a Child SA (§2.17) for one direction each:
// "i" is initiator to responder, "r" responder to initiator. Encryption keys
// include the salt for AEAD ciphers.
type ChildKeys struct {
	EncI, IntegI, EncR, IntegR []byte
}

// Wipe overwrites every key with zeros.
func (k *ChildKeys) Wipe() { panic("unimplemented") }

// DeriveChildKeys computes KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) and
// splits it in the order of §2.17: initiator-to-responder encryption then
// integrity, then responder-to-initiator. sharedSecret is nil without PFS.
func DeriveChildKeys(prf *PRF, skd, sharedSecret, ni, nr []byte, encKeyLen, integKeyLen int) (*ChildKeys, error) {
	panic("unimplemented")
}
