// Package transform is the registry of IKEv2 transforms keyed by their IANA
// IDs (RFC 7296 §3.3.2): encryption, pseudo-random functions, integrity
// algorithms and Diffie-Hellman groups; the key schedule built on them
// (prf+, SKEYSEED, Child SA KEYMAT, §2.13-2.17); the SK payload protection
// (§3.14, RFC 5282, RFC 7634); and proposal strings in strongSwan's syntax.
//
// Names are printed as strongSwan prints them (AES_GCM_16-256,
// PRF_HMAC_SHA2_256, CURVE_25519) so that operators can compare logs.
package transform

import (
	"crypto/cipher"
	"hash"
	"io"
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
	DHECP256              uint16 = 19
	DHECP384              uint16 = 20
	DHECP521              uint16 = 21
	DHCurve25519          uint16 = 31
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
}

// KeyMaterialLen returns the octets of keying material this transform takes
// for keyBits (the Key Length attribute; 0 when it has none): key plus salt.
func (e *Encr) KeyMaterialLen(keyBits uint16) int { panic("unimplemented") }

// String returns strongSwan's name, with keyBits appended when nonzero,
// e.g. "AES_GCM_16-256".
func (e *Encr) String(keyBits uint16) string { panic("unimplemented") }

// PRF describes a pseudo-random function transform.
type PRF struct {
	ID      uint16
	Name    string // "PRF_HMAC_SHA2_256"
	Size    int    // output octets, also the preferred key length (§2.13)
	newHash func() hash.Hash
}

// New returns a keyed instance of the PRF (an HMAC).
func (p *PRF) New(key []byte) hash.Hash { panic("unimplemented") }

// Sum appends prf(key, data) to dst.
func (p *PRF) Sum(dst, key, data []byte) []byte { panic("unimplemented") }

// Plus returns the first n octets of prf+(key, seed) (RFC 7296 §2.13).
// It fails when n exceeds 255 PRF outputs.
func (p *PRF) Plus(key, seed []byte, n int) ([]byte, error) { panic("unimplemented") }

// Integ describes an integrity transform.
type Integ struct {
	ID      uint16
	Name    string // "HMAC_SHA2_256_128"
	KeyLen  int    // octets of key
	ICVLen  int    // truncated output octets
	newHash func() hash.Hash
}

// New returns an HMAC keyed with key; callers truncate its Sum to ICVLen.
func (i *Integ) New(key []byte) hash.Hash { panic("unimplemented") }

// Group describes a Diffie-Hellman group.
type Group interface {
	// ID is the IANA transform ID.
	ID() uint16
	// Name is strongSwan's name: MODP_2048, ECP_256, ECP_384, ECP_521, CURVE_25519.
	Name() string
	// PublicLen is the length of a KE payload's key exchange data.
	PublicLen() int
	// GenerateKey makes a fresh private key from rand.
	GenerateKey(rand io.Reader) (PrivateKey, error)
}

// PrivateKey is one side's ephemeral Diffie-Hellman key.
type PrivateKey interface {
	// Public returns the key exchange data for the KE payload (RFC 7296
	// §3.4; for ECP groups x||y without a point-format octet, RFC 5903 §7).
	Public() []byte
	// SharedSecret checks the peer's public value as RFC 6989 asks (range for
	// MODP, on-curve for ECP, non-zero result for Curve25519) and returns g^ir.
	SharedSecret(peerPublic []byte) ([]byte, error)
}

// Lookups by IANA ID; each returns nil for an ID iked does not implement.

// EncrByID returns the encryption transform with this ID.
func EncrByID(id uint16) *Encr { panic("unimplemented") }

// PRFByID returns the PRF with this ID.
func PRFByID(id uint16) *PRF { panic("unimplemented") }

// IntegByID returns the integrity transform with this ID.
func IntegByID(id uint16) *Integ { panic("unimplemented") }

// GroupByID returns the Diffie-Hellman group with this ID.
func GroupByID(id uint16) Group { panic("unimplemented") }

// Protector protects SK payloads in one direction (RFC 7296 §3.14; RFC 5282
// for AES-GCM; RFC 7634 for ChaCha20-Poly1305). It is safe for use by one
// goroutine at a time.
type Protector struct {
	encr  *Encr
	aead  cipher.AEAD
	salt  []byte
	block cipher.Block
	integ *Integ
	mac   hash.Hash
}

// NewProtector makes a Protector from the negotiated transforms and this
// direction's keys: encKey is SK_e (with the salt at its end for AEAD
// ciphers), integKey is SK_a (nil, and integ nil, for AEAD ciphers).
func NewProtector(encr *Encr, encKey []byte, integ *Integ, integKey []byte) (*Protector, error) {
	panic("unimplemented")
}

// SealedLen returns the length of an SK payload body (IV, ciphertext with
// padding and pad length, ICV) that carries plainLen octets of inner payloads.
func (p *Protector) SealedLen(plainLen int) int { panic("unimplemented") }

// Seal appends the SK payload body for plaintext to msg and returns the
// extended slice. msg must already hold the IKE header, any payloads before
// SK and the SK generic payload header, with the header's Length and the SK
// payload's length already final (they are covered by the ICV/AAD). The IV
// comes from rand.
func (p *Protector) Seal(msg, plaintext []byte, rand io.Reader) ([]byte, error) {
	panic("unimplemented")
}

// Open authenticates and decrypts an SK payload body. aad is the message
// from its first octet up to and including the SK generic payload header;
// body is the rest of the message (IV, ciphertext, ICV). It returns the inner
// payloads' octets with padding removed, in a new slice. Any failure
// (short body, bad ICV, bad padding) returns ErrIntegrity or ErrMalformed.
func (p *Protector) Open(aad, body []byte) ([]byte, error) { panic("unimplemented") }
