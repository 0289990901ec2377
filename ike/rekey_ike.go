package ike

import "github.com/iked/iked/ike/wire"

// respondRekeyIKE answers a CREATE_CHILD_SA that rekeys the IKE SA
// (§1.3.2). Not negotiated yet: refused with NO_ADDITIONAL_SAS, which
// §2.21.2 allows, so the peer reauthenticates instead. Caller holds mu.
func (sa *ikeSA) respondRekeyIKE(_ []wire.Payload) [][]byte {
	return sa.errorResponse(wire.CREATE_CHILD_SA, wire.NotifyNoAdditionalSAs, nil)
}
