package transform

import (
	"bytes"
	"testing"
)

// fuzzSuites are the protections FuzzOpen exercises, selected by the first
// argument modulo their number.
var fuzzSuites = []suite{
	{EncrByID(EncrAESGCM16), 256, nil},
	{EncrByID(EncrAESCBC), 128, IntegByID(IntegHMACSHA2_256_128)},
}

// FuzzOpen feeds arbitrary SK bodies and AADs to Protector.Open, which must
// never panic, must fail with ErrIntegrity or ErrMalformed, and may only
// succeed on what the matching Seal could have produced.
func FuzzOpen(f *testing.F) {
	ps := make([]*Protector, len(fuzzSuites))
	for i, s := range fuzzSuites {
		ps[i] = s.protector(f)
	}
	for i, p := range ps {
		aad := fakeAAD(32)
		for _, n := range []int{0, 15, 200} {
			msg, err := p.Seal(bytes.Clone(aad), seqBytes(n, 1), bytes.NewReader(seqBytes(16, 0x55)))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), aad, msg[len(aad):])
		}
		f.Add(uint8(i), aad, []byte{})
	}
	f.Fuzz(func(t *testing.T, which uint8, aad, body []byte) {
		p := ps[int(which)%len(ps)]
		plain, err := p.Open(aad, body)
		if err != nil {
			if err != ErrIntegrity && err != ErrMalformed {
				t.Fatalf("Open: unexpected error %v", err)
			}
			return
		}
		// It authenticated: sealing the plaintext again with the same IV
		// must give back a body of the same length that opens the same.
		iv := body[:p.encr.IVLen]
		msg, err := p.Seal(bytes.Clone(aad), plain, bytes.NewReader(iv))
		if err != nil {
			t.Fatal(err)
		}
		again, err := p.Open(aad, msg[len(aad):])
		if err != nil || !bytes.Equal(again, plain) {
			t.Fatalf("re-sealed plaintext does not open: %v", err)
		}
	})
}
