package ike

import (
	"encoding/binary"
	"testing"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
)

// HeldEngine returns a responder engine (benchResponder's: PSK, the
// memory data plane) holding n established IKE SAs, each with one Child
// SA negotiated in IKE_AUTH: for benchmarks outside the package, such as
// the metrics scrape at 10,000 and 100,000 SAs (scrape_bench_test.go).
func HeldEngine(tb testing.TB, n int) *Engine {
	tb.Helper()
	r := newBenchResponder(tb)
	for i := range n {
		bi, req := r.saInit(tb, i, identityFor(i, false))
		r.eng.handlePacket(r.bind, bi.from, req)
		authReq := bi.authWithChild(tb, r, r.bind.take(), uint32(i)+0x1000)
		r.eng.handlePacket(r.bind, bi.from, authReq)
		bi.sa.keys.Wipe()
	}
	r.bind.last = nil
	return r.eng
}

// authWithChild is auth with a Child SA: IDi, AUTH, SA (the connection's
// ESP proposals with spi), TSi and TSr for the two IKE addresses.
func (bi *benchInitiator) authWithChild(tb testing.TB, r *benchResponder, resp []byte, spi uint32) []byte {
	m, err := wire.Parse(resp)
	if err != nil {
		tb.Fatal(err)
	}
	sa := bi.sa
	saP, _ := wire.Find(m.Payloads, wire.PayloadSA).(*wire.SA)
	ke, _ := wire.Find(m.Payloads, wire.PayloadKE).(*wire.KE)
	nonce, _ := wire.Find(m.Payloads, wire.PayloadNonce).(*wire.Nonce)
	if saP == nil || ke == nil || nonce == nil {
		tb.Fatalf("IKE_SA_INIT response without SA, KE, Nonce: %v", m.Payloads)
	}
	sa.suite = acceptChosen(r.conn.IKEProposals, saP, wire.ProtoIKE, true)
	sa.spir, sa.nr, sa.msgR = m.Header.SPIr, append([]byte(nil), nonce.Data...), resp
	shared, err := bi.dh.SharedSecret(ke.Data)
	if err != nil {
		tb.Fatal(err)
	}
	if err := sa.deriveKeys(shared); err != nil {
		tb.Fatal(err)
	}
	s, err := mustPSK(tb, benchPSK).NewSession(&auth.Params{Initiator: true, PRF: sa.suite.prf, SPIi: sa.spii, SPIr: sa.spir})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	idi := bi.id.Payload(false)
	proof, err := s.Prove(sa.signedOctets(true, idi), m.Payloads)
	if err != nil {
		tb.Fatal(err)
	}
	var spiB [4]byte
	binary.BigEndian.PutUint32(spiB[:], spi)
	ps := append(append([]wire.Payload{idi}, proof...),
		&wire.SA{Proposals: toWire(r.conn.ESPProposals, wire.ProtoESP, spiB[:], false)},
		&wire.TS{Selectors: []wire.TrafficSelector{HostSelector(bi.from.Addr())}},
		&wire.TS{Responder: true, Selectors: []wire.TrafficSelector{HostSelector(r.bind.local.Addr())}})
	pkts, err := sa.sealMessage(wire.IKE_AUTH, 1, false, ps)
	if err != nil {
		tb.Fatal(err)
	}
	return pkts[0]
}
