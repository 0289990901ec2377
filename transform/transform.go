// Package transform is the registry of the cryptographic transforms that
// both key-exchange engines and the data plane share, keyed by their IKEv2
// IANA IDs (RFC 7296 §3.3.2): encryption, pseudo-random functions,
// integrity algorithms and Diffie-Hellman groups. It also holds IKEv2's key
// schedule built on them
// (prf+, SKEYSEED, Child SA KEYMAT, §2.13-2.17); the SK payload protection
// (§3.14, RFC 5282, RFC 7634); and proposal strings in strongSwan's syntax.
//
// Names are printed as strongSwan prints them (AES_GCM_16-256,
// PRF_HMAC_SHA2_256, CURVE_25519) so that operators can compare logs.
package transform

import (
	"crypto/hmac"
	"fmt"
	"hash"
	"io"
	"strconv"
)

// Transform IDs (IANA "Transform Type Values").
const (
	EncrAESCBC            uint16 = 12
	EncrAESGCM16          uint16 = 20
	EncrChaCha20Poly1305  uint16 = 28
	PRFHMACSHA2_256       uint16 = 5
	PRFHMACSHA2_384       uint16 = 6
	PRFHMACSHA2_512       uint16 = 7
	IntegHMACSHA2_256_128 uint16 = 12
	IntegHMACSHA2_384_192 uint16 = 13
	IntegHMACSHA2_512_256 uint16 = 14
	IntegNone             uint16 = 0
	DHModp2048            uint16 = 14
	DHModp3072            uint16 = 15
	DHModp4096            uint16 = 16
	DHECP256              uint16 = 19
	DHECP384              uint16 = 20
	DHECP521              uint16 = 21
	DHCurve25519          uint16 = 31
	DHCurve448            uint16 = 32
	DHMLKEM512            uint16 = 35 // draft-ietf-ipsecme-ikev2-mlkem; not implemented (Go has 768 and 1024)
	DHMLKEM768            uint16 = 36
	DHMLKEM1024           uint16 = 37
	DHNone                uint16 = 0
	ESNNo                 uint16 = 0
	ESNYes                uint16 = 1
)

// Encr describes an encryption transform.
type Encr struct {
	ID   uint16
	Name string // strongSwan's name without the key size, e.g. "AES_CBC", "AES_GCM_16", "CHACHA20_POLY1305"
	// KeySizes lists the allowed Key Length attribute values in bits; empty
	// means the transform takes no Key Length attribute (ChaCha20-Poly1305).
	KeySizes []uint16
	// AEAD is true for combined-mode ciphers, which negotiate no integrity transform.
	AEAD bool
	// SaltLen is the octets of salt taken from the end of the keying material
	// (4 for AES-GCM and ChaCha20-Poly1305, RFC 5282 and RFC 7634), 0 for CBC.
	SaltLen int
	// IVLen is the length of the explicit IV carried in each SK payload.
	IVLen int
	// ICVLen is the AEAD tag length; 0 for non-AEAD ciphers.
	ICVLen int
	// BlockLen is the padding unit of the plaintext (16 for CBC, 1 for AEAD).
	BlockLen int

	keyLen int // key octets (without salt) of a transform without KeySizes
}

// KeyMaterialLen returns the octets of keying material this transform takes
// for keyBits (the Key Length attribute; 0 when it has none): key plus salt.
func (e *Encr) KeyMaterialLen(keyBits uint16) int {
	if len(e.KeySizes) == 0 {
		return e.keyLen + e.SaltLen
	}
	return int(keyBits)/8 + e.SaltLen
}

// String returns strongSwan's name, with keyBits appended when nonzero,
// e.g. "AES_GCM_16-256".
func (e *Encr) String(keyBits uint16) string {
	if keyBits == 0 {
		return e.Name
	}
	return e.Name + "-" + strconv.Itoa(int(keyBits))
}

// PRF describes a pseudo-random function transform.
type PRF struct {
	ID      uint16
	Name    string // "PRF_HMAC_SHA2_256"
	Size    int    // output octets, also the preferred key length (§2.13)
	newHash func() hash.Hash
}

// New returns a keyed instance of the PRF (an HMAC).
func (p *PRF) New(key []byte) hash.Hash { return hmac.New(p.newHash, key) }

// Sum appends prf(key, data) to dst.
func (p *PRF) Sum(dst, key, data []byte) []byte {
	s := p.scratch(key)
	s.inner.Write(data)
	dst = s.finish(dst)
	p.release(s)
	return dst
}

// Plus returns the first n octets of prf+(key, seed) (RFC 7296 §2.13).
// It fails when n exceeds 255 PRF outputs.
func (p *PRF) Plus(key, seed []byte, n int) ([]byte, error) {
	if n < 0 || n > 255*p.Size {
		return nil, fmt.Errorf("transform: prf+ of %d octets exceeds 255 outputs of %s", n, p.Name)
	}
	out := make([]byte, 0, (n+p.Size-1)/p.Size*p.Size)
	s := p.scratch(key)
	defer p.release(s)
	var prev []byte
	for i := 1; len(out) < n; i++ {
		s.inner.Write(prev)
		s.inner.Write(seed)
		s.inner.Write([]byte{byte(i)})
		start := len(out)
		out = s.finish(out)
		prev = out[start:]
	}
	return out[:n:n], nil
}

// Integ describes an integrity transform.
type Integ struct {
	ID      uint16
	Name    string // "HMAC_SHA2_256_128"
	KeyLen  int    // octets of key
	ICVLen  int    // truncated output octets
	newHash func() hash.Hash
}

// New returns an HMAC keyed with key; callers truncate its Sum to ICVLen.
func (i *Integ) New(key []byte) hash.Hash { return hmac.New(i.newHash, key) }

// Group describes a key exchange method (RFC 9370's name for what RFC
// 7296 calls a Diffie-Hellman group): a Diffie-Hellman group, or a KEM
// (kem.go), whose responder side is KEM.Encapsulate.
type Group interface {
	// ID is the IANA transform ID.
	ID() uint16
	// Name is strongSwan's name: MODP_2048, MODP_3072, MODP_4096, ECP_256,
	// ECP_384, ECP_521, CURVE_25519, CURVE_448, ML_KEM_768, ML_KEM_1024.
	Name() string
	// PublicLen is the length of the initiator's KE payload's key exchange
	// data (for a Diffie-Hellman group, either side's; ResponseLen gives
	// the responder's).
	PublicLen() int
	// GenerateKey makes a fresh private key from rand.
	GenerateKey(rand io.Reader) (PrivateKey, error)
}

// PrivateKey is one side's ephemeral Diffie-Hellman key, or a KEM
// initiator's decapsulation key.
type PrivateKey interface {
	// Public returns the key exchange data for the KE payload (RFC 7296
	// §3.4; for ECP groups x||y without a point-format octet, RFC 5903 §7;
	// for ML-KEM the encapsulation key).
	Public() []byte
	// SharedSecret checks the peer's public value as RFC 6989 asks (range for
	// MODP, on-curve for ECP, non-zero result for Curve25519) and returns g^ir;
	// for ML-KEM it checks the ciphertext's length and decapsulates it, once.
	SharedSecret(peerPublic []byte) ([]byte, error)
}
