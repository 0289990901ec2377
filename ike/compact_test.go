package ike

import (
	"bytes"
	"testing"
)

// An established responder SA keeps none of its handshake state, keeps
// only SK_d of its IKE keys, and still answers: a retransmitted IKE_AUTH
// gets the same response from the cache, and a retransmitted IKE_SA_INIT
// (the same SPIi from the same peer) is not answered from a half-open SA
// any more. Destroying it afterwards works without the handshake state.
func TestReleasedHandshake(t *testing.T) {
	r := newBenchResponder(t)
	bi, req := r.saInit(t, 1, identityFor(1, false))
	r.eng.handlePacket(r.bind, bi.from, req)
	authReq := bi.auth(t, r, r.bind.take())
	r.eng.handlePacket(r.bind, bi.from, authReq)
	resp := r.bind.take()
	bi.checkAuthResponse(t, resp)

	sas := r.eng.allSAs()
	if len(sas) != 1 {
		t.Fatalf("%d SAs", len(sas))
	}
	sa := sas[0]
	sa.mu.Lock()
	released := sa.saHandshake == nil
	keys := sa.keys
	sa.mu.Unlock()
	if !released {
		t.Fatal("established responder SA kept its handshake state")
	}
	if len(keys.SkD) == 0 || keys.SkEi != nil || keys.SkEr != nil || keys.SkPi != nil || keys.SkPr != nil {
		t.Fatal("established SA kept IKE keys other than SK_d")
	}

	r.bind.last = nil
	r.eng.handlePacket(r.bind, bi.from, authReq)
	if again := r.bind.take(); !bytes.Equal(again, resp) {
		t.Fatal("retransmitted IKE_AUTH not answered with the cached response")
	}
	if r.eng.sas.getHalfOpen(sa.initKey) != nil {
		t.Fatal("established SA still in the half-open index")
	}

	sa.destroy("test")
	if got := len(r.eng.allSAs()); got != 0 {
		t.Fatalf("%d SAs after destroy", got)
	}
}
