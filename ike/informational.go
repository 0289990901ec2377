package ike

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/iked/iked/ike/wire"
)

// respondInformational answers an INFORMATIONAL request (§1.4): Deletes of
// the IKE SA or of Child SAs, the empty liveness check, and notifies: an
// AUTHENTICATION_FAILED ends the IKE SA (the peer refused our AUTH after
// IKE_AUTH, §2.21.2), every other one is logged and counted (peerNotify).
// Caller holds mu, and runs after (when not nil) once it is released.
func (sa *ikeSA) respondInformational(inner []wire.Payload) (pkt [][]byte, after func()) {
	var resp []wire.Payload
	deleteIKE, refusedAuth := false, false
	var ourSPIs [][]byte
	for _, p := range inner {
		if n, ok := p.(*wire.Notify); ok {
			refusedAuth = sa.peerNotify(n) || refusedAuth
			continue
		}
		d, ok := p.(*wire.Delete)
		if !ok {
			continue
		}
		switch d.Protocol {
		case wire.ProtoIKE:
			deleteIKE = true
		case wire.ProtoESP, wire.ProtoAH:
			for _, spi := range d.SPIs {
				if len(spi) != 4 {
					continue
				}
				c := sa.childByPeerSPI(binary.BigEndian.Uint32(spi))
				if c == nil {
					continue // §1.4.1: already gone is fine
				}
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], c.inbound.SPI)
				ourSPIs = append(ourSPIs, b[:])
				sa.removeChild(c)
				sa.dropChild(c)
			}
		}
	}
	if !deleteIKE && len(ourSPIs) > 0 {
		// §1.4.1: answer a Child SA delete with the Delete of our half.
		resp = append(resp, &wire.Delete{Protocol: wire.ProtoESP, SPISize: 4, SPIs: ourSPIs})
	}
	pkt, err := sa.sealMessage(wire.INFORMATIONAL, sa.respID, true, resp)
	if err != nil {
		sa.log(slog.LevelError, "cannot seal INFORMATIONAL response", "err", err)
		return nil, nil
	}
	if deleteIKE && sa.peerIKERekey != nil && sa.rekeyedBy == nil {
		// The peer rekeyed this SA while our own rekey was outstanding and
		// now deletes it: its new SA survives and takes the Child SAs.
		pend := sa.peerIKERekey
		sa.peerIKERekey = nil
		h := sa.detachTo(pend)
		after = func() { pend.adopt(h) }
	}
	switch {
	case deleteIKE:
		// §1.4.1: deleting the IKE SA deletes its Child SAs; the response
		// is empty.
		sa.log(slog.LevelInfo, "peer deleted the IKE SA")
		sa.destroyLocked("deleted by peer")
	case refusedAuth:
		// The peer dropped its side already; ours goes at once, Child SAs
		// with it, rather than carry traffic into nothing until DPD.
		sa.eng.stats.failure(failureReason(wire.NotifyAuthenticationFailed))
		sa.eng.observeFailure(sa.remote.Addr(), sa.initiator, failureReason(wire.NotifyAuthenticationFailed))
		sa.destroyLocked("peer refused our authentication (AUTHENTICATION_FAILED)")
	}
	return pkt, after
}

// peerNotify acts on or logs one notify of an INFORMATIONAL request, and
// counts it. It reports whether the notify is AUTHENTICATION_FAILED: an
// initiator that refuses the responder's AUTH says so in a separate
// INFORMATIONAL after IKE_AUTH (§2.21.2) and deletes its side, so this
// side's IKE SA is dead. Error notifies are warnings; status notifies iked
// has no use for in INFORMATIONAL are logged as ignored (§3.10.1: "MUST be
// ignored", and should be logged). Caller holds mu.
func (sa *ikeSA) peerNotify(n *wire.Notify) bool {
	sa.eng.stats.notifyReceived(n.Code.String())
	switch {
	case n.Code == wire.NotifyAuthenticationFailed:
		sa.log(slog.LevelWarn, "peer refused our authentication: AUTHENTICATION_FAILED after IKE_AUTH; removing the IKE SA and its Child SAs",
			"notify", n.Code.String(), "child_sas", len(sa.children), "auth", sa.authName, "local_id", sa.localID.String())
		return true
	case n.Code == wire.NotifyInvalidSPI && len(n.Data) == 4:
		// §3.10.1: ESP or AH for an SPI the peer does not know; the data
		// is the SPI. A Child SA the peer lost is deleted by its own
		// Delete or by DPD, not on this unauthenticated-by-ESP hint.
		spi := binary.BigEndian.Uint32(n.Data)
		sa.log(slog.LevelWarn, "peer received ESP for an SPI it does not know (INVALID_SPI)",
			"spi", fmt.Sprintf("%08x", spi), "ours", sa.childByPeerSPI(spi) != nil)
	case n.Code.IsError():
		sa.log(slog.LevelWarn, "peer sent an error notify in INFORMATIONAL", "notify", n.Code.String(), "data_len", len(n.Data))
	default:
		sa.log(slog.LevelInfo, "ignored a status notify in INFORMATIONAL (not supported)", "notify", n.Code.String())
	}
	return false
}

// dropChild forgets a Child SA already removed from the data plane.
func (sa *ikeSA) dropChild(c *childSA) {
	for i, x := range sa.children {
		if x == c {
			sa.children = append(sa.children[:i], sa.children[i+1:]...)
			return
		}
	}
}

// deleteIKE sends a Delete for the IKE SA (§1.4.1) and removes it whether or
// not the peer answers: a departing host must not wait for a dead peer.
func (sa *ikeSA) deleteIKE(ctx context.Context, reason string) {
	sa.mu.Lock()
	established := sa.state == stateEstablished
	if established {
		sa.state = stateDeleting
		sa.markDown()
	}
	sa.mu.Unlock()
	if established {
		_, err := sa.request(ctx, func(id uint32) ([][]byte, error) {
			return sa.sealMessage(wire.INFORMATIONAL, id, false, []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}})
		})
		if err != nil {
			sa.log(slog.LevelInfo, "peer did not confirm the delete", "err", err)
		}
	}
	sa.destroy(reason)
}
