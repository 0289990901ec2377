package ikev1

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/transport"
)

// sendInformational sends an Informational exchange protected by the
// ISAKMP SA (RFC 2409 §5.7): HASH(1) over a fresh message ID and the
// payloads. It is one message, never answered. Caller holds mu.
func (sa *isakmpSA) sendInformational(ps []isakmp.Payload) {
	mid, err := sa.newMID()
	if err != nil {
		return
	}
	restB, _ := isakmp.AppendPayloads(nil, ps)
	h := quickHash1(sa.suite.prf, sa.keys.a, mid, restB)
	pkts, err := sa.seal(isakmp.ExchangeInformational, mid, 0, append([]isakmp.Payload{&isakmp.Hash{Data: h}}, ps...))
	delete(sa.ivs, mid)
	if err != nil {
		sa.log(levelWarn, "building an Informational message failed", "err", err.Error())
		return
	}
	sa.send(pkts)
}

// onInformational handles an Informational message. Caller holds mu.
func (sa *isakmpSA) onInformational(b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) {
	if !hdr.Encrypted() {
		sa.onPlainInformational(hdr, pkt)
		return
	}
	if sa.block == nil || sa.keys == nil || sa.keys.a == nil {
		sa.eng.stats.drop(DropUnexpected)
		return
	}
	mid := hdr.MessageID
	if mid == 0 || !sa.seenMIDs[mid].IsZero() || sa.qms[mid] != nil {
		sa.eng.stats.drop(DropReplay)
		return
	}
	body, h, rest, _, err := sa.openPhase2(hdr, pkt)
	if err != nil {
		sa.eng.stats.drop(DropIntegrity)
		sa.log(levelDebug, "dropped Informational message", "err", err.Error())
		return
	}
	if !hashEqual(h.Data, quickHash1(sa.suite.prf, sa.keys.a, mid, rest)) {
		sa.eng.stats.drop(DropIntegrity)
		sa.log(levelDebug, "dropped Informational message: HASH mismatch")
		return
	}
	sa.markSeen(mid)
	sa.heard(b, from)
	for _, p := range body.Payloads[1:] {
		switch v := p.(type) {
		case *isakmp.Notify:
			sa.onNotify(v)
		case *isakmp.Delete:
			sa.onDelete(v)
			if sa.dead {
				return
			}
		default:
			sa.log(levelInfo, "ignored payload in an Informational message", "payload", p.Type().String())
		}
	}
}

// onPlainInformational handles an unencrypted Informational message: a
// peer refusing our first messages, before there are keys. Nothing
// unauthenticated changes an SA that has keys; it is logged. Caller
// holds mu.
func (sa *isakmpSA) onPlainInformational(hdr *isakmp.Header, pkt []byte) {
	body, err := isakmp.ParseBody(hdr.Next, pkt[isakmp.HeaderLen:], false)
	if err != nil {
		sa.eng.stats.drop(DropMalformed)
		return
	}
	for _, p := range body.Payloads {
		n, ok := p.(*isakmp.Notify)
		if !ok {
			continue
		}
		if sa.state == stateMainMode && sa.block == nil && sa.initiator && n.Code.IsError() {
			sa.log(levelWarn, "peer refused Main Mode", "notify", n.Code.String())
			sa.fail(&peerError{code: n.Code}, "peer_"+labelOf(n.Code))
			return
		}
		sa.eng.stats.drop(DropUnauthenticated)
		sa.log(levelInfo, "unauthenticated notification ignored", "notify", n.Code.String())
	}
}

func labelOf(n isakmp.NotifyType) string {
	return toLower(n.String())
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// onNotify acts on an authenticated notification, or logs it. Caller
// holds mu.
func (sa *isakmpSA) onNotify(n *isakmp.Notify) {
	switch n.Code {
	case isakmp.RUThere:
		if len(n.Data) != 4 {
			sa.log(levelInfo, "malformed R-U-THERE ignored")
			return
		}
		sa.sendInformational([]isakmp.Payload{&isakmp.Notify{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoISAKMP,
			Code: isakmp.RUThereAck, SPI: cookiePair(sa.icookie, sa.rcookie), Data: bytes.Clone(n.Data)}})
	case isakmp.RUThereAck:
		if len(n.Data) == 4 && binary.BigEndian.Uint32(n.Data) == sa.dpdPending {
			sa.dpdPending, sa.dpdTries = 0, 0
		}
	case isakmp.InitialContact:
		sa.log(levelInfo, "peer sent INITIAL-CONTACT")
		sa.later(func() { sa.eng.initialContact(sa) })
	case isakmp.ResponderLifetime:
		sa.log(levelInfo, "peer announced its lifetime", "data", fmt.Sprintf("%x", n.Data))
	default:
		if n.Code.IsError() && sa.state == stateMainMode {
			sa.fail(&peerError{code: n.Code}, "peer_"+labelOf(n.Code))
			return
		}
		if n.Code.IsError() {
			sa.log(levelWarn, "peer reported an error", "notify", n.Code.String(), "protocol", n.Protocol, "spi", fmt.Sprintf("%x", n.SPI))
			// A Quick Mode the peer refused names the SPI we proposed;
			// a peer that failed to install a completed one (charon's
			// NO-PROPOSAL-CHOSEN after HASH(3)) names our inbound SPI.
			if n.Protocol != isakmp.ProtoESP || len(n.SPI) != 4 {
				// pluto names no SPI (protocol ISAKMP, the cookies) when it
				// refuses a Quick Mode: it can only be about the Quick
				// Modes this side has in flight.
				for _, qm := range sa.qms {
					if qm.initiator && qm.next == 2 {
						sa.quickModeFailed(qm, &peerError{code: n.Code}, "peer_"+labelOf(n.Code))
					}
				}
			}
			if n.Protocol == isakmp.ProtoESP && len(n.SPI) == 4 {
				spi := binary.BigEndian.Uint32(n.SPI)
				for _, qm := range sa.qms {
					if qm.initiator && qm.spi == spi && qm.next != 0 {
						sa.quickModeFailed(qm, &peerError{code: n.Code}, "peer_"+labelOf(n.Code))
					}
				}
				for _, c := range sa.ipsecs {
					if c.inbound.SPI == spi {
						sa.log(levelWarn, "peer refused an IPsec SA after Quick Mode: removing our half", "spi_in", fmt.Sprintf("%08x", spi))
						c.deleting = true
						c.stopTimers()
						sa.removeChild(c)
						sa.later(func() { sa.eng.removeIPsecs([]*ipsecSA{c}) })
						break
					}
				}
			}
			return
		}
		sa.log(levelInfo, "notification received", "notify", n.Code.String())
	}
}

// onDelete acts on an authenticated Delete (RFC 2408 §3.15). Caller holds
// mu.
func (sa *isakmpSA) onDelete(d *isakmp.Delete) {
	switch d.Protocol {
	case isakmp.ProtoISAKMP:
		for _, spi := range d.SPIs {
			if bytes.Equal(spi, cookiePair(sa.icookie, sa.rcookie)) {
				sa.log(levelInfo, "peer deleted the ISAKMP SA")
				sa.peerDeleted()
				return
			}
		}
		sa.log(levelInfo, "Delete for an unknown ISAKMP SA ignored")
	case isakmp.ProtoESP, isakmp.ProtoAH:
		for _, spi := range d.SPIs {
			if len(spi) != 4 {
				continue
			}
			c := sa.childByPeerSPI(binary.BigEndian.Uint32(spi))
			if c == nil {
				// charon names the SPI of its outbound SA when it deletes a
				// pair it failed to install: ours, inbound.
				c = sa.childByOwnSPI(binary.BigEndian.Uint32(spi))
			}
			if c == nil {
				// A Quick Mode this side has not finished (its HASH(3) is
				// still being installed, or has not arrived: the peer
				// completed, then deleted) must not install it after all.
				if qm := sa.quickModeByPeerSPI(binary.BigEndian.Uint32(spi)); qm != nil {
					qm.peerDeleted = true
					sa.log(levelInfo, "peer deleted the IPsec SA of a Quick Mode not yet complete here", "spi", fmt.Sprintf("%x", spi))
					continue
				}
				// Another ISAKMP SA with the peer may hold it: each side
				// hands IPsec SAs over on a phase 1 rekey as it sees fit.
				peerSPI := binary.BigEndian.Uint32(spi)
				sa.later(func() { sa.eng.deleteElsewhere(sa, peerSPI) })
				continue
			}
			c.deleting = true
			c.stopTimers()
			sa.removeChild(c)
			sa.log(levelInfo, "peer deleted IPsec SA", "spi_in", fmt.Sprintf("%08x", c.inbound.SPI), "spi_out", fmt.Sprintf("%08x", c.outbound.SPI))
			sa.later(func() { sa.eng.removeIPsecs([]*ipsecSA{c}) })
		}
	default:
		sa.log(levelInfo, "Delete of an unknown protocol ignored", "protocol", d.Protocol)
	}
}

// peerDeleted ends the SA after the peer's Delete: its IPsec SAs move to
// another ISAKMP SA with the peer if there is one (a phase 1 rekey), else
// they go too (retire). The Quick Modes this side started and the peer
// has not answered end now: the peer forgot them with the SA. Those the
// peer may have completed (it answered, or this side waits for its
// HASH(3)) finish first, so that their IPsec SAs are not lost when the
// Delete overtook the Quick Mode's last message. Caller holds mu.
func (sa *isakmpSA) peerDeleted() {
	sa.state = stateDeleting
	sa.peerGone = true
	for _, qm := range sa.qms {
		if qm.initiator && qm.next == 2 && !qm.busy {
			sa.quickModeFailed(qm, errors.New("ikev1: the peer deleted the ISAKMP SA"), "peer_deleted")
		}
	}
	sa.later(func() { sa.retire("deleted by peer", nil, false) })
}

// sendDPD sends an R-U-THERE (RFC 3706 §5.3). Caller holds mu.
func (sa *isakmpSA) sendDPD() {
	sa.dpdSeq++
	if sa.dpdSeq == 0 {
		sa.dpdSeq = 1
	}
	sa.dpdPending = sa.dpdSeq
	sa.sendInformational([]isakmp.Payload{&isakmp.Notify{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoISAKMP,
		Code: isakmp.RUThere, SPI: cookiePair(sa.icookie, sa.rcookie), Data: binary.BigEndian.AppendUint32(nil, sa.dpdSeq)}})
}
