package ike

import (
	"context"
	"encoding/binary"
	"log/slog"

	"github.com/iked/iked/ike/wire"
)

// respondInformational answers an INFORMATIONAL request (§1.4): Deletes of
// the IKE SA or of Child SAs, and the empty liveness check. Caller holds mu,
// and runs after (when not nil) once it is released.
func (sa *ikeSA) respondInformational(inner []wire.Payload) (pkt [][]byte, after func()) {
	var resp []wire.Payload
	deleteIKE := false
	var ourSPIs [][]byte
	for _, p := range inner {
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
	if deleteIKE {
		// §1.4.1: deleting the IKE SA deletes its Child SAs; the response
		// is empty.
		sa.log(slog.LevelInfo, "peer deleted the IKE SA")
		sa.destroyLocked("deleted by peer")
	}
	return pkt, after
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
