package transform

import (
	"crypto/mlkem"
	"errors"
	"fmt"
	"io"
)

// ML-KEM as an IKEv2 key exchange method (draft-ietf-ipsecme-ikev2-mlkem,
// FIPS 203): the initiator's KE payload carries an encapsulation key, the
// responder's the ciphertext it encapsulated to that key, and the 32-octet
// shared secret takes the place of g^ir. It is used like a Diffie-Hellman
// group wherever a key exchange method goes: as an additional key exchange
// (RFC 9370, in IKE_INTERMEDIATE and IKE_FOLLOWUP_KE), as the PFS method of
// CREATE_CHILD_SA, or (not recommended over UDP: it does not fit an
// unfragmentable IKE_SA_INIT) as the IKE_SA_INIT method.
//
// Go's crypto/mlkem implements ML-KEM-768 and ML-KEM-1024; ML-KEM-512
// (transform ID 35) is not offered.

// KEM is a key exchange method whose two sides differ: the responder
// encapsulates to the initiator's key instead of sending a key of its own.
// The initiator's side is the Group's GenerateKey and
// PrivateKey.SharedSecret (which decapsulates).
type KEM interface {
	Group
	// Encapsulate checks the initiator's encapsulation key as FIPS 203
	// §7.2 requires (length, and every coefficient below the modulus) and
	// returns the ciphertext for the responder's KE payload and the
	// shared secret. Each call draws fresh randomness: a ciphertext is
	// never reused.
	Encapsulate(encapsulationKey []byte) (ciphertext, shared []byte, err error)
	// CiphertextLen is the length of the responder's key exchange data.
	CiphertextLen() int
}

// Errors of ML-KEM input checks. The responder answers a bad encapsulation
// key with INVALID_SYNTAX (draft-ietf-ipsecme-ikev2-mlkem §2.2); an
// initiator that gets a bad ciphertext ends the exchange.
var (
	ErrKEMEncapsulationKey = errors.New("transform: invalid ML-KEM encapsulation key")
	ErrKEMCiphertext       = errors.New("transform: invalid ML-KEM ciphertext")
	errKEMKeyUsed          = errors.New("transform: ML-KEM decapsulation key already used")
)

// mlkemGroup is one ML-KEM parameter set.
type mlkemGroup struct {
	id      uint16
	name    string
	ekLen   int
	ctLen   int
	newKey  func() (decapsulator, error)
	encapsT func(ek []byte) (shared, ct []byte, err error)
}

// decapsulator is crypto/mlkem's DecapsulationKey768 or 1024.
type decapsulator interface {
	Decapsulate(ciphertext []byte) ([]byte, error)
}

var (
	mlkem768 = &mlkemGroup{
		id: DHMLKEM768, name: "ML_KEM_768", ekLen: mlkem.EncapsulationKeySize768, ctLen: mlkem.CiphertextSize768,
		newKey: func() (decapsulator, error) { return mlkem.GenerateKey768() },
		encapsT: func(ek []byte) ([]byte, []byte, error) {
			k, err := mlkem.NewEncapsulationKey768(ek)
			if err != nil {
				return nil, nil, err
			}
			s, c := k.Encapsulate()
			return s, c, nil
		},
	}
	mlkem1024 = &mlkemGroup{
		id: DHMLKEM1024, name: "ML_KEM_1024", ekLen: mlkem.EncapsulationKeySize1024, ctLen: mlkem.CiphertextSize1024,
		newKey: func() (decapsulator, error) { return mlkem.GenerateKey1024() },
		encapsT: func(ek []byte) ([]byte, []byte, error) {
			k, err := mlkem.NewEncapsulationKey1024(ek)
			if err != nil {
				return nil, nil, err
			}
			s, c := k.Encapsulate()
			return s, c, nil
		},
	}
)

func (g *mlkemGroup) ID() uint16         { return g.id }
func (g *mlkemGroup) Name() string       { return g.name }
func (g *mlkemGroup) PublicLen() int     { return g.ekLen }
func (g *mlkemGroup) CiphertextLen() int { return g.ctLen }

// GenerateKey makes a fresh decapsulation key. The randomness comes from
// crypto/rand, as crypto/mlkem draws it (r is not used; tests make it
// repeatable with testing/cryptotest.SetGlobalRandom).
func (g *mlkemGroup) GenerateKey(io.Reader) (PrivateKey, error) {
	dk, err := g.newKey()
	if err != nil {
		return nil, err
	}
	var ek []byte
	switch k := dk.(type) {
	case *mlkem.DecapsulationKey768:
		ek = k.EncapsulationKey().Bytes()
	case *mlkem.DecapsulationKey1024:
		ek = k.EncapsulationKey().Bytes()
	}
	return &mlkemPrivateKey{g: g, dk: dk, ek: ek}, nil
}

// Encapsulate implements KEM.
func (g *mlkemGroup) Encapsulate(ek []byte) (ciphertext, shared []byte, err error) {
	if len(ek) != g.ekLen {
		return nil, nil, fmt.Errorf("%w: %d octets, %s takes %d", ErrKEMEncapsulationKey, len(ek), g.name, g.ekLen)
	}
	shared, ciphertext, err = g.encapsT(ek)
	if err != nil {
		// crypto/mlkem's modulus check (FIPS 203 §7.2) failed.
		return nil, nil, fmt.Errorf("%w: %v", ErrKEMEncapsulationKey, err)
	}
	return ciphertext, shared, nil
}

// mlkemPrivateKey is the initiator's side of one ML-KEM exchange. It
// decapsulates once: a key is never reused (draft-ietf-ipsecme-ikev2-mlkem
// §4), and it drops the decapsulation key then. (crypto/mlkem offers no
// way to zero its key's internal state; dropping it is what can be done.)
type mlkemPrivateKey struct {
	g  *mlkemGroup
	dk decapsulator
	ek []byte
}

func (k *mlkemPrivateKey) Public() []byte { return k.ek }

// SharedSecret checks the ciphertext's length (FIPS 203 §7.3's type check)
// and decapsulates it. A manipulated ciphertext of the right length yields
// a wrong secret (implicit rejection), which the AUTH exchange detects.
func (k *mlkemPrivateKey) SharedSecret(ciphertext []byte) ([]byte, error) {
	if k.dk == nil {
		return nil, errKEMKeyUsed
	}
	if len(ciphertext) != k.g.ctLen {
		return nil, fmt.Errorf("%w: %d octets, %s takes %d", ErrKEMCiphertext, len(ciphertext), k.g.name, k.g.ctLen)
	}
	s, err := k.dk.Decapsulate(ciphertext)
	k.dk = nil
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKEMCiphertext, err)
	}
	return s, nil
}

// Respond is the responder's half of a key exchange with g against the
// initiator's key exchange data: for a Diffie-Hellman group a fresh key
// pair and g^ir, for a KEM the encapsulation. It returns the responder's
// key exchange data and the shared secret. The peer's value is checked as
// RFC 6989 or FIPS 203 §7.2 asks.
func Respond(g Group, rand io.Reader, peer []byte) (public, shared []byte, err error) {
	if k, ok := g.(KEM); ok {
		return k.Encapsulate(peer)
	}
	priv, err := g.GenerateKey(rand)
	if err != nil {
		return nil, nil, err
	}
	shared, err = priv.SharedSecret(peer)
	if err != nil {
		return nil, nil, err
	}
	return priv.Public(), shared, nil
}

// ResponseLen is the length of the responder's key exchange data for g.
func ResponseLen(g Group) int {
	if k, ok := g.(KEM); ok {
		return k.CiphertextLen()
	}
	return g.PublicLen()
}

// IsPostQuantum reports whether the key exchange method id resists a
// quantum computer: the ML-KEM parameter sets.
func IsPostQuantum(id uint16) bool {
	_, ok := GroupByID(id).(KEM)
	return ok
}
