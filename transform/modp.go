package transform

import (
	"crypto/rand"
	"errors"
	"io"
	"math/big"
)

// modp2048Prime is the 2048-bit MODP group prime of RFC 3526 §3; the
// generator is 2.
const modp2048Prime = "" +
	"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
	"29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
	"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
	"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
	"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D" +
	"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
	"83655D23DCA3AD961C62F356208552BB9ED529077096966D" +
	"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
	"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9" +
	"DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
	"15728E5A8AACAA68FFFFFFFFFFFFFFFF"

// modpExponentBits is the size of MODP private exponents.
//
// RFC 3526 §8 estimates the strength of the 2048-bit group at 110 to 160
// bits and asks for an exponent of twice the strength, 220 to 320 bits. The
// prime is safe, so the only attacks that profit from a short exponent are
// the generic ones (Pollard's lambda/kangaroo), costing about 2^(bits/2)
// = 2^160 for 320 bits, above the group's own discrete-log strength. A full
// exponent uniform in [2, p-2] would add no security but cost over six times
// as much per modular exponentiation, so iked uses the upper estimate, 320
// uniformly random bits (re-drawn while below 2).
const modpExponentBits = 320

type modpGroup struct {
	id   uint16
	name string
	p    *big.Int
	pm1  *big.Int // p - 1
	g    *big.Int
	size int // octets of p
}

var modp2048 = newMODPGroup(DHModp2048, "MODP_2048", modp2048Prime)

func newMODPGroup(id uint16, name, primeHex string) *modpGroup {
	p, ok := new(big.Int).SetString(primeHex, 16)
	if !ok {
		panic("transform: bad MODP prime")
	}
	return &modpGroup{
		id: id, name: name, p: p,
		pm1:  new(big.Int).Sub(p, big.NewInt(1)),
		g:    big.NewInt(2),
		size: (p.BitLen() + 7) / 8,
	}
}

func (g *modpGroup) ID() uint16     { return g.id }
func (g *modpGroup) Name() string   { return g.name }
func (g *modpGroup) PublicLen() int { return g.size }

func (g *modpGroup) GenerateKey(r io.Reader) (PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	buf := make([]byte, modpExponentBits/8)
	defer clear(buf)
	x := new(big.Int)
	// x < 2 has probability 2^-319; a reader that keeps producing it is broken.
	for range 8 {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if x.SetBytes(buf).Cmp(big.NewInt(1)) > 0 {
			return g.newPrivateKey(x), nil
		}
	}
	return nil, errors.New("transform: random source keeps producing exponents below 2")
}

func (g *modpGroup) newPrivateKey(x *big.Int) *modpPrivateKey {
	y := new(big.Int).Exp(g.g, x, g.p)
	return &modpPrivateKey{group: g, x: x, pub: y.FillBytes(make([]byte, g.size))}
}

type modpPrivateKey struct {
	group *modpGroup
	x     *big.Int
	pub   []byte
}

func (k *modpPrivateKey) Public() []byte { return k.pub }

var errMODPPublic = errors.New("transform: invalid MODP public value")

// SharedSecret checks 1 < y < p-1 (RFC 6989 §2.1; the prime is safe, so
// this is all the check the group needs) and returns y^x mod p left-padded
// to the length of the prime (RFC 7296 §2.14).
func (k *modpPrivateKey) SharedSecret(peer []byte) ([]byte, error) {
	g := k.group
	if len(peer) != g.size {
		return nil, errMODPPublic
	}
	y := new(big.Int).SetBytes(peer)
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(g.pm1) >= 0 {
		return nil, errMODPPublic
	}
	z := y.Exp(y, k.x, g.p)
	if z.Cmp(big.NewInt(1)) <= 0 {
		// Unreachable with a checked y and a safe prime; kept as a guard.
		return nil, errMODPPublic
	}
	return z.FillBytes(make([]byte, g.size)), nil
}
