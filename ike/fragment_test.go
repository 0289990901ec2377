package ike

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/iked/iked/ike/wire"
)

// manySelectors makes an IKE_AUTH too large for one small fragment.
func manySelectors(t *testing.T, base string) []wire.TrafficSelector {
	var s []string
	for i := range 24 {
		s = append(s, fmt.Sprintf("%s.%d.0/24", base, i))
	}
	return mustTS(t, s...)
}

func fragmentPair(t *testing.T, size int) *pair {
	return newPair(t, func(ca, cb *Connection, cfgA, cfgB *Config) {
		cfgA.FragmentSize, cfgB.FragmentSize = size, size
		ca.LocalTS, ca.RemoteTS = manySelectors(t, "10.1"), manySelectors(t, "10.2")
		cb.LocalTS, cb.RemoteTS = manySelectors(t, "10.2"), manySelectors(t, "10.1")
	})
}

func countSKF(counter *atomic.Int32, drop func(n int32, f *wire.EncryptedFragment) bool) func([]byte) bool {
	return func(b []byte) bool {
		m, err := wire.Parse(b)
		if err != nil || len(m.Payloads) == 0 {
			return true
		}
		if f, ok := m.Payloads[len(m.Payloads)-1].(*wire.EncryptedFragment); ok {
			n := counter.Add(1)
			if len(b) > 300 {
				panic(fmt.Sprintf("fragment of %d octets exceeds the fragment size", len(b)))
			}
			return drop == nil || !drop(n, f)
		}
		return true
	}
}

// TestFragmentation: with a small fragment size both IKE_AUTH messages go
// as RFC 7383 fragments, each within the size, and the SA establishes.
func TestFragmentation(t *testing.T) {
	p := fragmentPair(t, 300)
	var fromA, fromB atomic.Int32
	p.ba.Filter = countSKF(&fromA, nil)
	p.bb.Filter = countSKF(&fromB, nil)
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if fromA.Load() < 2 || fromB.Load() < 2 {
		t.Fatalf("fragments sent: %d by the initiator, %d by the responder", fromA.Load(), fromB.Load())
	}
	if len(infos[0].Children) != 1 || len(infos[0].Children[0].LocalTS) != 24 {
		t.Fatalf("child: %+v", infos[0].Children)
	}
}

// TestFragmentLost: the second fragment of the first IKE_AUTH request is
// lost; the initiator retransmits all fragments and the handshake completes.
func TestFragmentLost(t *testing.T) {
	p := fragmentPair(t, 300)
	var fromA atomic.Int32
	p.ba.Filter = countSKF(&fromA, func(n int32, f *wire.EncryptedFragment) bool { return n == 2 })
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	if p.a.Stats().Retransmissions != 1 {
		t.Fatalf("retransmissions = %d", p.a.Stats().Retransmissions)
	}
}

// TestNoFragmentationWhenOff: a peer that does not announce RFC 7383 gets
// whole messages, however large.
func TestNoFragmentationWhenOff(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, cfgA, cfgB *Config) {
		cfgA.FragmentSize, cfgB.FragmentSize = 300, 300
		cfgB.NoFragmentation = true
		ca.LocalTS, ca.RemoteTS = manySelectors(t, "10.1"), manySelectors(t, "10.2")
		cb.LocalTS, cb.RemoteTS = manySelectors(t, "10.2"), manySelectors(t, "10.1")
	})
	var frags atomic.Int32
	p.ba.Filter = countSKF(&frags, nil)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	if frags.Load() != 0 {
		t.Fatalf("%d fragments sent to a peer without RFC 7383", frags.Load())
	}
}

// TestReassemblyBounds: fragments beyond the count or size limits, and
// duplicates, are not kept; a new message discards an unfinished one.
func TestReassemblyBounds(t *testing.T) {
	p := newPair(t)
	sa := &ikeSA{eng: p.a, fragments: true}
	hdr := &wire.Header{MessageID: 5}
	frag := func(n, total uint16) *wire.EncryptedFragment {
		return &wire.EncryptedFragment{Number: n, Total: total, First: wire.PayloadNotify}
	}
	if _, _, err := sa.reassemble(hdr, frag(1, maxFragments+1), make([]byte, 10)); err == nil || err == errIncomplete {
		t.Fatalf("total above the limit: %v", err)
	}
	if _, _, err := sa.reassemble(hdr, frag(3, 2), make([]byte, 10)); err == nil || err == errIncomplete {
		t.Fatalf("number above total: %v", err)
	}
	// Fragments count by the size of the message they make up: the
	// maximum message size bounds it.
	limit := p.a.cfg.MaxMessageSize
	chunk := limit / 4
	for n := uint16(1); n <= 3; n++ {
		if _, _, err := sa.reassemble(hdr, frag(n, 4), make([]byte, chunk)); err != errIncomplete {
			t.Fatalf("fragment %d: %v", n, err)
		}
	}
	if _, _, err := sa.reassemble(hdr, frag(2, 4), make([]byte, 10)); err != errIncomplete || sa.reqFragments.have != 3 {
		t.Fatalf("duplicate changed the state: %v, have %d", err, sa.reqFragments.have)
	}
	if _, _, err := sa.reassemble(hdr, frag(4, 4), make([]byte, limit-3*chunk+1)); !errors.Is(err, errOversize) || sa.reqFragments != nil {
		t.Fatalf("one octet over the size limit: %v, kept %v", err, sa.reqFragments)
	}
	if _, _, err := sa.reassemble(hdr, frag(1, 2), make([]byte, 10)); err != errIncomplete {
		t.Fatal(err)
	}
	if _, _, err := sa.reassemble(&wire.Header{MessageID: 6}, frag(1, 2), make([]byte, 10)); err != errIncomplete || sa.reqFragments.msgID != 6 || sa.reqFragments.have != 1 {
		t.Fatalf("a new message did not replace the old: %+v", sa.reqFragments)
	}
	// A whole message: one notify split over two fragments.
	n := wire.AppendPayloads(nil, []wire.Payload{&wire.Notify{Code: wire.NotifyInitialContact, Data: []byte("abcdef")}})
	if _, _, err := sa.reassemble(&wire.Header{MessageID: 7}, frag(2, 2), append([]byte(nil), n[5:]...)); err != errIncomplete {
		t.Fatal(err)
	}
	first, whole, err := sa.reassemble(&wire.Header{MessageID: 7}, frag(1, 2), append([]byte(nil), n[:5]...))
	var ps []wire.Payload
	if err == nil {
		ps, err = wire.ParsePayloads(first, whole)
	}
	if err != nil || wire.FindNotify(ps, wire.NotifyInitialContact) == nil {
		t.Fatalf("reassembled %v, %v", ps, err)
	}
}
