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

// modp3072Prime and modp4096Prime are the primes of RFC 3526 §4 and §5
// (generator 2); TestMODPPrimes checks them against the RFC's formula.
const modp3072Prime = "" +
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
	"15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64" +
	"ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
	"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B" +
	"F12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
	"BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31" +
	"43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"

const modp4096Prime = "" +
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
	"15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64" +
	"ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
	"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B" +
	"F12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
	"BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31" +
	"43DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7" +
	"88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA" +
	"2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6" +
	"287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED" +
	"1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9" +
	"93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199" +
	"FFFFFFFFFFFFFFFF"

// exponentBits is the size of a MODP group's private exponents.
//
// RFC 3526 §8 estimates the strength of the 2048-bit group at 110 to 160
// bits, of the 3072-bit group at 130 to 210 and of the 4096-bit group at
// 150 to 240, and asks for an exponent of twice the strength. The primes
// are safe, so the only attacks that profit from a short exponent are the
// generic ones (Pollard's lambda/kangaroo), costing about 2^(bits/2): with
// twice the upper estimate that is above the group's own discrete-log
// strength. A full exponent uniform in [2, p-2] would add no security but
// cost several times as much per modular exponentiation, so iked uses twice
// the upper estimate, rounded up to whole octets: 320 bits for MODP-2048
// (and the smaller legacy group), 424 for MODP-3072, 480 for MODP-4096,
// uniformly random (re-drawn while below 2).
func exponentBits(primeBits int) int {
	switch {
	case primeBits <= 2048:
		return 320
	case primeBits <= 3072:
		return 424
	}
	return 480
}

type modpGroup struct {
	id   uint16
	name string
	p    *big.Int
	pm1  *big.Int // p - 1
	g    *big.Int
	size int // octets of p
	exp  int // octets of a private exponent (exponentBits)
}

var (
	modp2048 = newMODPGroup(DHModp2048, "MODP_2048", modp2048Prime)
	modp3072 = newMODPGroup(DHModp3072, "MODP_3072", modp3072Prime)
	modp4096 = newMODPGroup(DHModp4096, "MODP_4096", modp4096Prime)
)

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
		exp:  exponentBits(p.BitLen()) / 8,
	}
}

func (g *modpGroup) ID() uint16     { return g.id }
func (g *modpGroup) Name() string   { return g.name }
func (g *modpGroup) PublicLen() int { return g.size }

func (g *modpGroup) GenerateKey(r io.Reader) (PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	buf := make([]byte, g.exp)
	defer clear(buf)
	x := new(big.Int)
	// x < 2 has probability below 2^-319; a reader that keeps producing it
	// is broken.
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
