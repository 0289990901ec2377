package ike

import (
	"crypto/rand"
	"io"
	"log/slog"
	"testing"

	"github.com/iked/iked/transform"
)

// BenchmarkHandshake measures a full IKE_SA_INIT + IKE_AUTH handshake
// (X25519, AES-GCM-256, PRF-HMAC-SHA2-256, PSK, one Child SA) between two
// in-process engines joined by an in-memory pipe.
//
// Logging is at warn level, so that the engine is measured rather than the
// log sink; BenchmarkHandshakeInfoLog shows what info lines add.
func BenchmarkHandshake(b *testing.B) {
	benchmarkHandshake(b, slog.LevelWarn)
}

// BenchmarkHandshakeInfoLog is BenchmarkHandshake with the daemon's default
// info-level lines formatted to a discarding text handler.
func BenchmarkHandshakeInfoLog(b *testing.B) {
	benchmarkHandshake(b, slog.LevelInfo)
}

func benchmarkHandshake(b *testing.B, level slog.Level) {
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}))
	p := newPair(b, func(_, _ *Connection, ca, cb *Config) { ca.Logger, cb.Logger = logger, logger })
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.a.InitiateNew(ctx, "a-b"); err != nil {
			b.Fatal(err)
		}
		// Tearing the SAs down is not part of the handshake.
		b.StopTimer()
		for _, sa := range p.a.allSAs() {
			sa.destroy("bench")
		}
		for _, sa := range p.b.allSAs() {
			sa.destroy("bench")
		}
		b.StartTimer()
	}
}

// BenchmarkHandshakeDHCeiling times the Diffie-Hellman work both endpoints
// of BenchmarkHandshake do per handshake (two key generations and two
// shared secrets): its ops/s is the ceiling the handshake is measured
// against.
func BenchmarkHandshakeDHCeiling(b *testing.B) {
	g := transform.GroupByID(transform.DHCurve25519)
	b.ReportAllocs()
	for b.Loop() {
		ki, err := g.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		kr, err := g.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := kr.SharedSecret(ki.Public()); err != nil {
			b.Fatal(err)
		}
		if _, err := ki.SharedSecret(kr.Public()); err != nil {
			b.Fatal(err)
		}
	}
}
