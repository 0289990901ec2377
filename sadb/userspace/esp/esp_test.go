package esp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

func key(n int, seed byte) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

type suite struct {
	name string
	cfg  Config
}

func suites() []suite {
	return []suite{
		{"aes-gcm-128", Config{EncrID: EncrAESGCM16, EncrKeyBits: 128, EncrKey: key(20, 1)}},
		{"aes-gcm-256", Config{EncrID: EncrAESGCM16, EncrKeyBits: 256, EncrKey: key(36, 1)}},
		{"aes-gcm12-256", Config{EncrID: EncrAESGCM12, EncrKeyBits: 256, EncrKey: key(36, 1)}},
		{"chacha20-poly1305", Config{EncrID: EncrChaCha20Poly1305, EncrKey: key(36, 1)}},
		{"aes-cbc-128-sha256", Config{EncrID: EncrAESCBC, EncrKeyBits: 128, EncrKey: key(16, 1), IntegID: IntegHMACSHA2_256_128, IntegKey: key(32, 9)}},
		{"aes-cbc-256-sha256", Config{EncrID: EncrAESCBC, EncrKeyBits: 256, EncrKey: key(32, 1), IntegID: IntegHMACSHA2_256_128, IntegKey: key(32, 9)}},
		{"aes-cbc-256-sha384", Config{EncrID: EncrAESCBC, EncrKeyBits: 256, EncrKey: key(32, 1), IntegID: IntegHMACSHA2_384_192, IntegKey: key(48, 9)}},
		{"aes-cbc-256-sha512", Config{EncrID: EncrAESCBC, EncrKeyBits: 256, EncrKey: key(32, 1), IntegID: IntegHMACSHA2_512_256, IntegKey: key(64, 9)}},
		{"aes-cbc-128-sha1", Config{EncrID: EncrAESCBC, EncrKeyBits: 128, EncrKey: key(16, 1), IntegID: IntegHMACSHA1_96, IntegKey: key(20, 9)}},
	}
}

func pair(t testing.TB, c Config) (*SA, *SA) {
	t.Helper()
	c.SPI = 0x01020304
	out, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return out, in
}

// seal copies payload into a fresh buffer with room and seals it.
func seal(t testing.TB, s *SA, payload []byte) []byte {
	t.Helper()
	buf := make([]byte, 64+len(payload)+64)
	copy(buf[64:], payload)
	p, err := s.Seal(buf, 64, len(payload), NextIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != len(payload)+s.Overhead(len(payload)) {
		t.Fatalf("packet of %d octets, Overhead says %d+%d", len(p), len(payload), s.Overhead(len(payload)))
	}
	return append([]byte(nil), p...)
}

func TestRoundTrip(t *testing.T) {
	for _, su := range suites() {
		for _, esn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/esn=%v", su.name, esn), func(t *testing.T) {
				c := su.cfg
				c.ESN = esn
				out, in := pair(t, c)
				for _, n := range []int{0, 1, 2, 3, 15, 16, 17, 64, 1400} {
					payload := key(n, byte(n))
					pkt := seal(t, out, payload)
					if binary.BigEndian.Uint32(pkt) != 0x01020304 {
						t.Fatalf("SPI %x", pkt[:4])
					}
					if (len(pkt)-out.HeaderLen()-out.icvLen)%out.align != 0 {
						t.Fatalf("%d: ciphertext of %d octets is not aligned to %d", n, len(pkt)-out.HeaderLen()-out.icvLen, out.align)
					}
					got, next, seq, err := in.Open(pkt)
					if err != nil || next != NextIPv4 || !bytes.Equal(got, payload) || seq != out.Seq() {
						t.Fatalf("%d: open: %v next %d seq %d/%d, payload equal %v", n, err, next, seq, out.Seq(), bytes.Equal(got, payload))
					}
				}
			})
		}
	}
}

// TestKnownAnswer rebuilds each packet from the primitives, following the
// RFCs' layouts rather than the package's code: SPI, sequence number, IV,
// then the cipher's output; AAD and ICV input with the ESN high bits where
// RFC 4106 §5 / RFC 4303 §2.2.1 put them; the nonce is salt || IV.
func TestKnownAnswer(t *testing.T) {
	const spi = 0xdeadbeef
	payload := []byte("0123456789abcdefghij") // 20 octets
	for _, esn := range []bool{false, true} {
		seq := uint64(7)
		if esn {
			seq = 3<<32 | 7
		}
		hi := []byte{0, 0, 0, byte(seq >> 32)}
		wireHdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, spi), uint32(seq))
		ivSeq := binary.BigEndian.AppendUint64(nil, seq)
		aad := wireHdr
		if esn {
			aad = append(binary.BigEndian.AppendUint32(nil, spi), ivSeq...)
		}
		// AEAD plaintext: payload, pad 1 2 (to 4-octet alignment), pad length 2, next header 4.
		aeadPT := append(append([]byte(nil), payload...), 1, 2, 2, 4)
		gcmKey := key(36, 0x40)
		blk, _ := aes.NewCipher(gcmKey[:32])
		gcm, _ := cipher.NewGCM(blk)
		wantGCM := append(append(append([]byte(nil), wireHdr...), ivSeq...), gcm.Seal(nil, append(append([]byte(nil), gcmKey[32:]...), ivSeq...), aeadPT, aad)...)
		chKey := key(36, 0x80)
		ch, _ := chacha20poly1305.New(chKey[:32])
		wantCh := append(append(append([]byte(nil), wireHdr...), ivSeq...), ch.Seal(nil, append(append([]byte(nil), chKey[32:]...), ivSeq...), aeadPT, aad)...)
		// CBC: the IV is AES_K(0^64 || seq), plaintext padded to 32 octets.
		cbcKey, macKey := key(32, 0x10), key(32, 0x20)
		cb, _ := aes.NewCipher(cbcKey)
		iv := make([]byte, 16)
		cb.Encrypt(iv, append(make([]byte, 8), ivSeq...))
		cbcPT := append(append([]byte(nil), payload...), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 4)
		ct := make([]byte, len(cbcPT))
		cipher.NewCBCEncrypter(cb, iv).CryptBlocks(ct, cbcPT)
		body := append(append(append([]byte(nil), wireHdr...), iv...), ct...)
		m := hmac.New(sha256.New, macKey)
		m.Write(body)
		if esn {
			m.Write(hi)
		}
		wantCBC := append(body, m.Sum(nil)[:16]...)

		for _, tc := range []struct {
			name string
			cfg  Config
			want []byte
		}{
			{"aes-gcm-256", Config{EncrID: EncrAESGCM16, EncrKeyBits: 256, EncrKey: gcmKey}, wantGCM},
			{"chacha20-poly1305", Config{EncrID: EncrChaCha20Poly1305, EncrKey: chKey}, wantCh},
			{"aes-cbc-256-sha256", Config{EncrID: EncrAESCBC, EncrKeyBits: 256, EncrKey: cbcKey, IntegID: IntegHMACSHA2_256_128, IntegKey: macKey}, wantCBC},
		} {
			t.Run(fmt.Sprintf("%s/esn=%v", tc.name, esn), func(t *testing.T) {
				tc.cfg.SPI, tc.cfg.ESN = spi, esn
				s, err := New(tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				s.SetSeq(seq - 1)
				got := seal(t, s, payload)
				if !bytes.Equal(got, tc.want) {
					t.Fatalf("packet\n got %x\nwant %x", got, tc.want)
				}
				in, _ := New(tc.cfg)
				if esn {
					in.replay.top = 3<<32 | 1 // the receiver is in the same subspace
				}
				if _, _, gotSeq, err := in.Open(got); err != nil || gotSeq != seq {
					t.Fatalf("open: seq %x, %v", gotSeq, err)
				}
			})
		}
	}
}

// TestESNHighBits: with ESN the high-order bits are authenticated though
// not sent, so a receiver that infers other high bits rejects the packet.
func TestESNHighBits(t *testing.T) {
	for _, su := range suites() {
		t.Run(su.name, func(t *testing.T) {
			c := su.cfg
			c.ESN = true
			out, in := pair(t, c)
			out.SetSeq(1<<32 - 3)
			var pkts [][]byte
			for range 6 { // crosses 2^32
				pkts = append(pkts, seal(t, out, []byte("payload")))
			}
			if got := binary.BigEndian.Uint32(pkts[5][4:8]); got != 3 {
				t.Fatalf("wire sequence number %d, want 3", got)
			}
			wrong, _ := New(Config{SPI: 0x01020304, EncrID: c.EncrID, EncrKeyBits: c.EncrKeyBits, EncrKey: c.EncrKey, IntegID: c.IntegID, IntegKey: c.IntegKey, ESN: true})
			if _, _, _, err := wrong.Open(append([]byte(nil), pkts[5]...)); !errors.Is(err, ErrAuth) {
				t.Fatalf("open with high bits 0: %v, want ErrAuth", err)
			}
			in.replay.top = 1<<32 - 10
			for i, p := range []int{0, 1, 3, 2, 5, 4} {
				_, _, seq, err := in.Open(append([]byte(nil), pkts[p]...))
				if want := uint64(1<<32-2) + uint64(p); err != nil || seq != want {
					t.Fatalf("packet %d (#%d): seq %x want %x, %v", i, p, seq, want, err)
				}
			}
		})
	}
}

func TestCorruptICV(t *testing.T) {
	for _, su := range suites() {
		t.Run(su.name, func(t *testing.T) {
			out, in := pair(t, su.cfg)
			pkt := seal(t, out, []byte("hello, tunnel"))
			for _, at := range []int{4, 9, len(pkt) - 1, len(pkt) / 2} { // seq, IV, ICV, ciphertext
				bad := append([]byte(nil), pkt...)
				bad[at] ^= 0x40
				if _, _, _, err := in.Open(bad); !errors.Is(err, ErrAuth) && !(at == 4 && errors.Is(err, ErrReplay)) {
					t.Fatalf("flip at %d: %v, want ErrAuth", at, err)
				}
			}
			// Forged packets did not move the window: the genuine one is accepted once.
			if _, _, _, err := in.Open(append([]byte(nil), pkt...)); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := in.Open(append([]byte(nil), pkt...)); !errors.Is(err, ErrReplay) {
				t.Fatalf("second copy: %v, want ErrReplay", err)
			}
			if _, _, _, err := in.Open(pkt[:out.HeaderLen()+1]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("truncated: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestSeqExhausted(t *testing.T) {
	s, _ := New(suites()[1].cfg)
	s.SetSeq(1<<32 - 1)
	buf := make([]byte, 200)
	if _, err := s.Seal(buf, 64, 10, NextIPv4); !errors.Is(err, ErrSeqExhausted) {
		t.Fatalf("32-bit wrap: %v", err)
	}
	c := suites()[1].cfg
	c.ESN = true
	s, _ = New(c)
	s.SetSeq(1<<32 - 1)
	if _, err := s.Seal(buf, 64, 10, NextIPv4); err != nil {
		t.Fatalf("ESN crosses 2^32: %v", err)
	}
	s.SetSeq(1<<64 - 1)
	if _, err := s.Seal(buf, 64, 10, NextIPv4); !errors.Is(err, ErrSeqExhausted) {
		t.Fatalf("64-bit wrap: %v", err)
	}
	if _, err := s.Seal(buf, 4, 10, NextIPv4); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("no head room: %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{
		{EncrID: EncrAESGCM16, EncrKeyBits: 256, EncrKey: key(32, 0)},                  // no salt
		{EncrID: EncrAESGCM16, EncrKeyBits: 128, EncrKey: key(36, 0)},                  // size mismatch
		{EncrID: EncrAESGCM16, EncrKey: key(36, 0), IntegID: 12, IntegKey: key(32, 0)}, // AEAD + integ
		{EncrID: EncrAESCBC, EncrKey: key(32, 0)},                                      // no integ
		{EncrID: EncrAESCBC, EncrKey: key(32, 0), IntegID: 12, IntegKey: key(20, 0)},
		{EncrID: 3, EncrKey: key(24, 0)},                    // 3DES
		{EncrID: 18, EncrKeyBits: 128, EncrKey: key(20, 0)}, // GCM with 8-octet ICV
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%d/%d, %d octets, integ %d) succeeded", c.EncrID, c.EncrKeyBits, len(c.EncrKey), c.IntegID)
		}
	}
}

func TestAH(t *testing.T) {
	for _, esn := range []bool{false, true} {
		for _, integ := range []struct {
			id uint16
			n  int
		}{{IntegHMACSHA2_256_128, 32}, {IntegHMACSHA2_384_192, 48}, {IntegHMACSHA2_512_256, 64}} {
			t.Run(fmt.Sprintf("%d/esn=%v", integ.id, esn), func(t *testing.T) {
				c := Config{SPI: 0x1000, IntegID: integ.id, IntegKey: key(integ.n, 3), ESN: esn}
				out, _ := NewAH(c)
				in, _ := NewAH(c)
				if esn {
					out.SetSeq(1<<32 - 1)
					in.replay.top = 1<<32 - 5
				}
				inner := key(60, 7)
				buf := make([]byte, 128+len(inner))
				copy(buf[128:], inner)
				src, dst := [4]byte{192, 0, 2, 1}, [4]byte{192, 0, 2, 2}
				pkt, err := out.SealIPv4(buf, 128, len(inner), NextIPv4, src, dst, 0x1234)
				if err != nil {
					t.Fatal(err)
				}
				if ipv4Checksum(pkt[:20]) != 0 {
					t.Fatal("bad IPv4 header checksum")
				}
				if pkt[9] != ProtoAH || (12+int(pkt[21]+2)*4-12) != out.ahLen || out.ahLen%4 != 0 {
					t.Fatalf("header %x", pkt[:20+out.ahLen])
				}
				// Routers change TOS, TTL, flags and the checksum: still valid.
				mut := append([]byte(nil), pkt...)
				mut[1], mut[6], mut[8], mut[10] = 0xb8, 0x40, 12, mut[10]^0xff
				got, next, _, err := in.OpenIPv4(mut)
				if err != nil || next != NextIPv4 || !bytes.Equal(got, inner) {
					t.Fatalf("open: %v next %d", err, next)
				}
				if _, _, _, err := in.OpenIPv4(append([]byte(nil), pkt...)); !errors.Is(err, ErrReplay) {
					t.Fatalf("replay: %v", err)
				}
				for _, at := range []int{5, 13, 19, 20, 40, len(pkt) - 1} { // id, src, dst, next header, ICV/payload
					pkt2, _ := out.SealIPv4(buf, 128, len(inner), NextIPv4, src, dst, 0x1234)
					bad := append([]byte(nil), pkt2...)
					bad[at] ^= 1
					if _, _, _, err := in.OpenIPv4(bad); !errors.Is(err, ErrAuth) {
						t.Fatalf("flip at %d: %v, want ErrAuth", at, err)
					}
				}
			})
		}
	}
}
