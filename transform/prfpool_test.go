package transform

import (
	"bytes"
	"crypto/hmac"
	"math/rand/v2"
	"sync"
	"testing"
)

// The pooled PRF gives what crypto/hmac gives, for keys shorter than,
// equal to and longer than the hash's block (hashed first, RFC 2104), and
// for prf+ of every length, including when goroutines share the pool.
func TestPRFMatchesHMAC(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range []*PRF{prfSHA256, prfSHA384, prfSHA512} {
		for _, keyLen := range []int{0, 1, 16, 32, 63, 64, 65, 127, 128, 129, 256, 300} {
			key := make([]byte, keyLen)
			data := make([]byte, r.IntN(600))
			for i := range key {
				key[i] = byte(r.Uint32())
			}
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			h := hmac.New(p.newHash, key)
			h.Write(data)
			want := h.Sum([]byte("prefix"))
			if got := p.Sum([]byte("prefix"), key, data); !bytes.Equal(got, want) {
				t.Fatalf("%s key %d octets: Sum differs from crypto/hmac", p.Name, keyLen)
			}
			// prf+ (§2.13) computed with crypto/hmac.
			n := 1 + r.IntN(5*p.Size)
			got, err := p.Plus(key, data, n)
			if err != nil || !bytes.Equal(got, prfPlusManualHash(p.newHash, key, data, n)) {
				t.Fatalf("%s key %d octets: prf+ of %d differs from crypto/hmac (%v)", p.Name, keyLen, n, err)
			}
		}
	}
	// Shared by goroutines (the race detector runs this too).
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := bytes.Repeat([]byte{byte(g)}, 40+g*20)
			h := hmac.New(prfSHA256.newHash, key)
			h.Write(key)
			want := h.Sum(nil)
			for range 200 {
				if got := prfSHA256.Sum(nil, key, key); !bytes.Equal(got, want) {
					t.Error("concurrent Sum differs from crypto/hmac")
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A PRF computation allocates nothing beyond its result.
func TestPRFSumAllocs(t *testing.T) {
	key, data := make([]byte, 64), make([]byte, 300)
	dst := make([]byte, 0, 64)
	prfSHA256.Sum(dst, key, data) // fill the pool
	if n := testing.AllocsPerRun(100, func() { prfSHA256.Sum(dst[:0], key, data) }); n != 0 {
		t.Fatalf("Sum allocates %.0f times, want 0", n)
	}
}

// BenchmarkPRFSum is one PRF computation as the handshake makes them
// (SKEYSEED: a 64-octet key of nonces over a 32-octet shared secret),
// against crypto/hmac.New for each.
func BenchmarkPRFSum(b *testing.B) {
	key, data := make([]byte, 64), make([]byte, 32)
	dst := make([]byte, 0, 64)
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			prfSHA256.Sum(dst[:0], key, data)
		}
	})
	b.Run("hmac.New", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h := hmac.New(prfSHA256.newHash, key)
			h.Write(data)
			h.Sum(dst[:0])
		}
	})
}
