package ike

import (
	"testing"

	"github.com/iked/iked/ike/wire"
)

// Responder SAs negotiated alike share one suite; an ESP suite (with the
// peer's SPI) or another proposal number is not merged with it.
func TestInternSuite(t *testing.T) {
	r := newBenchResponder(t)
	props := toWire(r.conn.IKEProposals, wire.ProtoIKE, nil, true)
	a := selectProposal(r.conn.IKEProposals, props, wire.ProtoIKE, true)
	b := selectProposal(r.conn.IKEProposals, props, wire.ProtoIKE, true)
	if a == nil || a == b {
		t.Fatal("selectProposal should return a new suite each time")
	}
	ia, ib := r.eng.internSuite(a), r.eng.internSuite(b)
	if ia != ib || ia.String() != a.String() {
		t.Fatalf("equal suites not shared: %p %p", ia, ib)
	}
	other := *b
	other.number = 7
	if r.eng.internSuite(&other) == ia {
		t.Fatal("suites of different proposal numbers merged")
	}
	esp := *b
	esp.spi = []byte{1, 2, 3, 4}
	if r.eng.internSuite(&esp) != &esp {
		t.Fatal("a suite with an SPI was interned")
	}
	// Through a handshake: two SAs, one suite.
	for i := range 2 {
		r.handshake(t, i, false)
	}
	sas := r.eng.allSAs()
	if len(sas) != 2 || sas[0].suite != sas[1].suite {
		t.Fatal("two SAs negotiated alike hold different suites")
	}
}
