package transform

// Proposal is one proposal as configured: for each transform type the
// algorithms acceptable, in preference order. It is parsed from a
// strongSwan-style proposal string.
type Proposal struct {
	Encr  []EncrChoice // encryption with key size
	PRF   []uint16     // IKE only
	Integ []uint16     // empty for AEAD-only proposals
	DH    []uint16     // IKE: required; ESP: optional (PFS); DHNone never listed
	ESN   []uint16     // ESP only; defaults to [ESNNo]
}

// EncrChoice is an encryption transform and its key size in bits (0 for
// transforms without a Key Length attribute).
type EncrChoice struct {
	ID      uint16
	KeyBits uint16
}

// ParseIKEProposal parses an IKE proposal string such as
// "aes256gcm16-prfsha256-x25519" or "aes128-aes256-sha256-sha384-modp2048-ecp256".
// Keywords: aes128 aes192 aes256 (CBC), aes128gcm16 aes256gcm16 (also
// aes128gcm aes256gcm), chacha20poly1305; sha256 sha384 sha512 (integrity,
// and the PRF of the same hash when no prf keyword is given); prfsha256
// prfsha384 prfsha512; modp2048 ecp256 ecp384 ecp521 x25519 (also curve25519).
// An IKE proposal needs at least one encryption algorithm, a PRF (given or
// implied), a DH group, and integrity unless every encryption is AEAD; AEAD
// and non-AEAD encryption cannot be mixed in one proposal. Errors name the
// offending keyword.
func ParseIKEProposal(s string) (Proposal, error) { panic("unimplemented") }

// ParseESPProposal parses an ESP proposal string such as "aes256gcm16",
// "aes128-sha256-modp2048" (with PFS) or "chacha20poly1305-esn". Keywords
// as for IKE without prf*, plus esn and noesn.
func ParseESPProposal(s string) (Proposal, error) { panic("unimplemented") }

// String prints the proposal in strongSwan's log style, e.g.
// "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519" (all choices joined by "/").
func (p Proposal) String() string { panic("unimplemented") }

// Errors returned by Protector.Open.
var (
	// ErrIntegrity means the ICV or AEAD tag did not verify.
	ErrIntegrity = errorString("transform: integrity check failed")
	// ErrMalformed means the SK body was too short or its padding invalid.
	ErrMalformed = errorString("transform: malformed encrypted payload")
)

type errorString string

func (e errorString) Error() string { return string(e) }
