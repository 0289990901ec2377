package kerberos

import (
	"testing"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/auth/psk"
)

// BenchmarkHandshakeKerberos measures a full IKE_SA_INIT + IKE_AUTH
// handshake with one Child SA (X25519, AES-GCM-256, PRF-HMAC-SHA2-256)
// between two in-process engines over transport.Pipe, authenticated with
// Kerberos through a real MIT KDC. The ticket cache is warm: the KDC is
// contacted once, before the timer starts. Each iteration also deletes the
// IKE SA (an INFORMATIONAL exchange), as BenchmarkHandshakePSK does.
func BenchmarkHandshakeKerberos(b *testing.B) {
	r := newRealm(b)
	ma, mb := r.methods(b, nil)
	benchmarkHandshake(b, ma, mb)
}

// BenchmarkHandshakePSK is BenchmarkHandshakeKerberos with a pre-shared
// key, for comparison in the same run.
func BenchmarkHandshakePSK(b *testing.B) {
	secret, err := psk.NewSecret([]byte("correct horse battery staple"))
	if err != nil {
		b.Fatal(err)
	}
	m := psk.New(secret)
	benchmarkHandshake(b, m, m)
}

func benchmarkHandshake(b *testing.B, ma, mb auth.Method) {
	p := newPair(b, ma, mb)
	ctx := ctxT(b)
	if _, err := p.a.InitiateNew(ctx, "a-b"); err != nil { // warms the ticket cache
		b.Fatalf("%v\n%s", err, p.logB)
	}
	if _, err := p.a.Terminate(ctx, "a-b"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.a.InitiateNew(ctx, "a-b"); err != nil {
			b.Fatal(err)
		}
		if _, err := p.a.Terminate(ctx, "a-b"); err != nil {
			b.Fatal(err)
		}
	}
}
