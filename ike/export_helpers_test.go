package ike

import (
	"testing"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// TestExportedInitiatorHelpers: an offer made with ProposalsToWire, answered
// by the engine's responder choice, is accepted by AcceptIKESuite with the
// transforms chosen; an answer naming something not offered is refused;
// the Child SA offer of IKE_AUTH carries no DH transform (§1.2) and says
// "no ESN".
func TestExportedInitiatorHelpers(t *testing.T) {
	offer := mustIKE(t, "aes128-sha256-modp2048", "aes256gcm16-prfsha384-ecp384-x25519")
	ours := mustIKE(t, "aes256gcm16-prfsha384-x25519")
	wp := ProposalsToWire(offer, wire.ProtoIKE, nil, true)
	s := selectProposal(ours, wp, wire.ProtoIKE, true)
	if s == nil {
		t.Fatal("the responder found nothing in the offer")
	}
	answer := s.wire(nil)
	got, ok := AcceptIKESuite(offer, &answer)
	if !ok || got.Encr.ID != transform.EncrAESGCM16 || got.KeyBits != 256 || got.PRF.ID != transform.PRFHMACSHA2_384 ||
		got.Integ != nil || got.Group.ID() != transform.DHCurve25519 {
		t.Fatalf("accepted %+v, %v", got, ok)
	}
	// The same transforms under the other proposal's number were not
	// offered together.
	answer.Proposals[0].Number = 1
	if _, ok := AcceptIKESuite(offer, &answer); ok {
		t.Error("accepted a choice from the wrong proposal")
	}
	if _, ok := AcceptIKESuite(offer, &wire.SA{}); ok {
		t.Error("accepted an answer without a proposal")
	}

	esp := ProposalsToWire(mustESP(t, "aes128-sha256-modp2048"), wire.ProtoESP, []byte{1, 2, 3, 4}, false)
	var dh, esn int
	for _, tr := range esp[0].Transforms {
		switch tr.Type {
		case wire.TransformDH:
			dh++
		case wire.TransformESN:
			if tr.ID == transform.ESNNo {
				esn++
			}
		}
	}
	if dh != 0 || esn != 1 || esp[0].Number != 1 || string(esp[0].SPI) != "\x01\x02\x03\x04" {
		t.Errorf("IKE_AUTH ESP offer %+v", esp)
	}
}
