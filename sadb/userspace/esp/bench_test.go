package esp

import (
	"fmt"
	"testing"
)

var benchSuites = []suite{
	{"AES-GCM-256", Config{SPI: 0x1000, EncrID: EncrAESGCM16, EncrKeyBits: 256, EncrKey: key(36, 1)}},
	{"AES-CBC-256+HMAC-SHA256", Config{SPI: 0x1000, EncrID: EncrAESCBC, EncrKeyBits: 256, EncrKey: key(32, 1), IntegID: IntegHMACSHA2_256_128, IntegKey: key(32, 9)}},
	{"ChaCha20-Poly1305", Config{SPI: 0x1000, EncrID: EncrChaCha20Poly1305, EncrKey: key(36, 1)}},
}

const benchHead = 64

func BenchmarkEncrypt(b *testing.B) {
	for _, su := range benchSuites {
		for _, n := range []int{64, 512, 1400} {
			b.Run(fmt.Sprintf("%s/%d", su.name, n), func(b *testing.B) {
				s, err := New(su.cfg)
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, benchHead+n+64)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Seal(buf, benchHead, n, NextIPv4); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	for _, su := range benchSuites {
		for _, n := range []int{64, 512, 1400} {
			b.Run(fmt.Sprintf("%s/%d", su.name, n), func(b *testing.B) {
				c := su.cfg
				c.ESN = true // the window never refuses within 2^64
				out, err := New(c)
				if err != nil {
					b.Fatal(err)
				}
				in, _ := New(c)
				// A ring of sealed packets, re-sealed in place when used up
				// (outside the timer), decrypted in order.
				const ring = 1024
				bufs := make([][]byte, ring)
				pkts := make([][]byte, ring)
				fill := func() {
					for i := range bufs {
						if bufs[i] == nil {
							bufs[i] = make([]byte, benchHead+n+64)
						}
						p, err := out.Seal(bufs[i], benchHead, n, NextIPv4)
						if err != nil {
							b.Fatal(err)
						}
						pkts[i] = p
					}
				}
				fill()
				b.SetBytes(int64(n))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i == ring {
						b.StopTimer()
						fill()
						i = 0
						b.StartTimer()
					}
					if _, _, _, err := in.Open(pkts[i]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
