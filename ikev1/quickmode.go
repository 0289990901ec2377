package ikev1

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/ipsec"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// quickMode is one Quick Mode exchange (RFC 2409 §5.5), either role.
type quickMode struct {
	mid       uint32
	initiator bool
	started   time.Time
	ni, nr    []byte
	dh        transform.PrivateKey
	offers    []isakmp.Proposal // initiator: the proposals of message 1
	spi       uint32            // our inbound SPI
	localTS   ipsec.TrafficSelector
	remoteTS  ipsec.TrafficSelector
	sendIDs   bool // IDci and IDcr are in the exchange
	suite     *phase2Suite
	peerSPI   uint32
	gqmxy     []byte // PFS shared secret
	flight    *flight
	// lastIn and reply answer a retransmission of the message this side
	// last answered.
	lastIn [sha256.Size]byte
	reply  [][]byte
	// next is the number of the message expected next (2 for the
	// initiator, 3 for the responder); 0 once done.
	next int
	busy bool
	// peerDeleted: a Delete for the peer's SPI came before this side
	// finished; the SAs are not kept.
	peerDeleted bool
	rekeys      *ipsecSA
	waiter      chan error
}

// selectors are the connection's traffic selectors for one Quick Mode:
// the first configured pair in tunnel mode (a Quick Mode negotiates one
// pair of client IDs), else the IKE addresses. Caller holds mu.
func (sa *isakmpSA) selectors() (local, remote ipsec.TrafficSelector) {
	c := sa.conn
	local, remote = hostSelector(sa.local.Addr()), hostSelector(sa.remote.Addr())
	if c.Mode == sadb.Tunnel {
		if len(c.LocalTS) > 0 {
			local = c.LocalTS[0]
		}
		if len(c.RemoteTS) > 0 {
			remote = c.RemoteTS[0]
		}
	}
	return local, remote
}

// newMID returns a fresh nonzero message ID not in use. Caller holds mu.
func (sa *isakmpSA) newMID() (uint32, error) {
	var b [4]byte
	for range 16 {
		if _, err := io.ReadFull(sa.eng.cfg.Rand, b[:]); err != nil {
			return 0, err
		}
		mid := binary.BigEndian.Uint32(b[:])
		if _, used := sa.qms[mid]; mid != 0 && !used && sa.seenMIDs[mid].IsZero() {
			return mid, nil
		}
	}
	return 0, errors.New("ikev1: no free message ID")
}

func (sa *isakmpSA) modeAttrs() ModeAttrs {
	c := sa.conn
	return ModeAttrs{Mode: c.Mode, UDP: sa.encap, Life: hardLife(c.lifetime()), LifeKB: c.LifeBytes / 1024}
}

// quickModeWait runs a Quick Mode as initiator and waits for it.
func (sa *isakmpSA) quickModeWait(ctx context.Context, rekeys *ipsecSA) error {
	done := make(chan error, 1)
	sa.mu.Lock()
	err := sa.startQuickMode(rekeys, done)
	sa.unlock()
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-sa.eng.closing:
		return errClosed
	}
}

// startQuickMode sends a Quick Mode's first message. Caller holds mu.
func (sa *isakmpSA) startQuickMode(rekeys *ipsecSA, done chan error) error {
	if sa.state != stateEstablished {
		return fmt.Errorf("ISAKMP SA %s is %s", sa.id(), sa.state)
	}
	c := sa.conn
	mid, err := sa.newMID()
	if err != nil {
		return err
	}
	spi, err := sa.eng.cfg.SADB.AllocateSPI()
	if err != nil {
		return err
	}
	qm := &quickMode{mid: mid, initiator: true, started: sa.eng.cfg.Now(), spi: spi, sendIDs: true, rekeys: rekeys, waiter: done, next: 2}
	qm.localTS, qm.remoteTS = sa.selectors()
	if rekeys != nil {
		qm.localTS, qm.remoteTS = rekeys.localTS, rekeys.remoteTS
	}
	var spiB [4]byte
	binary.BigEndian.PutUint32(spiB[:], spi)
	attrs := sa.modeAttrs()
	var group transform.Group
	if len(c.ESPProposals[0].DH) > 0 {
		group = transform.GroupByID(c.ESPProposals[0].DH[0])
	}
	for _, p := range c.ESPProposals {
		if group != nil && (len(p.DH) == 0 || p.DH[0] != group.ID()) || group == nil && len(p.DH) > 0 {
			continue // one KE per Quick Mode: proposals with another PFS group wait
		}
		ts, err := phase2Transforms(p, attrs, 0)
		if err != nil {
			sa.eng.cfg.SADB.ReleaseSPI(spi)
			return err
		}
		qm.offers = append(qm.offers, isakmp.Proposal{Number: uint8(len(qm.offers) + 1), Protocol: isakmp.ProtoESP, SPI: spiB[:], Transforms: ts})
	}
	qm.ni = make([]byte, nonceLen)
	if _, err := io.ReadFull(sa.eng.cfg.Rand, qm.ni); err != nil {
		sa.eng.cfg.SADB.ReleaseSPI(spi)
		return err
	}
	rest := []isakmp.Payload{&isakmp.SA{DOI: isakmp.DOIIPsec, Situation: isakmp.SitIdentityOnly, Proposals: qm.offers},
		&isakmp.Nonce{Data: qm.ni}}
	if group != nil {
		if qm.dh, err = group.GenerateKey(sa.eng.cfg.Rand); err != nil {
			sa.eng.cfg.SADB.ReleaseSPI(spi)
			return err
		}
		rest = append(rest, &isakmp.KE{Data: qm.dh.Public()})
	}
	rest = append(rest, selectorID(qm.localTS), selectorID(qm.remoteTS))
	if c.Mode == sadb.Transport && sa.encap {
		// RFC 3947 §5.2: the original addresses, for the transport mode
		// checksum fix-up.
		rest = append(rest, &isakmp.NATOA{Addr: sa.local.Addr()}, &isakmp.NATOA{Addr: sa.remote.Addr()})
	}
	restB, _ := isakmp.AppendPayloads(nil, rest)
	h := quickHash1(sa.suite.prf, sa.keys.a, mid, restB)
	pkts, err := sa.seal(isakmp.ExchangeQuick, mid, 0, append([]isakmp.Payload{&isakmp.Hash{Data: h}}, rest...))
	if err != nil {
		sa.eng.cfg.SADB.ReleaseSPI(spi)
		return err
	}
	if sa.qms == nil {
		sa.qms = map[uint32]*quickMode{}
	}
	sa.qms[mid] = qm
	sa.qmCount++
	qm.flight = sa.startFlight(pkts, func() { sa.quickModeFailed(qm, errTimeout, "timeout") })
	sa.log(levelDebug, "initiating Quick Mode", "mid", fmt.Sprintf("%08x", mid), "local_ts", formatSelector(qm.localTS),
		"remote_ts", formatSelector(qm.remoteTS), "rekey", rekeys != nil)
	return nil
}

// quickModeFailed ends a Quick Mode. Caller holds mu.
func (sa *isakmpSA) quickModeFailed(qm *quickMode, err error, label string) {
	stopFlight(qm.flight)
	if qm.next != 0 {
		sa.eng.cfg.SADB.ReleaseSPI(qm.spi)
		qm.next = 0
	}
	delete(sa.qms, qm.mid)
	delete(sa.ivs, qm.mid)
	sa.markSeen(qm.mid)
	sa.eng.stats.failure("quick_mode_" + label)
	sa.log(levelWarn, "Quick Mode failed", "mid", fmt.Sprintf("%08x", qm.mid), "err", err.Error())
	if qm.waiter != nil {
		qm.waiter <- err
		qm.waiter = nil
	}
	if qm.rekeys != nil {
		qm.rekeys.rekeying = false
	}
	sa.quickModeEnded()
}

// markSeen records a message ID as used, so that a replay of its
// exchange is dropped. Old entries go after the ISAKMP SA's lifetime of
// Quick Modes would have: an hour is beyond any retransmission. Caller
// holds mu.
func (sa *isakmpSA) markSeen(mid uint32) {
	now := sa.eng.cfg.Now()
	if sa.seenMIDs == nil {
		sa.seenMIDs = map[uint32]time.Time{}
	}
	if len(sa.seenMIDs) > 4096 {
		for m, t := range sa.seenMIDs {
			if now.Sub(t) > time.Hour {
				delete(sa.seenMIDs, m)
			}
		}
	}
	sa.seenMIDs[mid] = now
}

// onQuickMode dispatches a Quick Mode message. Caller holds mu.
func (sa *isakmpSA) onQuickMode(b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) {
	qm := sa.qms[hdr.MessageID]
	// A deleting SA finishes the Quick Modes it has (linger), and starts
	// no new one.
	if !(sa.state == stateEstablished || sa.state == stateDeleting && qm != nil) || !hdr.Encrypted() || hdr.MessageID == 0 {
		sa.eng.stats.drop(DropUnexpected)
		return
	}
	if qm != nil && qm.reply != nil && sha256.Sum256(pkt) == qm.lastIn {
		sa.eng.stats.retransmitsAnswered.Add(1)
		sa.send(qm.reply)
		return
	}
	var err error
	switch {
	case qm == nil && !sa.seenMIDs[hdr.MessageID].IsZero():
		sa.eng.stats.drop(DropReplay)
		return
	case qm == nil:
		err = sa.respondQuick1(b, from, hdr, pkt)
	case qm.busy || qm.next == 0:
		sa.eng.stats.drop(DropUnexpected)
		return
	case qm.initiator && qm.next == 2:
		err = sa.initiatorQuick2(qm, b, from, hdr, pkt)
	case !qm.initiator && qm.next == 3:
		err = sa.responderQuick3(qm, b, from, hdr, pkt)
	default:
		sa.eng.stats.drop(DropUnexpected)
		return
	}
	if err == nil {
		return
	}
	var d *dropError
	if errors.As(err, &d) {
		sa.eng.stats.drop(d.reason)
		sa.log(levelDebug, "dropped Quick Mode message", "mid", fmt.Sprintf("%08x", hdr.MessageID), "err", d.err.Error())
		return
	}
	var n *notifyError
	if errors.As(err, &n) {
		sa.sendQuickNotify(n.code, qm)
	}
	if qm == nil {
		qm = &quickMode{mid: hdr.MessageID}
	}
	label := "error"
	if n != nil {
		label = n.label
	}
	sa.quickModeFailed(qm, err, label)
}

// sendQuickNotify tells the peer why a Quick Mode failed, in an
// Informational exchange naming the SPI it proposed. Caller holds mu.
func (sa *isakmpSA) sendQuickNotify(code isakmp.NotifyType, qm *quickMode) {
	sa.eng.stats.notify(code.String())
	n := &isakmp.Notify{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoESP, Code: code}
	if qm != nil && qm.spi != 0 {
		n.SPI = binary.BigEndian.AppendUint32(nil, qm.spi)
	}
	sa.sendInformational([]isakmp.Payload{n})
}

// openPhase2 decrypts a Quick Mode or Informational message and checks
// that HASH comes first, returning the payloads and the octets after
// HASH. Caller holds mu.
func (sa *isakmpSA) openPhase2(hdr *isakmp.Header, pkt []byte) (isakmp.Body, *isakmp.Hash, []byte, []byte, error) {
	body, last, err := sa.open(hdr, pkt)
	if err != nil {
		return body, nil, nil, nil, drop(DropIntegrity, "%v", err)
	}
	if len(body.Payloads) == 0 {
		return body, nil, nil, nil, drop(DropIntegrity, "no payloads (wrong keys?)")
	}
	h, ok := body.Payloads[0].(*isakmp.Hash)
	if !ok {
		return body, nil, nil, nil, drop(DropIntegrity, "first payload is not HASH (wrong keys?)")
	}
	rest := []byte{}
	if len(body.Offsets) > 1 {
		rest = body.Raw[body.Offsets[1]:]
	}
	return body, h, rest, last, nil
}

// respondQuick1 answers a Quick Mode's first message.
func (sa *isakmpSA) respondQuick1(b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) error {
	c := sa.conn
	mid := hdr.MessageID
	body, h, rest, last, err := sa.openPhase2(hdr, pkt)
	if err != nil {
		return err
	}
	if !hashEqual(h.Data, quickHash1(sa.suite.prf, sa.keys.a, mid, rest)) {
		return drop(DropIntegrity, "HASH(1) mismatch")
	}
	// Authenticated: the message ID is used, whatever comes of it.
	sa.markSeen(mid)
	sa.setIV(mid, last)
	sa.heard(b, from)
	var saP *isakmp.SA
	var nonce *isakmp.Nonce
	var ke *isakmp.KE
	var ids []*isakmp.ID
	for _, p := range body.Payloads[1:] {
		switch v := p.(type) {
		case *isakmp.SA:
			saP = v
		case *isakmp.Nonce:
			nonce = v
		case *isakmp.KE:
			ke = v
		case *isakmp.ID:
			ids = append(ids, v)
		case *isakmp.Notify:
			sa.log(levelInfo, "notification in Quick Mode", "type", v.Code.String())
		}
	}
	if saP == nil || nonce == nil || (len(ids) != 0 && len(ids) != 2) {
		return refuse(isakmp.PayloadMalformed, "malformed", "Quick Mode without SA or nonce, or with %d IDs", len(ids))
	}
	qm := &quickMode{mid: mid, started: sa.eng.cfg.Now(), ni: bytes.Clone(nonce.Data), next: 3, sendIDs: len(ids) == 2}
	if sa.qms == nil {
		sa.qms = map[uint32]*quickMode{}
	}
	sa.qms[mid] = qm
	// Traffic selectors: IDci is the initiator's side, our remote.
	local, remote := hostSelector(sa.local.Addr()), hostSelector(sa.remote.Addr())
	if qm.sendIDs {
		ci, err1 := selectorOf(ids[0])
		cr, err2 := selectorOf(ids[1])
		if err1 != nil || err2 != nil {
			return refuse(isakmp.InvalidIDInformation, "ts_unacceptable", "client IDs: %v %v", err1, err2)
		}
		remote, local = ci, cr
	}
	var prop *isakmp.Proposal
	var chosen *isakmp.Transform
	var suite *phase2Suite
search:
	for _, ours := range c.ESPProposals {
		for i := range saP.Proposals {
			p := &saP.Proposals[i]
			if p.Protocol != isakmp.ProtoESP || len(p.SPI) != 4 {
				continue
			}
			for j := range p.Transforms {
				s, err := parsePhase2(&p.Transforms[j])
				if err != nil || !matchesPhase2(ours, s) || s.mode != c.Mode || s.udp != sa.encap {
					continue
				}
				prop, chosen, suite = p, &p.Transforms[j], s
				break search
			}
		}
	}
	if suite == nil {
		sa.log(levelInfo, "no acceptable Quick Mode proposal", "offer", describeESPOffer(saP))
		return refuse(isakmp.NoProposalChosen, "no_proposal_chosen", "no acceptable ESP proposal")
	}
	if !sa.selectorsAllowed(local, remote, suite.mode) {
		return refuse(isakmp.InvalidIDInformation, "ts_unacceptable", "traffic selectors %s === %s are not within the connection's",
			formatSelector(local), formatSelector(remote))
	}
	if suite.mode == sadb.Transport {
		// Behind a NAT the peer names its private address; the SA is
		// between the addresses the packets carry.
		local, remote = hostSelector(sa.local.Addr()), hostSelector(sa.remote.Addr())
	}
	qm.localTS, qm.remoteTS, qm.suite = local, remote, suite
	qm.peerSPI = binary.BigEndian.Uint32(prop.SPI)
	if (suite.group == nil) != (ke == nil) {
		return refuse(isakmp.InvalidKeyInformation, "invalid_ke", "KE payload and PFS group disagree")
	}
	if ke != nil && len(ke.Data) != suite.group.PublicLen() {
		return refuse(isakmp.InvalidKeyInformation, "invalid_ke", "KE of %d octets for %s", len(ke.Data), suite.group.Name())
	}
	if suite.life == 0 || suite.life > hardLife(c.lifetime()) {
		// A responder may keep an SA shorter than offered (RFC 2407
		// §4.5.4); the peer learns it from our deletion at rekey time.
		suite.life = min(hardLife(c.lifetime()), max(suite.life, 0))
		if suite.life == 0 {
			suite.life = hardLife(c.lifetime())
		}
	}
	spi, err := sa.eng.cfg.SADB.AllocateSPI()
	if err != nil {
		return err
	}
	qm.spi = spi
	qm.nr = make([]byte, nonceLen)
	if _, err := io.ReadFull(sa.eng.cfg.Rand, qm.nr); err != nil {
		return err
	}
	var spiB [4]byte
	binary.BigEndian.PutUint32(spiB[:], spi)
	out := []isakmp.Payload{&isakmp.SA{DOI: isakmp.DOIIPsec, Situation: isakmp.SitIdentityOnly,
		Proposals: []isakmp.Proposal{{Number: prop.Number, Protocol: isakmp.ProtoESP, SPI: spiB[:], Transforms: []isakmp.Transform{*cloneTransform(chosen)}}}},
		&isakmp.Nonce{Data: qm.nr}}
	if suite.group != nil {
		dh, err := suite.group.GenerateKey(sa.eng.cfg.Rand)
		if err != nil {
			return err
		}
		if qm.gqmxy, err = dh.SharedSecret(ke.Data); err != nil {
			return refuse(isakmp.InvalidKeyInformation, "invalid_ke", "PFS public value: %v", err)
		}
		out = append(out, &isakmp.KE{Data: dh.Public()})
	}
	if qm.sendIDs {
		out = append(out, cloneID(ids[0]), cloneID(ids[1]))
	}
	restB, _ := isakmp.AppendPayloads(nil, out)
	h2 := quickHash2(sa.suite.prf, sa.keys.a, mid, qm.ni, restB)
	pkts, err := sa.seal(isakmp.ExchangeQuick, mid, 0, append([]isakmp.Payload{&isakmp.Hash{Data: h2}}, out...))
	if err != nil {
		return err
	}
	qm.lastIn, qm.reply = sha256.Sum256(pkt), pkts
	qm.flight = sa.startFlight(pkts, func() { sa.quickModeFailed(qm, errTimeout, "timeout") })
	return nil
}

func cloneID(id *isakmp.ID) *isakmp.ID {
	return &isakmp.ID{IDType: id.IDType, Protocol: id.Protocol, Port: id.Port, Data: bytes.Clone(id.Data)}
}

// selectorsAllowed reports whether the peer's selectors are within the
// connection's (IKEv1 has no narrowing: a responder takes them or
// refuses). Caller holds mu.
func (sa *isakmpSA) selectorsAllowed(local, remote ipsec.TrafficSelector, mode sadb.Mode) bool {
	c := sa.conn
	if mode == sadb.Transport {
		// Host to host: the IDs name the hosts (behind a NAT, the
		// peer's private address); the SA protects the IKE addresses.
		return local.StartAddr == local.EndAddr && remote.StartAddr == remote.EndAddr
	}
	ls, rs := c.LocalTS, c.RemoteTS
	if len(ls) == 0 {
		ls = []ipsec.TrafficSelector{hostSelector(sa.local.Addr())}
	}
	if len(rs) == 0 {
		rs = []ipsec.TrafficSelector{hostSelector(sa.remote.Addr())}
	}
	okL, okR := false, false
	for _, t := range ls {
		okL = okL || covers(t, local)
	}
	for _, t := range rs {
		okR = okR || covers(t, remote)
	}
	return okL && okR
}

func describeESPOffer(saP *isakmp.SA) string {
	var parts []string
	for _, p := range saP.Proposals {
		for i := range p.Transforms {
			s, err := parsePhase2(&p.Transforms[i])
			if err != nil {
				parts = append(parts, "("+err.Error()+")")
				continue
			}
			parts = append(parts, s.String()+"/"+s.mode.String())
		}
	}
	return fmt.Sprint(parts)
}

// initiatorQuick2 reads the responder's choice, confirms with HASH(3)
// and installs the IPsec SAs.
func (sa *isakmpSA) initiatorQuick2(qm *quickMode, b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) error {
	mid := qm.mid
	body, h, rest, last, err := sa.openPhase2(hdr, pkt)
	if err != nil {
		return err
	}
	if !hashEqual(h.Data, quickHash2(sa.suite.prf, sa.keys.a, mid, qm.ni, rest)) {
		return drop(DropIntegrity, "HASH(2) mismatch")
	}
	sa.setIV(mid, last)
	sa.heard(b, from)
	var saP *isakmp.SA
	var nonce *isakmp.Nonce
	var ke *isakmp.KE
	var ids []*isakmp.ID
	for _, p := range body.Payloads[1:] {
		switch v := p.(type) {
		case *isakmp.SA:
			saP = v
		case *isakmp.Nonce:
			nonce = v
		case *isakmp.KE:
			ke = v
		case *isakmp.ID:
			ids = append(ids, v)
		case *isakmp.Notify:
			if v.Code == isakmp.ResponderLifetime {
				sa.log(levelInfo, "responder shortened the IPsec SA lifetime", "data", fmt.Sprintf("%x", v.Data))
			} else {
				sa.log(levelInfo, "notification in Quick Mode", "type", v.Code.String())
			}
		}
	}
	if saP == nil || nonce == nil || len(saP.Proposals) != 1 || len(saP.Proposals[0].Transforms) != 1 {
		return refuse(isakmp.BadProposalSyntax, "no_proposal_chosen", "Quick Mode answer does not choose one transform")
	}
	prop := &saP.Proposals[0]
	var offered *isakmp.Proposal
	for i := range qm.offers {
		if qm.offers[i].Number == prop.Number {
			offered = &qm.offers[i]
		}
	}
	chosen := &prop.Transforms[0]
	ok := false
	if offered != nil && prop.Protocol == isakmp.ProtoESP && len(prop.SPI) == 4 {
		for i := range offered.Transforms {
			if sameTransform(&offered.Transforms[i], chosen, isakmp.AttrSALifeType, isakmp.AttrSALifeDuration) {
				ok = true
			}
		}
	}
	if !ok {
		return refuse(isakmp.NoProposalChosen, "no_proposal_chosen", "the responder chose an ESP transform we did not offer")
	}
	suite, err := parsePhase2(chosen)
	if err != nil {
		return refuse(isakmp.AttributesNotSupported, "no_proposal_chosen", "%v", err)
	}
	if suite.life == 0 || suite.life > hardLife(sa.conn.lifetime()) {
		suite.life = hardLife(sa.conn.lifetime())
	}
	if len(ids) == 2 {
		ci, err1 := selectorOf(ids[0])
		cr, err2 := selectorOf(ids[1])
		if err1 != nil || err2 != nil || ci != qm.localTS || cr != qm.remoteTS {
			return refuse(isakmp.InvalidIDInformation, "ts_unacceptable", "the responder changed the client IDs")
		}
	}
	if (suite.group == nil) != (ke == nil) {
		return refuse(isakmp.InvalidKeyInformation, "invalid_ke", "KE payload and PFS group disagree")
	}
	if ke != nil {
		if len(ke.Data) != suite.group.PublicLen() || qm.dh == nil {
			return refuse(isakmp.InvalidKeyInformation, "invalid_ke", "KE of %d octets", len(ke.Data))
		}
		if qm.gqmxy, err = qm.dh.SharedSecret(ke.Data); err != nil {
			return refuse(isakmp.InvalidKeyInformation, "invalid_ke", "PFS public value: %v", err)
		}
	}
	qm.nr, qm.suite, qm.peerSPI = bytes.Clone(nonce.Data), suite, binary.BigEndian.Uint32(prop.SPI)
	if suite.mode == sadb.Transport {
		qm.localTS, qm.remoteTS = hostSelector(sa.local.Addr()), hostSelector(sa.remote.Addr())
	}
	pkts, err := sa.seal(isakmp.ExchangeQuick, mid, 0, []isakmp.Payload{&isakmp.Hash{Data: quickHash3(sa.suite.prf, sa.keys.a, mid, qm.ni, qm.nr)}})
	if err != nil {
		return err
	}
	stopFlight(qm.flight)
	qm.flight = nil
	sa.send(pkts)
	qm.lastIn, qm.reply = sha256.Sum256(pkt), pkts
	return sa.completeQuickMode(qm)
}

// responderQuick3 reads HASH(3) and installs the IPsec SAs.
func (sa *isakmpSA) responderQuick3(qm *quickMode, b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) error {
	_, h, _, last, err := sa.openPhase2(hdr, pkt)
	if err != nil {
		return err
	}
	if !hashEqual(h.Data, quickHash3(sa.suite.prf, sa.keys.a, qm.mid, qm.ni, qm.nr)) {
		return drop(DropIntegrity, "HASH(3) mismatch")
	}
	sa.setIV(qm.mid, last)
	sa.heard(b, from)
	stopFlight(qm.flight)
	qm.flight = nil
	qm.reply = nil // message 3 is the last: nothing to answer again
	return sa.completeQuickMode(qm)
}

// completeQuickMode derives the keys and installs both IPsec SAs, with
// the lock released around the data plane. Caller holds mu.
func (sa *isakmpSA) completeQuickMode(qm *quickMode) error {
	in, out, err := sa.ipsecKeys(qm)
	if err != nil {
		return err
	}
	child := &ipsecSA{suite: qm.suite, inbound: in, outbound: out, localTS: qm.localTS, remoteTS: qm.remoteTS,
		initiator: qm.initiator, mid: qm.mid}
	if qm.rekeys != nil {
		child.reqID = qm.rekeys.reqID
	} else {
		child.reqID = sa.eng.nextReqID.Add(1)
	}
	in.ReqID, out.ReqID = child.reqID, child.reqID
	qm.busy = true
	qm.next = 0
	delete(sa.ivs, qm.mid)
	sa.mu.Unlock()
	err = sa.eng.installIPsec(child)
	sa.mu.Lock()
	qm.busy = false
	defer sa.quickModeEnded()
	if err != nil {
		sa.eng.cfg.SADB.ReleaseSPI(qm.spi)
		sa.eng.stats.failure("install")
		sa.log(levelWarn, "installing IPsec SAs failed", "err", err.Error())
		if qm.waiter != nil {
			qm.waiter <- err
			qm.waiter = nil
		}
		return nil
	}
	if sa.dead || qm.peerDeleted {
		sa.later(func() { sa.eng.removeIPsecs([]*ipsecSA{child}) })
		if qm.waiter != nil {
			qm.waiter <- errors.New("ikev1: the SA was deleted during Quick Mode")
			qm.waiter = nil
		}
		return nil
	}
	sa.ipsecs = append(sa.ipsecs, child)
	sa.startIPsecTimers(child)
	sa.eng.keyLog.ipsec(child)
	if qm.rekeys != nil {
		sa.eng.stats.rekeys("ipsec")
	}
	sa.log(levelInfo, "IPsec SA installed", "spi_in", fmt.Sprintf("%08x", in.SPI), "spi_out", fmt.Sprintf("%08x", out.SPI),
		"mode", qm.suite.mode.String(), "algorithms", qm.suite.String(), "local_ts", formatSelector(qm.localTS),
		"remote_ts", formatSelector(qm.remoteTS), "encap", in.EncapSrcPort != 0)
	// A rekey replaces the old SA: the side that rekeyed deletes it
	// (make before break).
	if old := qm.rekeys; old != nil {
		old.replacedBy = child
		sa.deleteIPsec(old, "rekeyed")
	}
	if qm.waiter != nil {
		qm.waiter <- nil
		qm.waiter = nil
	}
	// Keep the exchange for as long as the peer may retransmit the
	// message this side answered last (an initiator's HASH(3) may be
	// lost): its message ID is used up from now on.
	sa.markSeen(qm.mid)
	sa.after(sa.eng.retransmitWindow(), func() { delete(sa.qms, qm.mid) })
	return nil
}

// quickModeByPeerSPI finds an unfinished Quick Mode whose chosen SA has
// the peer's SPI spi. Caller holds mu.
func (sa *isakmpSA) quickModeByPeerSPI(spi uint32) *quickMode {
	for _, qm := range sa.qms {
		if qm.peerSPI == spi && (qm.next != 0 || qm.busy) {
			return qm
		}
	}
	return nil
}

// ipsecKeys derives KEYMAT for both directions (RFC 2409 §5.5): each
// SA's keys come from its own SPI, the SPI at its destination. Caller
// holds mu.
func (sa *isakmpSA) ipsecKeys(qm *quickMode) (*sadb.SA, *sadb.SA, error) {
	s := qm.suite
	encLen := s.encr.KeyMaterialLen(s.keyBits)
	n := encLen + s.integ.KeyLen
	kin := keymat(sa.suite.prf, sa.keys.d, qm.gqmxy, isakmp.ProtoESP, qm.spi, qm.ni, qm.nr, n)
	kout := keymat(sa.suite.prf, sa.keys.d, qm.gqmxy, isakmp.ProtoESP, qm.peerSPI, qm.ni, qm.nr, n)
	clear(qm.gqmxy)
	now := sa.eng.cfg.Now()
	local, remote := sa.local.Addr(), sa.remote.Addr()
	base := sadb.SA{Protocol: sadb.ESP, Mode: s.mode, EncrID: s.encr.ID, EncrKeyBits: s.keyBits, IntegID: s.integ.ID,
		LocalTS: []ipsec.TrafficSelector{qm.localTS}, RemoteTS: []ipsec.TrafficSelector{qm.remoteTS}, Installed: now,
		Lifetime: sadb.Lifetime{SoftBytes: sa.conn.RekeyBytes, HardBytes: sa.conn.LifeBytes, HardTime: s.life}}
	in, out := base, base
	if sa.encap {
		in.EncapSrcPort, in.EncapDstPort = sa.remote.Port(), sa.local.Port()
		out.EncapSrcPort, out.EncapDstPort = sa.local.Port(), sa.remote.Port()
	}
	if s.encr.ID == transform.EncrDES3 {
		in.EncrKeyBits, out.EncrKeyBits = 192, 192
	}
	in.SPI, in.Inbound, in.Src, in.Dst = qm.spi, true, remote, local
	in.EncrKey, in.IntegKey = sadb.Key(kin[:encLen]), sadb.Key(kin[encLen:])
	out.SPI, out.Src, out.Dst = qm.peerSPI, local, remote
	out.EncrKey, out.IntegKey = sadb.Key(kout[:encLen]), sadb.Key(kout[encLen:])
	return &in, &out, nil
}
