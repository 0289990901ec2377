package userspace

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// rfc1071 is the plain 16-bit Internet checksum sum (uncomplemented), the
// reference csumAdd is held to.
func rfc1071(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// TestCsumAdd: the eight-octet sum folds to the 16-bit one for every
// length, alone and summed in even-length pieces, including the carries
// of all-ones data.
func TestCsumAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := csumFold(csumAdd(0, b)), rfc1071(b); got != want {
			t.Fatalf("length %d: %#04x, want %#04x", n, got, want)
		}
		cut := (n / 3) &^ 1
		if got, want := csumFold(csumAdd(csumAdd(0, b[:cut]), b[cut:])), rfc1071(b); got != want {
			t.Fatalf("length %d in two pieces: %#04x, want %#04x", n, got, want)
		}
		for i := range b {
			b[i] = 0xff
		}
		if got, want := csumFold(csumAdd(0xffffffffffffffff, b)), rfc1071(b); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Fatalf("length %d of ones: %#04x, want %#04x", n, got, want)
		}
	}
}

func BenchmarkCsumAdd1400(b *testing.B) {
	buf := make([]byte, 1400)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		csumAdd(0, buf)
	}
}
