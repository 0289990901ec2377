package transform

import (
	"crypto/rand"
	"testing"
)

func BenchmarkDH(b *testing.B) {
	for _, id := range []uint16{DHModp2048, DHECP256, DHECP384, DHECP521, DHCurve25519} {
		g := GroupByID(id)
		b.Run(g.Name(), func(b *testing.B) {
			peer, err := g.GenerateKey(rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			peerPub := peer.Public()
			b.ReportAllocs()
			for b.Loop() {
				k, err := g.GenerateKey(rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := k.SharedSecret(peerPub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkProtector(b *testing.B) {
	plain := seqBytes(200, 1)
	aad := fakeAAD(32)
	for _, s := range []suite{
		{EncrByID(EncrAESCBC), 128, IntegByID(IntegHMACSHA2_256_128)},
		{EncrByID(EncrAESCBC), 256, IntegByID(IntegHMACSHA2_512_256)},
		{EncrByID(EncrAESGCM16), 128, nil},
		{EncrByID(EncrAESGCM16), 256, nil},
		{EncrByID(EncrChaCha20Poly1305), 0, nil},
	} {
		b.Run(s.String(), func(b *testing.B) {
			p := s.protector(b)
			buf := make([]byte, len(aad), len(aad)+p.SealedLen(len(plain)))
			copy(buf, aad)
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				msg, err := p.Seal(buf[:len(aad)], plain, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.Open(msg[:len(aad)], msg[len(aad):]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
