package transform

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"io"
)

// ecpGroup is an ECP group of RFC 5903 (ECP_256, ECP_384, ECP_521). Its key
// exchange data is x || y, each coordinate left-padded to the field size,
// without the point-format octet (RFC 5903 §7); g^ir is the x coordinate of
// the shared point.
type ecpGroup struct {
	id        uint16
	name      string
	curve     ecdh.Curve
	coordSize int
}

var (
	ecp256 = &ecpGroup{id: DHECP256, name: "ECP_256", curve: ecdh.P256(), coordSize: 32}
	ecp384 = &ecpGroup{id: DHECP384, name: "ECP_384", curve: ecdh.P384(), coordSize: 48}
	ecp521 = &ecpGroup{id: DHECP521, name: "ECP_521", curve: ecdh.P521(), coordSize: 66}
)

func (g *ecpGroup) ID() uint16     { return g.id }
func (g *ecpGroup) Name() string   { return g.name }
func (g *ecpGroup) PublicLen() int { return 2 * g.coordSize }

func (g *ecpGroup) GenerateKey(r io.Reader) (PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	k, err := g.curve.GenerateKey(r)
	if err != nil {
		return nil, err
	}
	return &ecdhPrivateKey{ecp: g, key: k, pub: k.PublicKey().Bytes()[1:]}, nil
}

// newPrivateKey makes a key from a fixed private scalar (for known-answer
// tests).
func (g *ecpGroup) newPrivateKey(scalar []byte) (*ecdhPrivateKey, error) {
	k, err := g.curve.NewPrivateKey(scalar)
	if err != nil {
		return nil, err
	}
	return &ecdhPrivateKey{ecp: g, key: k, pub: k.PublicKey().Bytes()[1:]}, nil
}

// x25519Group is Curve25519 for IKEv2 (RFC 8031).
type x25519Group struct{}

var curve25519 = x25519Group{}

func (x25519Group) ID() uint16     { return DHCurve25519 }
func (x25519Group) Name() string   { return "CURVE_25519" }
func (x25519Group) PublicLen() int { return 32 }

func (x25519Group) GenerateKey(r io.Reader) (PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	k, err := ecdh.X25519().GenerateKey(r)
	if err != nil {
		return nil, err
	}
	return &ecdhPrivateKey{key: k, pub: k.PublicKey().Bytes()}, nil
}

// newX25519PrivateKey makes a key from a fixed 32-octet scalar (for
// known-answer tests).
func newX25519PrivateKey(scalar []byte) (*ecdhPrivateKey, error) {
	k, err := ecdh.X25519().NewPrivateKey(scalar)
	if err != nil {
		return nil, err
	}
	return &ecdhPrivateKey{key: k, pub: k.PublicKey().Bytes()}, nil
}

// ecdhPrivateKey is a private key of an ECP group (ecp set) or of Curve25519
// (ecp nil).
type ecdhPrivateKey struct {
	ecp *ecpGroup
	key *ecdh.PrivateKey
	pub []byte
}

func (k *ecdhPrivateKey) Public() []byte { return k.pub }

var (
	errECPPublic    = errors.New("transform: invalid ECP public value")
	errX25519Public = errors.New("transform: invalid Curve25519 public value")
)

// SharedSecret validates the peer's value and computes g^ir. For ECP
// groups, crypto/ecdh checks that the point is on the curve and not the
// point at infinity (RFC 6989 §2.3). For Curve25519, an all-zero result
// (a low-order peer point) is rejected (RFC 8031 §2.3).
func (k *ecdhPrivateKey) SharedSecret(peer []byte) ([]byte, error) {
	if k.ecp == nil {
		if len(peer) != 32 {
			return nil, errX25519Public
		}
		pub, err := ecdh.X25519().NewPublicKey(peer)
		if err != nil {
			return nil, errX25519Public
		}
		z, err := k.key.ECDH(pub)
		if err != nil {
			return nil, errX25519Public
		}
		var zero [32]byte
		if subtle.ConstantTimeCompare(z, zero[:]) == 1 {
			return nil, errX25519Public
		}
		return z, nil
	}
	if len(peer) != 2*k.ecp.coordSize {
		return nil, errECPPublic
	}
	point := make([]byte, 1+len(peer))
	point[0] = 4 // uncompressed
	copy(point[1:], peer)
	pub, err := k.ecp.curve.NewPublicKey(point)
	if err != nil {
		return nil, errECPPublic
	}
	z, err := k.key.ECDH(pub)
	if err != nil {
		return nil, errECPPublic
	}
	return z, nil
}
