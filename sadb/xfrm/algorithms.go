package xfrm

import (
	"fmt"

	"github.com/iked/iked/transform"
)

// encrAlg is how the kernel names an IKEv2 encryption transform.
type encrAlg struct {
	name string // crypto API name, e.g. "rfc4106(gcm(aes))"
	aead bool   // XFRMA_ALG_AEAD rather than XFRMA_ALG_CRYPT
	icv  uint32 // AEAD ICV length in bits
	salt int    // octets of salt at the end of the key (part of the kernel's key)
	// keyBits lists the allowed key sizes without salt; for a transform
	// without a Key Length attribute it holds its one size.
	keyBits []uint16
	fixed   bool // the transform takes no Key Length attribute
}

// IANA IDs of transforms that ike/transform does not name.
const (
	encrNull       uint16 = 11
	encrAESCTR     uint16 = 13
	encrAESCCM8    uint16 = 14
	encrAESCCM12   uint16 = 15
	encrAESCCM16   uint16 = 16
	encrAESGCM8    uint16 = 18
	encrAESGCM12   uint16 = 19
	encrNullGMAC   uint16 = 21
	integSHA1_96   uint16 = 2
	integXCBC96    uint16 = 5
	integAESCMAC96 uint16 = 8
)

var aesSizes = []uint16{128, 192, 256}

// encrAlgs maps IKEv2 encryption transform IDs to the kernel's algorithms
// (strongSwan's kernel_netlink table, the names of RFC 4106, 4309, 4543,
// 3686, 7634 in the Linux crypto API).
var encrAlgs = map[uint16]encrAlg{
	transform.EncrAESCBC:           {name: "cbc(aes)", keyBits: aesSizes},
	transform.EncrDES3:             {name: "cbc(des3_ede)", keyBits: []uint16{192}, fixed: true}, // legacy, IKEv1 only
	encrAESCTR:                     {name: "rfc3686(ctr(aes))", salt: 4, keyBits: aesSizes},
	encrNull:                       {name: "ecb(cipher_null)", keyBits: []uint16{0}, fixed: true},
	encrAESGCM8:                    {name: "rfc4106(gcm(aes))", aead: true, icv: 64, salt: 4, keyBits: aesSizes},
	encrAESGCM12:                   {name: "rfc4106(gcm(aes))", aead: true, icv: 96, salt: 4, keyBits: aesSizes},
	transform.EncrAESGCM16:         {name: "rfc4106(gcm(aes))", aead: true, icv: 128, salt: 4, keyBits: aesSizes},
	encrAESCCM8:                    {name: "rfc4309(ccm(aes))", aead: true, icv: 64, salt: 3, keyBits: aesSizes},
	encrAESCCM12:                   {name: "rfc4309(ccm(aes))", aead: true, icv: 96, salt: 3, keyBits: aesSizes},
	encrAESCCM16:                   {name: "rfc4309(ccm(aes))", aead: true, icv: 128, salt: 3, keyBits: aesSizes},
	encrNullGMAC:                   {name: "rfc4543(gcm(aes))", aead: true, icv: 128, salt: 4, keyBits: aesSizes},
	transform.EncrChaCha20Poly1305: {name: "rfc7539esp(chacha20,poly1305)", aead: true, icv: 128, salt: 4, keyBits: []uint16{256}, fixed: true},
}

// integAlg is how the kernel names an IKEv2 integrity transform.
type integAlg struct {
	name    string
	keyBits uint32
	trunc   uint32 // ICV length in bits
}

var integAlgs = map[uint16]integAlg{
	integSHA1_96:                    {"hmac(sha1)", 160, 96},
	integXCBC96:                     {"xcbc(aes)", 128, 96},
	integAESCMAC96:                  {"cmac(aes)", 128, 96},
	transform.IntegHMACSHA2_256_128: {"hmac(sha256)", 256, 128},
	transform.IntegHMACSHA2_384_192: {"hmac(sha384)", 384, 192},
	transform.IntegHMACSHA2_512_256: {"hmac(sha512)", 512, 256},
}

// encrFor checks an SA's encryption key against its transform.
func encrFor(id, keyBits uint16, key []byte) (encrAlg, error) {
	alg, ok := encrAlgs[id]
	if !ok {
		return encrAlg{}, fmt.Errorf("xfrm: encryption transform %d has no kernel algorithm", id)
	}
	bits := keyBits
	if alg.fixed {
		if keyBits != 0 && keyBits != alg.keyBits[0] {
			return encrAlg{}, fmt.Errorf("xfrm: %s takes no key length %d", alg.name, keyBits)
		}
		bits = alg.keyBits[0]
	} else {
		ok := false
		for _, s := range alg.keyBits {
			ok = ok || s == keyBits
		}
		if !ok {
			return encrAlg{}, fmt.Errorf("xfrm: %s with a %d-bit key", alg.name, keyBits)
		}
	}
	if want := int(bits)/8 + alg.salt; len(key) != want {
		return encrAlg{}, fmt.Errorf("xfrm: %s-%d wants %d octets of key, got %d", alg.name, bits, want, len(key))
	}
	return alg, nil
}

// integFor checks an SA's integrity key against its transform.
func integFor(id uint16, key []byte) (integAlg, error) {
	alg, ok := integAlgs[id]
	if !ok {
		return integAlg{}, fmt.Errorf("xfrm: integrity transform %d has no kernel algorithm", id)
	}
	if len(key)*8 != int(alg.keyBits) {
		return integAlg{}, fmt.Errorf("xfrm: %s wants %d octets of key, got %d", alg.name, alg.keyBits/8, len(key))
	}
	return alg, nil
}
