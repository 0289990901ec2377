package ike

import (
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// deriveKeys computes the IKE SA's keys from g^ir (§2.14) and sets up the
// SK protectors for both directions. Caller holds mu; ni, nr and the SPIs
// are set.
func (sa *ikeSA) deriveKeys(shared []byte) error {
	skeyseed := transform.SKEYSEED(sa.suite.prf, sa.ni, sa.nr, shared)
	wipe(shared)
	return sa.keysFrom(skeyseed)
}

// keysFrom derives {SK_d | SK_ai | … | SK_pr} = prf+(SKEYSEED, Ni | Nr |
// SPIi | SPIr) (§2.14) and sets up the SK protectors for both directions;
// it wipes skeyseed. Caller holds mu.
func (sa *ikeSA) keysFrom(skeyseed []byte) error {
	s := sa.suite
	keys, err := transform.DeriveIKEKeys(s.prf, skeyseed, sa.ni, sa.nr, sa.spii, sa.spir, s.encr.KeyMaterialLen(s.keyBits), s.integ)
	wipe(skeyseed)
	if err != nil {
		return err
	}
	sa.keys = keys
	if sa.out, sa.in, err = keys.Protectors(s.encr, s.integ, sa.initiator); err != nil {
		return err
	}
	sa.eng.keyLog.ike(sa)
	return nil
}

// signedOctets returns the octets the AUTH payload of the initiator
// (forInitiator) or responder covers (§2.15):
// RealMessage | Nonce of the other side | prf(SK_p, RestOfIDPayload).
func (sa *ikeSA) signedOctets(forInitiator bool, id *wire.ID) []byte {
	msg, nonce, skp := sa.msgI, sa.nr, sa.keys.SkPi
	if !forInitiator {
		msg, nonce, skp = sa.msgR, sa.ni, sa.keys.SkPr
	}
	out := transform.SignedOctets(sa.suite.prf, msg, nonce, skp, id.AppendBody(nil))
	// RFC 9242 §3.3.2: after IKE_INTERMEDIATE exchanges, their IntAuth.
	return sa.intAuthOctets(out)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
