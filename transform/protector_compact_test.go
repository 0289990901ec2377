package transform

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

// A compact Protector keeps no cipher state between messages and still
// interoperates, message after message, with one that does.
func TestProtectorCompact(t *testing.T) {
	for _, s := range allSuites() {
		t.Run(s.String(), func(t *testing.T) {
			full, compact := s.protector(t), s.protector(t)
			compact.SetCompact()
			check := func() {
				t.Helper()
				if compact.st != nil {
					t.Fatal("compact protector kept its cipher state")
				}
			}
			check()
			for n := range 3 {
				aad := fakeAAD(32)
				plain := seqBytes(20+n, byte(n))
				msg, err := compact.Seal(bytes.Clone(aad), plain, rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				check()
				if got, err := full.Open(msg[:len(aad)], msg[len(aad):]); err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("message %d sealed compact: %x, %v", n, got, err)
				}
				msg, err = full.Seal(bytes.Clone(aad), plain, rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := compact.Open(msg[:len(aad)], msg[len(aad):]); err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("message %d opened compact: %x, %v", n, got, err)
				}
				check()
				msg[len(msg)-1] ^= 1
				if _, err := compact.Open(msg[:len(aad)], msg[len(aad):]); !errors.Is(err, ErrIntegrity) {
					t.Fatalf("tampered message: %v, want ErrIntegrity", err)
				}
				check()
			}
		})
	}
}

// NewProtector copies the keys: the caller may wipe its own. Wipe zeroes
// the Protector's copy, and a wiped Protector refuses to work rather than
// use a zero key.
func TestProtectorKeysCopiedAndWiped(t *testing.T) {
	for _, s := range allSuites() {
		t.Run(s.String(), func(t *testing.T) {
			ek, ik := s.keys()
			p, err := NewProtector(s.encr, ek, s.integ, ik)
			if err != nil {
				t.Fatal(err)
			}
			peer := s.protector(t)
			clear(ek)
			clear(ik)
			p.SetCompact() // the next message is keyed from the copy
			aad := fakeAAD(32)
			msg, err := p.Seal(bytes.Clone(aad), []byte("hello"), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := peer.Open(msg[:len(aad)], msg[len(aad):]); err != nil || string(got) != "hello" {
				t.Fatalf("after the caller wiped its keys: %q, %v", got, err)
			}
			p.Wipe()
			for _, b := range [][]byte{p.key, p.ikey} {
				if !bytes.Equal(b, make([]byte, len(b))) {
					t.Fatalf("key not zeroed: %x", b)
				}
			}
			if _, err := p.Seal(bytes.Clone(aad), []byte("hello"), rand.Reader); err == nil {
				t.Fatal("Seal after Wipe succeeded")
			}
			if _, err := p.Open(msg[:len(aad)], msg[len(aad):]); err == nil {
				t.Fatal("Open after Wipe succeeded")
			}
		})
	}
}

// BenchmarkProtectorSealCompact is the cost of sealing a small message
// with the cipher state built for it (compact) and kept (full): what an
// idle SA's saved memory costs per message.
func BenchmarkProtectorSealCompact(b *testing.B) {
	s := suite{EncrByID(EncrAESGCM16), 256, nil}
	for _, compact := range []bool{false, true} {
		name := "full"
		if compact {
			name = "compact"
		}
		b.Run(name, func(b *testing.B) {
			p := s.protector(b)
			if compact {
				p.SetCompact()
			}
			aad, plain := fakeAAD(32), seqBytes(80, 1)
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Seal(append(buf[:0], aad...), plain, rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// NewProtectorPair makes two independent directions: what one side's out
// seals the other side's in opens, a direction cannot open its partner's
// messages, wiping one leaves the other working, and a bad key is refused.
func TestProtectorPair(t *testing.T) {
	aad := fakeAAD(32)
	for _, s := range allSuites() {
		t.Run(s.String(), func(t *testing.T) {
			ek, ik := s.keys()
			ek2, ik2 := bytes.Clone(ek), bytes.Clone(ik)
			ek2[0] ^= 0xff
			if ik2 != nil {
				ik2[0] ^= 0xff
			}
			aOut, aIn, err := NewProtectorPair(s.encr, s.integ, ek, ik, ek2, ik2)
			if err != nil {
				t.Fatal(err)
			}
			bOut, bIn, err := NewProtectorPair(s.encr, s.integ, ek2, ik2, ek, ik)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name    string
				seal    *Protector
				open    *Protector
				opens   bool
				message string
			}{
				{"a to b", aOut, bIn, true, "from a"},
				{"b to a", bOut, aIn, true, "from b"},
				{"a to itself", aOut, aIn, false, "looped"},
			} {
				msg, err := c.seal.Seal(bytes.Clone(aad), []byte(c.message), rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.open.Open(msg[:len(aad)], msg[len(aad):])
				if c.opens && (err != nil || string(got) != c.message) {
					t.Fatalf("%s: %q, %v", c.name, got, err)
				}
				if !c.opens && err == nil {
					t.Fatalf("%s: opened with the other direction's key", c.name)
				}
			}
			aOut.Wipe()
			if _, err := aIn.Open(aad, nil); errors.Is(err, errWiped) {
				t.Fatal("wiping out wiped in")
			}
			if _, _, err := NewProtectorPair(s.encr, s.integ, ek, ik, ek[:3], ik); err == nil {
				t.Fatal("short key accepted")
			}
		})
	}
}
