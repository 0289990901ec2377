package kerberos

import (
	"context"
	"testing"
	"time"
)

// BenchmarkMainModeQuickModeKerberos measures an IKEv1 handshake with the
// GSS-API method — Main Mode (AES-CBC-128, SHA-256, MODP-2048) with the
// AP-REQ, AP-REP and wrapped HASHes, and one Quick Mode — between two
// in-process engines over transport.Pipe, through a real MIT KDC whose
// ticket is cached before the timer starts (a handshake then contacts no
// KDC). Compare ikev1's BenchmarkMainModeQuickModeMODP2048 (PSK).
func BenchmarkMainModeQuickModeKerberos(b *testing.B) {
	r := newRealm(b)
	ma, mb := r.methods(b, nil)
	p := newV1Pair(b, ma, mb, "aes128-sha256-modp2048")
	ctx := ctxT(b)
	if err := ma.PrepareGSS(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.a.Initiate(ctx, "a-b"); err != nil {
			b.Fatal(err)
		}
		// Tearing the SAs down is not part of the handshake.
		b.StopTimer()
		if _, err := p.a.Terminate(context.Background(), "a-b"); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for len(p.a.SAs())+len(p.b.SAs()) > 0 {
			if time.Now().After(deadline) {
				b.Fatal("the SAs were not deleted")
			}
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
	}
}
