package ikev1

import (
	"crypto/rand"
	"io"
	"log/slog"
	"testing"

	"github.com/iked/iked/transform"
)

// BenchmarkMainModeQuickMode measures a full IKEv1 handshake: Main Mode
// (PSK, AES-CBC-256, SHA-256, ECP-256: six messages) and one Quick Mode
// (three messages, no PFS) between two in-process engines joined by an
// in-memory pipe: the IKEv1 counterpart of ike's BenchmarkHandshake
// (X25519 there: IKEv1 has no Curve25519).
func BenchmarkMainModeQuickMode(b *testing.B) {
	benchmarkMainMode(b, "aes256-sha256-ecp256")
}

// BenchmarkMainModeQuickModeMODP2048 is the same with MODP-2048, charon's
// and Windows' usual group.
func BenchmarkMainModeQuickModeMODP2048(b *testing.B) {
	benchmarkMainMode(b, "aes256-sha256-modp2048")
}

func benchmarkMainMode(b *testing.B, proposal string) {
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := newPair(b, func(ca, cb *Connection, fa, fb *Config) {
		ca.IKEProposals, cb.IKEProposals = mustIKE(b, proposal), mustIKE(b, proposal)
		fa.Logger, fb.Logger = logger, logger
	})
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.a.Initiate(ctx, "a-b"); err != nil {
			b.Fatal(err)
		}
		// Tearing the SAs down is not part of the handshake.
		b.StopTimer()
		for _, e := range []*Engine{p.a, p.b} {
			for _, sa := range e.allSAs() {
				sa.destroy("bench", false)
			}
		}
		waitFor(b, "the SA tables to empty", func() bool { return len(p.a.allSAs()) == 0 && len(p.b.allSAs()) == 0 })
		b.StartTimer()
	}
}

// BenchmarkMainModeDHCeiling times the ECP-256 work both ends of
// BenchmarkMainModeQuickMode do per handshake.
func BenchmarkMainModeDHCeiling(b *testing.B) {
	g := transform.GroupByID(transform.DHECP256)
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
