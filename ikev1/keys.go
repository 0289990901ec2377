package ikev1

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/iked/iked/transform"
)

// keys are an ISAKMP SA's keys (RFC 2409 §5): SKEYID_d for Quick Mode's
// KEYMAT, SKEYID_a for the HASH payloads of phase 2 and Informational
// exchanges, and the encryption key made from SKEYID_e.
type keys struct {
	skeyid   []byte // kept until messages 5 and 6 are hashed, then wiped
	d, a     []byte
	encKey   []byte
	phase1IV []byte // the IV chain of Main Mode, then its last block
}

func (k *keys) wipe() {
	for _, b := range [][]byte{k.skeyid, k.d, k.a, k.encKey} {
		clear(b)
	}
}

// deriveKeys computes SKEYID_d, SKEYID_a and SKEYID_e from SKEYID (§5):
//
//	SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
//	SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
//	SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
//
// and from SKEYID_e the encryption key of encKeyLen octets (Appendix B:
// when SKEYID_e is shorter, it is expanded as K1 | K2 | ... with
// K1 = prf(SKEYID_e, 0) and Ki = prf(SKEYID_e, Ki-1)).
func deriveKeys(prf *transform.PRF, skeyid, gxy []byte, icky, rcky uint64, encKeyLen int) (*keys, error) {
	if encKeyLen <= 0 {
		return nil, errors.New("ikev1: no encryption key length")
	}
	var cookies [16]byte
	binary.BigEndian.PutUint64(cookies[:8], icky)
	binary.BigEndian.PutUint64(cookies[8:], rcky)
	k := &keys{skeyid: slices.Clone(skeyid)}
	k.d = prf.Sum(nil, skeyid, slices.Concat(gxy, cookies[:], []byte{0}))
	k.a = prf.Sum(nil, skeyid, slices.Concat(k.d, gxy, cookies[:], []byte{1}))
	e := prf.Sum(nil, skeyid, slices.Concat(k.a, gxy, cookies[:], []byte{2}))
	defer clear(e)
	if len(e) >= encKeyLen {
		k.encKey = slices.Clone(e[:encKeyLen])
		return k, nil
	}
	out := make([]byte, 0, encKeyLen+prf.Size)
	prev := []byte{0}
	for len(out) < encKeyLen {
		prev = prf.Sum(nil, e, prev)
		out = append(out, prev...)
	}
	clear(out[encKeyLen:])
	k.encKey = out[:encKeyLen:encKeyLen]
	return k, nil
}

// skeyidPSK is SKEYID for pre-shared keys: prf(pre-shared-key, Ni_b | Nr_b).
func skeyidPSK(prf *transform.PRF, psk, ni, nr []byte) []byte {
	return prf.Sum(nil, psk, slices.Concat(ni, nr))
}

// skeyidSig is SKEYID for signatures (and GSS-API): prf(Ni_b | Nr_b, g^xy).
func skeyidSig(prf *transform.PRF, ni, nr, gxy []byte) []byte {
	key := slices.Concat(ni, nr)
	defer clear(key)
	return prf.Sum(nil, key, gxy)
}

// phase1Hash is HASH_I (initiator true) or HASH_R (§5):
//
//	HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
//	HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
//
// gxOwn is the public value of the side the hash is for.
func phase1Hash(prf *transform.PRF, skeyid, gxOwn, gxOther []byte, ckyOwn, ckyOther uint64, saiB, idB []byte) []byte {
	var c [16]byte
	binary.BigEndian.PutUint64(c[:8], ckyOwn)
	binary.BigEndian.PutUint64(c[8:], ckyOther)
	return prf.Sum(nil, skeyid, slices.Concat(gxOwn, gxOther, c[:], saiB, idB))
}

// initialIV is Main Mode's first IV (Appendix B): hash(g^xi | g^xr),
// truncated to the cipher's block.
func initialIV(prf *transform.PRF, gxi, gxr []byte, block int) []byte {
	h := prf.NewHash()
	h.Write(gxi)
	h.Write(gxr)
	return h.Sum(nil)[:block]
}

// phase2IV is the first IV of a Quick Mode or Informational exchange
// (Appendix B): hash(last phase 1 CBC block | M-ID), truncated.
func phase2IV(prf *transform.PRF, phase1Last []byte, mid uint32, block int) []byte {
	h := prf.NewHash()
	h.Write(phase1Last)
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], mid)
	h.Write(m[:])
	return h.Sum(nil)[:block]
}

// quickHash1 is HASH(1) (and an Informational exchange's HASH):
// prf(SKEYID_a, M-ID | the message after the HASH payload).
func quickHash1(prf *transform.PRF, skeyidA []byte, mid uint32, rest []byte) []byte {
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], mid)
	return prf.Sum(nil, skeyidA, slices.Concat(m[:], rest))
}

// quickHash2 is HASH(2): prf(SKEYID_a, M-ID | Ni_b | the message after HASH).
func quickHash2(prf *transform.PRF, skeyidA []byte, mid uint32, ni, rest []byte) []byte {
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], mid)
	return prf.Sum(nil, skeyidA, slices.Concat(m[:], ni, rest))
}

// quickHash3 is HASH(3): prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
func quickHash3(prf *transform.PRF, skeyidA []byte, mid uint32, ni, nr []byte) []byte {
	var m [5]byte
	binary.BigEndian.PutUint32(m[1:], mid)
	return prf.Sum(nil, skeyidA, slices.Concat(m[:], ni, nr))
}

// keymat is the keying material of one IPsec SA (§5.5), n octets:
//
//	KEYMAT = K1 | K2 | ...
//	K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
//	Ki = prf(SKEYID_d, Ki-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
//
// spi is the SPI of the SA at its destination.
func keymat(prf *transform.PRF, skeyidD, gqmxy []byte, protocol uint8, spi uint32, ni, nr []byte, n int) []byte {
	var s [5]byte
	s[0] = protocol
	binary.BigEndian.PutUint32(s[1:], spi)
	seed := slices.Concat(gqmxy, s[:], ni, nr)
	defer clear(seed)
	out := make([]byte, 0, n+prf.Size)
	var prev []byte
	for len(out) < n {
		prev = prf.Sum(nil, skeyidD, slices.Concat(prev, seed))
		out = append(out, prev...)
	}
	clear(out[n:])
	return out[:n:n]
}
