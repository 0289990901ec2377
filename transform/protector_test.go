package transform

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// suite is one negotiated SK payload protection.
type suite struct {
	encr    *Encr
	keyBits uint16
	integ   *Integ
}

func (s suite) String() string {
	if s.integ == nil {
		return s.encr.String(s.keyBits)
	}
	return s.encr.String(s.keyBits) + "/" + s.integ.Name
}

func allSuites() []suite {
	var out []suite
	cbc := EncrByID(EncrAESCBC)
	for _, bits := range cbc.KeySizes {
		for _, id := range []uint16{IntegHMACSHA2_256_128, IntegHMACSHA2_384_192, IntegHMACSHA2_512_256} {
			out = append(out, suite{cbc, bits, IntegByID(id)})
		}
	}
	gcm := EncrByID(EncrAESGCM16)
	for _, bits := range gcm.KeySizes {
		out = append(out, suite{gcm, bits, nil})
	}
	return append(out, suite{EncrByID(EncrChaCha20Poly1305), 0, nil})
}

// keys returns deterministic keys for s.
func (s suite) keys() (encKey, integKey []byte) {
	encKey = seqBytes(s.encr.KeyMaterialLen(s.keyBits), 0x20)
	if s.integ != nil {
		integKey = seqBytes(s.integ.KeyLen, 0x90)
	}
	return
}

func (s suite) protector(t testing.TB) *Protector {
	t.Helper()
	ek, ik := s.keys()
	p, err := NewProtector(s.encr, ek, s.integ, ik)
	if err != nil {
		t.Fatalf("%v: %v", s, err)
	}
	return p
}

// fakeAAD stands for an IKE header and an SK generic payload header.
func fakeAAD(n int) []byte { return seqBytes(n, 0xa0) }

func TestProtectorRoundTrip(t *testing.T) {
	for _, s := range allSuites() {
		t.Run(s.String(), func(t *testing.T) {
			seal, open := s.protector(t), s.protector(t)
			for _, n := range []int{0, 1, 2, 14, 15, 16, 17, 31, 32, 33, 200, 1400} {
				plain := seqBytes(n, byte(n))
				aad := fakeAAD(32)
				msg, err := seal.Seal(bytes.Clone(aad), plain, rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(msg[:len(aad)], aad) {
					t.Fatal("Seal changed msg")
				}
				if got, want := len(msg)-len(aad), seal.SealedLen(n); got != want {
					t.Fatalf("body of %d octets, SealedLen(%d) = %d", got, n, want)
				}
				if s.encr.BlockLen > 1 && (len(msg)-len(aad)-s.encr.IVLen-s.integ.ICVLen)%s.encr.BlockLen != 0 {
					t.Fatal("CBC ciphertext not a multiple of the block size")
				}
				got, err := open.Open(msg[:len(aad)], msg[len(aad):])
				if err != nil {
					t.Fatalf("Open(%d): %v", n, err)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("Open(%d) = %x, want %x", n, got, plain)
				}
			}
		})
	}
}

func TestProtectorSealedLen(t *testing.T) {
	cbc := suite{EncrByID(EncrAESCBC), 128, IntegByID(IntegHMACSHA2_256_128)}.protector(t)
	// IV 16 + (n + 1 rounded up to 16) + ICV 16.
	for n, want := range map[int]int{0: 48, 15: 48, 16: 64, 200: 16 + 208 + 16} {
		if got := cbc.SealedLen(n); got != want {
			t.Errorf("CBC SealedLen(%d) = %d, want %d", n, got, want)
		}
	}
	gcm := suite{EncrByID(EncrAESGCM16), 256, nil}.protector(t)
	// IV 8 + n + 1 + ICV 16.
	if got := gcm.SealedLen(200); got != 8+201+16 {
		t.Errorf("GCM SealedLen(200) = %d", got)
	}
}

// Seal and Open must not change the bytes around what they were given, and
// Seal must fill the capacity it gets without reallocating.
func TestProtectorInPlace(t *testing.T) {
	for _, s := range allSuites() {
		p := s.protector(t)
		aad := fakeAAD(28)
		buf := make([]byte, len(aad), len(aad)+p.SealedLen(100))
		copy(buf, aad)
		msg, err := p.Seal(buf, seqBytes(100, 1), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if &msg[0] != &buf[0] {
			t.Errorf("%v: Seal reallocated a buffer of sufficient capacity", s)
		}
	}
}

// Pin the constructions against direct use of the primitives.
func TestProtectorConstruction(t *testing.T) {
	iv := seqBytes(16, 0x70)
	plain := []byte("inner payloads")
	aad := fakeAAD(32)
	for _, s := range allSuites() {
		t.Run(s.String(), func(t *testing.T) {
			ek, ik := s.keys()
			msg, err := s.protector(t).Seal(bytes.Clone(aad), plain, bytes.NewReader(iv))
			if err != nil {
				t.Fatal(err)
			}
			body := msg[len(aad):]
			checkBytes(t, "IV", body[:s.encr.IVLen], iv[:s.encr.IVLen])
			if s.integ != nil {
				// ICV = HMAC(SK_a, header .. ciphertext) truncated.
				ct := body[16 : len(body)-s.integ.ICVLen]
				m := hmac.New(s.integ.newHash, ik)
				m.Write(msg[:len(msg)-s.integ.ICVLen])
				checkBytes(t, "ICV", body[len(body)-s.integ.ICVLen:], m.Sum(nil)[:s.integ.ICVLen])
				b, _ := aes.NewCipher(ek)
				dec := make([]byte, len(ct))
				cipher.NewCBCDecrypter(b, iv).CryptBlocks(dec, ct)
				if len(dec) != 16 || !bytes.Equal(dec[:len(plain)], plain) || int(dec[15]) != 16-len(plain)-1 {
					t.Errorf("CBC plaintext %x", dec)
				}
				return
			}
			// nonce = salt || IV; plaintext || pad length 0; tag 16.
			key, salt := ek[:len(ek)-4], ek[len(ek)-4:]
			var aead cipher.AEAD
			if s.encr.ID == EncrAESGCM16 {
				b, _ := aes.NewCipher(key)
				aead, _ = cipher.NewGCM(b)
			} else {
				aead, _ = chacha20poly1305.New(key)
			}
			nonce := append(bytes.Clone(salt), iv[:8]...)
			want := aead.Seal(nil, nonce, append(bytes.Clone(plain), 0), aad)
			checkBytes(t, "ciphertext", body[8:], want)
		})
	}
}

func TestProtectorTamper(t *testing.T) {
	for _, s := range allSuites() {
		t.Run(s.String(), func(t *testing.T) {
			p := s.protector(t)
			aad := fakeAAD(32)
			msg, err := p.Seal(bytes.Clone(aad), seqBytes(40, 3), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			body := msg[len(aad):]
			// Every position of IV, ciphertext and ICV.
			for i := range body {
				for _, flip := range []byte{0x01, 0x80} {
					b := bytes.Clone(body)
					b[i] ^= flip
					if _, err := p.Open(aad, b); !errors.Is(err, ErrIntegrity) {
						t.Fatalf("flip %#x at body[%d]: %v, want ErrIntegrity", flip, i, err)
					}
				}
			}
			// Every position of the AAD.
			for i := range aad {
				a := bytes.Clone(aad)
				a[i] ^= 0x01
				if _, err := p.Open(a, body); !errors.Is(err, ErrIntegrity) {
					t.Fatalf("flip at aad[%d]: %v, want ErrIntegrity", i, err)
				}
			}
			if _, err := p.Open(aad[:len(aad)-1], body); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("short aad: %v, want ErrIntegrity", err)
			}
			// A different key.
			ek, ik := s.keys()
			ek[0] ^= 1
			other, err := NewProtector(s.encr, ek, s.integ, ik)
			if err != nil {
				t.Fatal(err)
			}
			if s.integ == nil {
				if _, err := other.Open(aad, body); !errors.Is(err, ErrIntegrity) {
					t.Fatalf("wrong key: %v, want ErrIntegrity", err)
				}
			}
			ek[0] ^= 1
			if ik != nil {
				ik[0] ^= 1
				other, _ := NewProtector(s.encr, ek, s.integ, ik)
				if _, err := other.Open(aad, body); !errors.Is(err, ErrIntegrity) {
					t.Fatalf("wrong integrity key: %v, want ErrIntegrity", err)
				}
			}
			// It still opens untouched.
			if _, err := p.Open(aad, body); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestProtectorTruncated(t *testing.T) {
	for _, s := range allSuites() {
		t.Run(s.String(), func(t *testing.T) {
			p := s.protector(t)
			aad := fakeAAD(32)
			msg, err := p.Seal(bytes.Clone(aad), seqBytes(20, 3), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			body := msg[len(aad):]
			for n := 0; n < len(body); n++ {
				if _, err := p.Open(aad, body[:n]); err == nil {
					t.Fatalf("body truncated to %d opened", n)
				}
				if _, err := p.Open(aad, body[len(body)-n:]); err == nil {
					t.Fatalf("body cut to its last %d octets opened", n)
				}
			}
			minLen := s.encr.IVLen + s.encr.BlockLen + p.icvLen()
			for n := 0; n < minLen; n++ {
				if _, err := p.Open(aad, body[:n]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("%d octets: %v, want ErrMalformed", n, err)
				}
			}
			if _, err := p.Open(nil, nil); !errors.Is(err, ErrMalformed) {
				t.Fatalf("nil body: %v", err)
			}
		})
	}
}

// CBC: a ciphertext that is not whole blocks is malformed, whatever its ICV.
func TestProtectorCBCPartialBlock(t *testing.T) {
	s := suite{EncrByID(EncrAESCBC), 128, IntegByID(IntegHMACSHA2_256_128)}
	p := s.protector(t)
	aad := fakeAAD(32)
	for _, ctLen := range []int{1, 15, 17, 31} {
		body := make([]byte, 16+ctLen+16)
		if _, err := p.Open(aad, body); !errors.Is(err, ErrMalformed) {
			t.Errorf("ciphertext of %d octets: %v, want ErrMalformed", ctLen, err)
		}
	}
}

// An authentic payload whose pad length exceeds its plaintext is malformed.
func TestProtectorBadPadLength(t *testing.T) {
	aad := fakeAAD(32)
	for _, s := range allSuites() {
		t.Run(s.String(), func(t *testing.T) {
			p := s.protector(t)
			ek, ik := s.keys()
			var body []byte
			if s.integ != nil {
				// One block ending in pad length 16 (> 15 octets before it).
				block := make([]byte, 16)
				block[15] = 16
				iv := seqBytes(16, 9)
				b, _ := aes.NewCipher(ek)
				ct := make([]byte, 16)
				cipher.NewCBCEncrypter(b, iv).CryptBlocks(ct, block)
				m := hmac.New(s.integ.newHash, ik)
				m.Write(aad)
				m.Write(iv)
				m.Write(ct)
				body = append(append(iv, ct...), m.Sum(nil)[:s.integ.ICVLen]...)
			} else {
				iv := seqBytes(8, 9)
				nonce := append(bytes.Clone(p.key[len(p.key)-p.encr.SaltLen:]), iv...)
				if err := p.build(); err != nil { // built at first use
					t.Fatal(err)
				}
				body = append(iv, p.st.aead.Seal(nil, nonce, []byte{'x', 'y', 3}, aad)...)
			}
			if _, err := p.Open(aad, body); !errors.Is(err, ErrMalformed) {
				t.Fatalf("pad length beyond plaintext: %v, want ErrMalformed", err)
			}
		})
	}
}

// Seal accepts padding octets of any value and a zero pad length from peers.
func TestProtectorPeerPadding(t *testing.T) {
	s := suite{EncrByID(EncrAESCBC), 256, IntegByID(IntegHMACSHA2_512_256)}
	p := s.protector(t)
	ek, ik := s.keys()
	aad := fakeAAD(32)
	block := []byte("0123456789\xaa\xbb\xcc\xdd\xee\x05") // 10 octets, 5 padding, pad length 5
	iv := seqBytes(16, 1)
	b, _ := aes.NewCipher(ek)
	ct := make([]byte, 16)
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(ct, block)
	m := hmac.New(s.integ.newHash, ik)
	m.Write(aad)
	m.Write(iv)
	m.Write(ct)
	body := append(append(iv, ct...), m.Sum(nil)[:32]...)
	got, err := p.Open(aad, body)
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "plaintext", got, []byte("0123456789"))
}

func TestNewProtectorErrors(t *testing.T) {
	cbc, gcm, chacha := EncrByID(EncrAESCBC), EncrByID(EncrAESGCM16), EncrByID(EncrChaCha20Poly1305)
	sha := IntegByID(IntegHMACSHA2_256_128)
	for _, tc := range []struct {
		name     string
		encr     *Encr
		ek       []byte
		integ    *Integ
		ik       []byte
		succeeds bool
	}{
		{"cbc ok", cbc, make([]byte, 16), sha, make([]byte, 32), true},
		{"gcm ok", gcm, make([]byte, 20), nil, nil, true},
		{"chacha ok", chacha, make([]byte, 36), nil, nil, true},
		{"nil encr", nil, make([]byte, 16), sha, make([]byte, 32), false},
		{"cbc without integ", cbc, make([]byte, 16), nil, nil, false},
		{"cbc bad key", cbc, make([]byte, 20), sha, make([]byte, 32), false},
		{"cbc bad integ key", cbc, make([]byte, 16), sha, make([]byte, 16), false},
		{"gcm with integ", gcm, make([]byte, 20), sha, make([]byte, 32), false},
		{"gcm without salt", gcm, make([]byte, 16), nil, nil, false},
		{"gcm 192", gcm, make([]byte, 28), nil, nil, false},
		{"gcm empty", gcm, nil, nil, nil, false},
		{"chacha without salt", chacha, make([]byte, 32), nil, nil, false},
		{"unknown", &Encr{ID: 3, Name: "3DES"}, make([]byte, 24), sha, make([]byte, 32), false},
	} {
		_, err := NewProtector(tc.encr, tc.ek, tc.integ, tc.ik)
		if (err == nil) != tc.succeeds {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

// A failing random source fails Seal.
func TestProtectorSealRandError(t *testing.T) {
	p := suite{EncrByID(EncrAESGCM16), 128, nil}.protector(t)
	if _, err := p.Seal(fakeAAD(8), []byte("x"), bytes.NewReader(nil)); err == nil {
		t.Error("Seal succeeded without an IV")
	}
}

// RFC 8439 §2.8.2, through golang.org/x/crypto as the Protector uses it.
func TestChaCha20Poly1305RFC8439(t *testing.T) {
	key := unhex(t, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
	nonce := unhex(t, "070000004041424344454647")
	aad := unhex(t, "50515253c0c1c2c3c4c5c6c7")
	plain := []byte("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
	want := unhex(t, `d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
		3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
		92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
		3ff4def08e4b7a9de576d26586cec64b6116
		1ae10b594f09e26a7e902ecbd0600691`)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "ciphertext || tag", aead.Seal(nil, nonce, plain, aad), want)

	// The same through a Protector: RFC 7634's nonce is salt || IV, so the
	// RFC's 32-bit "constant" 07000000 is the salt and 4041424344454647 the
	// IV; the plaintext gains a pad length octet.
	p, err := NewProtector(EncrByID(EncrChaCha20Poly1305), append(bytes.Clone(key), nonce[:4]...), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := p.Seal(bytes.Clone(aad), plain, bytes.NewReader(nonce[4:]))
	if err != nil {
		t.Fatal(err)
	}
	body := msg[len(aad):]
	checkBytes(t, "IV", body[:8], nonce[4:])
	// ChaCha20 is a stream cipher: the ciphertext of the plaintext part is
	// the RFC's.
	checkBytes(t, "ciphertext", body[8:8+len(plain)], want[:len(plain)])
	got, err := p.Open(aad, body)
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "opened", got, plain)
}

func ExampleProtector() {
	encr := EncrByID(EncrAESGCM16)
	key := make([]byte, encr.KeyMaterialLen(256)) // SK_ei: key || salt
	p, _ := NewProtector(encr, key, nil, nil)
	header := make([]byte, 28+4) // IKE header and SK generic header
	msg, _ := p.Seal(header, []byte("inner payloads"), rand.Reader)
	inner, err := p.Open(msg[:32], msg[32:])
	fmt.Println(len(msg)-32 == p.SealedLen(14), string(inner), err)
	// Output: true inner payloads <nil>
}
