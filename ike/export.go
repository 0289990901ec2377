package ike

import (
	"net/netip"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// What the engine's initiator does to build IKE_SA_INIT and check its
// answer, for programs that speak IKEv2 without an Engine (cmd/ikeload):
// one implementation, so that they offer and accept exactly what the
// engine does.

// ProposalsToWire turns configured proposals into the proposals of an SA
// payload, numbered from 1 (§3.3.1), as the engine offers them. spi is nil
// for IKE_SA_INIT. withDH false leaves DH transforms out, as for the Child
// SA of IKE_AUTH, whose keys come from the IKE SA (§1.2); ESP proposals
// without an ESN transform offer "no ESN".
func ProposalsToWire(props []transform.Proposal, proto wire.ProtocolID, spi []byte, withDH bool) []wire.Proposal {
	return toWire(props, proto, spi, withDH)
}

// IKESuite is the set of transforms a responder chose for an IKE SA.
type IKESuite struct {
	Encr    *transform.Encr
	KeyBits uint16 // of Encr; 0 when it has no Key Length attribute
	PRF     *transform.PRF
	Integ   *transform.Integ // nil for AEAD encryption
	Group   transform.Group
	// AddKE are the additional key exchanges chosen (RFC 9370), in the
	// order they run (ADDKE1 first); none for a classical suite.
	AddKE []transform.Group
}

// AcceptIKESuite checks the SA payload of a responder's IKE_SA_INIT
// answer against the proposals offered, as the engine's initiator does
// (§2.7: one proposal, one transform of each type, each in the offered
// proposal its number names). ok is false when the responder chose what
// was not offered.
func AcceptIKESuite(offered []transform.Proposal, sa *wire.SA) (s IKESuite, ok bool) {
	c := acceptChosen(offered, sa, wire.ProtoIKE, true)
	if c == nil {
		return IKESuite{}, false
	}
	return IKESuite{Encr: c.encr, KeyBits: c.keyBits, PRF: c.prf, Integ: c.integ, Group: c.group, AddKE: c.adds()}, true
}

// NATDetectionNotifies returns the NAT_DETECTION_SOURCE_IP and
// NAT_DETECTION_DESTINATION_IP notifies (§2.23) of a message sent from
// local to remote in the IKE SA with SPIs spii and spir (zero in the
// first IKE_SA_INIT request).
func NATDetectionNotifies(spii, spir uint64, local, remote netip.AddrPort) []wire.Payload {
	return natNotifies(spii, spir, local, remote)
}
