package transform

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"io"

	"github.com/cloudflare/circl/dh/x448"
)

// x448Group is Curve448 for IKEv2 (RFC 8031): the key exchange data is the
// 56-octet X448 public value of RFC 7748, and g^ir the 56-octet shared
// value. Go's standard library has no X448; Cloudflare's CIRCL provides it
// (constant time, RFC 7748's test vectors).
type x448Group struct{}

var curve448 = x448Group{}

func (x448Group) ID() uint16     { return DHCurve448 }
func (x448Group) Name() string   { return "CURVE_448" }
func (x448Group) PublicLen() int { return x448.Size }

func (x448Group) GenerateKey(r io.Reader) (PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	var secret x448.Key
	if _, err := io.ReadFull(r, secret[:]); err != nil {
		return nil, err
	}
	return newX448PrivateKey(secret), nil
}

// newX448PrivateKey makes the key of a 56-octet scalar (clamped by X448
// itself, RFC 7748 §5).
func newX448PrivateKey(secret x448.Key) *x448PrivateKey {
	k := &x448PrivateKey{secret: secret}
	x448.KeyGen(&k.public, &k.secret)
	return k
}

type x448PrivateKey struct {
	secret, public x448.Key
}

func (k *x448PrivateKey) Public() []byte { return k.public[:] }

var errX448Public = errors.New("transform: invalid Curve448 public value")

// SharedSecret computes g^ir, refusing a peer value of the wrong length
// and a low-order point, whose result is all zeros (RFC 8031 §2.3).
func (k *x448PrivateKey) SharedSecret(peer []byte) ([]byte, error) {
	if len(peer) != x448.Size {
		return nil, errX448Public
	}
	var pub, z x448.Key
	copy(pub[:], peer)
	ok := x448.Shared(&z, &k.secret, &pub)
	var zero x448.Key
	if !ok || subtle.ConstantTimeCompare(z[:], zero[:]) == 1 {
		return nil, errX448Public
	}
	return z[:], nil
}
