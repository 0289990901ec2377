package cert

import (
	"crypto"
	"log/slog"
	"testing"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/internal/enginetest"
	"github.com/iked/iked/internal/testpki"
)

// benchKeys are the key types benchmarked, with the scheme "auto" picks
// for each towards a peer that announces SHA-2 and identity hashes.
var benchKeys = []struct {
	kind   string
	scheme Scheme
}{
	{"rsa2048", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA256, PSS: true, SaltLength: 32}},
	{"rsa4096", Scheme{Method: wire.AuthDigitalSig, kind: kindRSA, Hash: crypto.SHA256, PSS: true, SaltLength: 32}},
	{"p256", Scheme{Method: wire.AuthDigitalSig, kind: kindECDSA, Hash: crypto.SHA256}},
	{"p384", Scheme{Method: wire.AuthDigitalSig, kind: kindECDSA, Hash: crypto.SHA384}},
	{"ed25519", Scheme{Method: wire.AuthDigitalSig, kind: kindEd25519}},
}

// BenchmarkHandshakeCert measures a full IKE_SA_INIT + IKE_AUTH handshake
// (X25519, AES-GCM-256, one Child SA) between two in-process engines
// authenticating with certificates of one key type (leaf, intermediate
// and root; the peer's verified chain is cached after the first
// handshake). Deleting the SA after each handshake is not timed.
func BenchmarkHandshakeCert(b *testing.B) {
	p := testpki.New(b, "bench", "p256", 0)
	for _, k := range benchKeys {
		b.Run(k.kind, func(b *testing.B) {
			sa, sb := certPair(b, p, k.kind, k.kind)
			ma, mb := sa.method(b), sb.method(b)
			var rec recorder
			ma.onProve = rec.hook
			pr := newPair(b, ma, mb, enginetest.FQDN("a.example"), enginetest.FQDN("b.example"), slog.LevelWarn)
			ctx := enginetest.Context(b)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := pr.A.InitiateNew(ctx, "a-b"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := pr.A.Terminate(ctx, "a-b"); err != nil {
					b.Fatal(err)
				}
				waitFor(b, "responder to delete", func() bool { return len(pr.B.SAs()) == 0 })
				b.StartTimer()
			}
			if got := rec.get(true); got.String() != k.scheme.String() {
				b.Fatalf("signed with %s, benchmarked %s", got, k.scheme)
			}
		})
	}
}

var benchData = make([]byte, 600) // about the size of InitiatorSignedOctets

// BenchmarkSign is the cost of one AUTH signature; with BenchmarkVerify it
// gives the ceiling of BenchmarkHandshakeCert, where each side signs once
// and verifies once.
func BenchmarkSign(b *testing.B) {
	for _, k := range benchKeys {
		b.Run(k.kind, func(b *testing.B) {
			key := testpki.Key(b, k.kind, "")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sign(key, k.scheme, benchData, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify is the cost of verifying one AUTH signature.
func BenchmarkVerify(b *testing.B) {
	for _, k := range benchKeys {
		b.Run(k.kind, func(b *testing.B) {
			key := testpki.Key(b, k.kind, "")
			sig, err := sign(key, k.scheme, benchData, nil)
			if err != nil {
				b.Fatal(err)
			}
			a := &wire.Auth{Method: k.scheme.Method, Data: sig}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := verifyAuth(key.Public(), a, benchData); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
