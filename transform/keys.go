package transform

import (
	"encoding/binary"
	"errors"
	"slices"
)

// IKEKeys are the keys of an IKE SA (RFC 7296 §2.14). SkAi/SkAr are empty
// for AEAD encryption; SkEi/SkEr include the salt for AEAD encryption.
type IKEKeys struct {
	SkD, SkAi, SkAr, SkEi, SkEr, SkPi, SkPr []byte
}

// Wipe overwrites every key with zeros.
func (k *IKEKeys) Wipe() {
	for _, b := range [][]byte{k.SkD, k.SkAi, k.SkAr, k.SkEi, k.SkEr, k.SkPi, k.SkPr} {
		clear(b)
	}
}

// SKEYSEED computes prf(Ni | Nr, g^ir) (§2.14). For the PRFs iked implements
// (HMAC), the nonces are used whole as the key.
func SKEYSEED(prf *PRF, ni, nr, sharedSecret []byte) []byte {
	key := slices.Concat(ni, nr)
	defer clear(key)
	return prf.Sum(nil, key, sharedSecret)
}

// RekeySKEYSEED computes the SKEYSEED of keys derived from an earlier SA's
// SK_d: prf(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)), where SK(0) is
// the shared secret of the exchange's first key exchange and SK(1)...
// those of the additional ones (RFC 9370 §2.2.4; RFC 7296 §2.18 with one
// secret). It is also the key update after each IKE_INTERMEDIATE key
// exchange, SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr) (RFC 9370
// §2.2.2), with the SA's own SK_d and that exchange's secret alone.
func RekeySKEYSEED(prf *PRF, skd []byte, secrets [][]byte, ni, nr []byte) []byte {
	var data []byte
	if len(secrets) > 0 {
		data = append(data, secrets[0]...)
	}
	data = append(append(data, ni...), nr...)
	for _, s := range secrets[min(1, len(secrets)):] {
		data = append(data, s...)
	}
	defer clear(data)
	return prf.Sum(nil, skd, data)
}

// DeriveIKEKeys computes {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
// = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (§2.14). encKeyLen is the
// Encr.KeyMaterialLen; integ is nil for AEAD ciphers.
func DeriveIKEKeys(prf *PRF, skeyseed, ni, nr []byte, spii, spir uint64, encKeyLen int, integ *Integ) (*IKEKeys, error) {
	if encKeyLen <= 0 {
		return nil, errors.New("transform: IKE SA needs an encryption key length")
	}
	integLen := 0
	if integ != nil {
		integLen = integ.KeyLen
	}
	seed := make([]byte, 0, len(ni)+len(nr)+16)
	seed = append(seed, ni...)
	seed = append(seed, nr...)
	seed = binary.BigEndian.AppendUint64(seed, spii)
	seed = binary.BigEndian.AppendUint64(seed, spir)
	km, err := prf.Plus(skeyseed, seed, 3*prf.Size+2*integLen+2*encKeyLen)
	if err != nil {
		return nil, err
	}
	var k IKEKeys
	s := splitter{b: km}
	k.SkD = s.next(prf.Size)
	if integ != nil {
		k.SkAi = s.next(integLen)
		k.SkAr = s.next(integLen)
	}
	k.SkEi = s.next(encKeyLen)
	k.SkEr = s.next(encKeyLen)
	k.SkPi = s.next(prf.Size)
	k.SkPr = s.next(prf.Size)
	return &k, nil
}

// Protectors makes the SK protectors of one side of the IKE SA: the
// initiator sends with SK_ei and SK_ai and receives with SK_er and SK_ar,
// the responder the other way round (§2.14).
func (k *IKEKeys) Protectors(encr *Encr, integ *Integ, initiator bool) (out, in *Protector, err error) {
	ei, ai, er, ar := k.SkEi, k.SkAi, k.SkEr, k.SkAr
	if !initiator {
		ei, ai, er, ar = er, ar, ei, ai
	}
	return NewProtectorPair(encr, integ, ei, ai, er, ar)
}

// SignedOctets returns the octets an AUTH payload covers (§2.15): the
// message the side sent (its IKE_SA_INIT request or response), the other
// side's nonce and prf(SK_p, RestOfIDPayload) with that side's SK_pi or
// SK_pr and the body of the ID payload it sends.
func SignedOctets(prf *PRF, message, peerNonce, skp, restOfID []byte) []byte {
	out := make([]byte, 0, len(message)+len(peerNonce)+prf.Size)
	out = append(out, message...)
	out = append(out, peerNonce...)
	return prf.Sum(out, skp, restOfID)
}

// splitter hands out consecutive pieces of a key stream, each capped so
// that appending to one cannot overwrite the next.
type splitter struct{ b []byte }

func (s *splitter) next(n int) []byte {
	p := s.b[:n:n]
	s.b = s.b[n:]
	return p
}

// ChildKeys are the keys of a Child SA (§2.17) for one direction each:
// "i" is initiator to responder, "r" responder to initiator. Encryption keys
// include the salt for AEAD ciphers.
type ChildKeys struct {
	EncI, IntegI, EncR, IntegR []byte
}

// Wipe overwrites every key with zeros.
func (k *ChildKeys) Wipe() {
	for _, b := range [][]byte{k.EncI, k.IntegI, k.EncR, k.IntegR} {
		clear(b)
	}
}

// DeriveChildKeys computes KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) and
// splits it in the order of §2.17: initiator-to-responder encryption then
// integrity, then responder-to-initiator. sharedSecret is nil without PFS.
// With additional key exchanges (RFC 9370 §2.2.4) their secrets follow the
// nonces: prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)).
func DeriveChildKeys(prf *PRF, skd, sharedSecret, ni, nr []byte, encKeyLen, integKeyLen int, additional ...[]byte) (*ChildKeys, error) {
	if encKeyLen <= 0 || integKeyLen < 0 {
		return nil, errors.New("transform: invalid Child SA key lengths")
	}
	seed := slices.Concat(sharedSecret, ni, nr)
	for _, a := range additional {
		seed = append(seed, a...)
	}
	defer clear(seed)
	km, err := prf.Plus(skd, seed, 2*(encKeyLen+integKeyLen))
	if err != nil {
		return nil, err
	}
	var k ChildKeys
	s := splitter{b: km}
	k.EncI = s.next(encKeyLen)
	if integKeyLen > 0 {
		k.IntegI = s.next(integKeyLen)
	}
	k.EncR = s.next(encKeyLen)
	if integKeyLen > 0 {
		k.IntegR = s.next(integKeyLen)
	}
	return &k, nil
}
