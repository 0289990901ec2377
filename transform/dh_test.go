package transform

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"testing"
)

// RFC 5903 §8: the initiator's and responder's private scalars, public
// values and the x coordinate of the shared point (the IKE g^ir, §7).
var rfc5903Vectors = []struct {
	group                       *ecpGroup
	i, gix, giy, r, grx, gry, z string
}{
	{ecp256,
		"C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
		"DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180",
		"5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
		"C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
		"D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63",
		"56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
		"D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE"},
	{ecp384,
		"099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
		"667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA",
		"9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
		"41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
		"E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571",
		"DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
		"11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746"},
	{ecp521,
		"0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A095AA85A30FE1C2952C6771D937BA9777F5957B2639BAB072462F68C27A57382D4A52",
		"0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBEE1E3BF42E00B8E380AEAE57C2D107564941885942AF5A7F4601723C4195D176CED3E",
		"017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10AD8A788015AC405D7799DC75E7B7D5B6CF2261A6A7F1507438BF01BEB6CA3926F9582",
		"0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E9C677D600B343757A3BDBF2A3163E4C2F869CCA7458AA4A4EFFC311F5CB151685EB9",
		"00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A219B97C356436ADC6E95BB0352F6BE64A6C2912D4EF2D0433CED2B6171640012D9460F",
		"015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87220B6536C5C408A1D2AEBB8E86D678AE49CB57091F4732296579AB44FCD17F0FC56A",
		"01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04D1427E73CA4BAA240A34786859810C06B3C715A3A8CC3151F2BEE417996D19F3DDEA"},
}

func TestECPRFC5903(t *testing.T) {
	for _, v := range rfc5903Vectors {
		t.Run(v.group.Name(), func(t *testing.T) {
			ki, err := v.group.newPrivateKey(unhex(t, v.i))
			if err != nil {
				t.Fatal(err)
			}
			kr, err := v.group.newPrivateKey(unhex(t, v.r))
			if err != nil {
				t.Fatal(err)
			}
			wantI := append(unhex(t, v.gix), unhex(t, v.giy)...)
			wantR := append(unhex(t, v.grx), unhex(t, v.gry)...)
			checkBytes(t, "initiator KE data", ki.Public(), wantI)
			checkBytes(t, "responder KE data", kr.Public(), wantR)
			if len(ki.Public()) != v.group.PublicLen() {
				t.Errorf("KE data of %d octets, PublicLen %d", len(ki.Public()), v.group.PublicLen())
			}
			z := unhex(t, v.z)
			zi, err := ki.SharedSecret(wantR)
			if err != nil {
				t.Fatal(err)
			}
			checkBytes(t, "g^ir (initiator)", zi, z)
			zr, err := kr.SharedSecret(wantI)
			if err != nil {
				t.Fatal(err)
			}
			checkBytes(t, "g^ir (responder)", zr, z)

			// RFC 6989: reject what is not a point of the curve.
			bad := bytes.Clone(wantR)
			bad[len(bad)-1] ^= 1
			rejects := map[string][]byte{
				"off curve":        bad,
				"with 0x04 prefix": append([]byte{4}, wantR...),
				"x only":           wantR[:len(wantR)/2],
				"zero":             make([]byte, len(wantR)),
				"empty":            nil,
				"one short":        wantR[:len(wantR)-1],
			}
			for name, pub := range rejects {
				if _, err := ki.SharedSecret(pub); err == nil {
					t.Errorf("%s accepted", name)
				}
			}
		})
	}
}

// RFC 7748 §5.2 (first X25519 vector) and §6.1 (Alice and Bob).
func TestX25519RFC7748(t *testing.T) {
	k, err := newX25519PrivateKey(unhex(t, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"))
	if err != nil {
		t.Fatal(err)
	}
	z, err := k.SharedSecret(unhex(t, "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "§5.2 output", z, unhex(t, "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"))

	alice, err := newX25519PrivateKey(unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := newX25519PrivateKey(unhex(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "Alice's public key", alice.Public(), unhex(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
	checkBytes(t, "Bob's public key", bob.Public(), unhex(t, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
	want := unhex(t, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
	za, err := alice.SharedSecret(bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	zb, err := bob.SharedSecret(alice.Public())
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "Alice's K", za, want)
	checkBytes(t, "Bob's K", zb, want)

	// RFC 8031 §2.3 / RFC 7748 §6.1: low-order points give an all-zero
	// secret, which must be rejected; so must wrong lengths.
	one := make([]byte, 32)
	one[0] = 1
	for name, pub := range map[string][]byte{
		"zero":  make([]byte, 32),
		"one":   one,
		"short": alice.Public()[:31],
		"long":  append(bytes.Clone(alice.Public()), 0),
	} {
		if _, err := bob.SharedSecret(pub); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestMODP(t *testing.T) {
	for _, tc := range []struct {
		g       *modpGroup
		bits    int
		expBits int
	}{{modp2048, 2048, 320}, {modp3072, 3072, 424}, {modp4096, 4096, 480}} {
		t.Run(tc.g.Name(), func(t *testing.T) { testMODP(t, tc.g, tc.bits, tc.expBits) })
	}
}

func testMODP(t *testing.T, grp *modpGroup, bits, expBits int) {
	g := GroupByID(grp.ID())
	if g != Group(grp) {
		t.Fatalf("GroupByID(%d) is not %s", grp.ID(), grp.Name())
	}
	n := bits / 8
	p := grp.p
	// The RFC 3526 prime is a safe prime: a mistyped digit would not be.
	q := new(big.Int).Rsh(p, 1)
	if p.BitLen() != bits || !p.ProbablyPrime(4) || !q.ProbablyPrime(4) {
		t.Fatalf("%s prime is not the RFC 3526 safe prime", grp.Name())
	}
	a, err := g.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Public()) != n || len(b.Public()) != n || g.PublicLen() != n {
		t.Fatalf("public values of %d and %d octets", len(a.Public()), len(b.Public()))
	}
	za, err := a.SharedSecret(b.Public())
	if err != nil {
		t.Fatal(err)
	}
	zb, err := b.SharedSecret(a.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(za) != n || !bytes.Equal(za, zb) {
		t.Fatalf("sides disagree: %x / %x", za, zb)
	}
	// The exponent is the documented size.
	if x := a.(*modpPrivateKey).x; x.BitLen() > expBits || x.Cmp(big.NewInt(2)) < 0 || grp.exp*8 != expBits {
		t.Errorf("private exponent of %d bits, group draws %d", x.BitLen(), grp.exp*8)
	}

	pad := func(v *big.Int) []byte { return v.FillBytes(make([]byte, n)) }
	one := big.NewInt(1)
	rejects := map[string][]byte{
		"0":         pad(big.NewInt(0)),
		"1":         pad(one),
		"p-1":       pad(new(big.Int).Sub(p, one)),
		"p":         pad(p),
		"p+1":       pad(new(big.Int).Add(p, one)),
		"2^n-1":     bytes.Repeat([]byte{0xff}, n),
		"too short": a.Public()[1:],
		"too long":  append([]byte{0}, a.Public()...),
		"empty":     nil,
	}
	for name, pub := range rejects {
		if _, err := b.SharedSecret(pub); err == nil {
			t.Errorf("public value %s accepted", name)
		}
	}
	// 2 and p-2 are in range.
	for _, y := range []*big.Int{big.NewInt(2), new(big.Int).Sub(p, big.NewInt(2))} {
		if _, err := b.SharedSecret(pad(y)); err != nil {
			t.Errorf("public value %v rejected: %v", y, err)
		}
	}

	// g^ir is left-padded to the length of the prime: 2^8 = 0x0100.
	k := grp.newPrivateKey(big.NewInt(8))
	z, err := k.SharedSecret(pad(big.NewInt(2)))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	want[n-2] = 1
	checkBytes(t, "padded g^ir", z, want)
	// And so is the public value: 2^8 again.
	checkBytes(t, "padded public value", k.Public(), want)
}

// TestMODPPrimes rebuilds the primes of RFC 3526 from the RFC's formula,
// p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k), with pi
// computed here (Machin's formula), and compares them with the constants.
func TestMODPPrimes(t *testing.T) {
	pi := machinPi(4200)
	for _, tc := range []struct {
		g *modpGroup
		n uint
		k int64
	}{{modp2048, 2048, 124476}, {modp3072, 3072, 1690314}, {modp4096, 4096, 240904}} {
		// floor(2^(n-130) * pi), pi held as pi * 2^4200.
		f := new(big.Int).Rsh(pi, 4200-(tc.n-130))
		f.Add(f, big.NewInt(tc.k))
		p := new(big.Int).Lsh(f, 64)
		p.Add(p, new(big.Int).Lsh(big.NewInt(1), tc.n))
		p.Sub(p, new(big.Int).Lsh(big.NewInt(1), tc.n-64))
		p.Sub(p, big.NewInt(1))
		if p.Cmp(tc.g.p) != 0 {
			t.Errorf("%s: the constant is not the RFC 3526 prime\n got  %X\n want %X", tc.g.Name(), tc.g.p, p)
		}
	}
}

// machinPi returns floor(pi * 2^bits) (a few guard bits below exact),
// from pi = 16 atan(1/5) - 4 atan(1/239).
func machinPi(bits uint) *big.Int {
	guard := bits + 64
	one := new(big.Int).Lsh(big.NewInt(1), guard)
	atanInv := func(x int64) *big.Int {
		// atan(1/x) = sum (-1)^k / ((2k+1) x^(2k+1))
		sum := new(big.Int)
		pow := new(big.Int).Div(one, big.NewInt(x)) // 1/x
		x2 := big.NewInt(x * x)
		for k := int64(0); pow.Sign() != 0; k++ {
			term := new(big.Int).Div(pow, big.NewInt(2*k+1))
			if k%2 == 0 {
				sum.Add(sum, term)
			} else {
				sum.Sub(sum, term)
			}
			pow.Div(pow, x2)
		}
		return sum
	}
	pi := new(big.Int).Mul(atanInv(5), big.NewInt(16))
	pi.Sub(pi, new(big.Int).Mul(atanInv(239), big.NewInt(4)))
	return pi.Rsh(pi, 64)
}

// TestX448RFC7748 checks Curve448 against RFC 7748 §6.2: both public values
// and the shared secret, in both directions; and RFC 8031 §2.3's refusal of
// low-order points (all-zero result) and of wrong lengths.
func TestX448RFC7748(t *testing.T) {
	h := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	var aSec, bSec [56]byte
	copy(aSec[:], h("9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b"))
	copy(bSec[:], h("1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d"))
	alice, bob := newX448PrivateKey(aSec), newX448PrivateKey(bSec)
	checkBytes(t, "Alice's public value", alice.Public(), h("9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0"))
	checkBytes(t, "Bob's public value", bob.Public(), h("3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609"))
	want := h("07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d")
	for name, z := range map[string]func() ([]byte, error){
		"Alice": func() ([]byte, error) { return alice.SharedSecret(bob.Public()) },
		"Bob":   func() ([]byte, error) { return bob.SharedSecret(alice.Public()) },
	} {
		got, err := z()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkBytes(t, name+"'s shared secret", got, want)
	}
	one := make([]byte, 56)
	one[0] = 1
	for name, pub := range map[string][]byte{
		"zero": make([]byte, 56), "one": one, "too short": alice.Public()[1:], "too long": append(alice.Public(), 0), "empty": nil,
	} {
		if _, err := bob.SharedSecret(pub); err == nil {
			t.Errorf("Curve448 public value %s accepted", name)
		}
	}
	if g := GroupByID(DHCurve448); g == nil || g.Name() != "CURVE_448" || g.PublicLen() != 56 {
		t.Fatalf("GroupByID(32) = %v", g)
	}
}

// zeroReader is a broken random source.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestMODPBrokenRandom(t *testing.T) {
	if _, err := modp2048.GenerateKey(zeroReader{}); err == nil {
		t.Error("an all-zero random source gave a MODP key")
	}
}

func TestDHAgreement(t *testing.T) {
	for _, id := range []uint16{DHModp2048, DHModp3072, DHModp4096, DHECP256, DHECP384, DHECP521, DHCurve25519, DHCurve448} {
		g := GroupByID(id)
		t.Run(g.Name(), func(t *testing.T) {
			a, err := g.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			b, err := g.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Public()) != g.PublicLen() {
				t.Errorf("KE data of %d octets, PublicLen %d", len(a.Public()), g.PublicLen())
			}
			za, err := a.SharedSecret(b.Public())
			if err != nil {
				t.Fatal(err)
			}
			zb, err := b.SharedSecret(a.Public())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(za, zb) || len(za) == 0 {
				t.Fatalf("sides disagree: %x / %x", za, zb)
			}
		})
	}
}

// The ECP KE data is crypto/ecdh's uncompressed point without its 0x04.
func TestECPFormat(t *testing.T) {
	k, err := ecp256.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdh.P256().NewPublicKey(append([]byte{4}, k.Public()...))
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "point", pub.Bytes()[1:], k.Public())
}
