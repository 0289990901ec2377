package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// keySeed is what a Child SA's keys are derived from besides SK_d (§2.17).
type keySeed struct {
	shared, ni, nr []byte
	// additional are the secrets of the additional key exchanges (RFC
	// 9370 §2.2.4), after the nonces in KEYMAT's seed.
	additional [][]byte
	// initiator: this side started the exchange (IKE_AUTH or
	// CREATE_CHILD_SA) whose nonces these are.
	initiator bool
}

// childSA is a negotiated pair of IPsec SAs.
type childSA struct {
	suite    *suite
	mode     Mode
	inbound  *sadb.SA
	outbound *sadb.SA
	localTS  []wire.TrafficSelector
	remoteTS []wire.TrafficSelector
	reqID    uint32
	policies []sadb.PolicyID
	// nonces are those of the CREATE_CHILD_SA that made the SA (none for
	// IKE_AUTH's), for the rekey collision rule of §2.8.1.
	nonces [2][]byte
	// rekeyedBy is the Child SA our rekey replaced this one with;
	// peerRekey the one the peer's rekey did. Both set means the two sides
	// rekeyed at once (§2.8.1).
	rekeyedBy *childSA
	peerRekey *childSA
	// deleting is set once this side has decided to delete the SA;
	// rekeying while this side's own rekey of it is in flight (both of its
	// SAs' soft expiries, a timer and an operator may ask at once).
	deleting bool
	rekeying bool
	// outPending: the outbound half is not in the data plane yet. The
	// responder of a rekey sends on the new SA only once the old one goes
	// (concludePeerRekey): until the initiator has read our answer it has
	// no inbound SA for it, and a packet sent on it would be lost. This is
	// what strongSwan does as the responder (child_rekey.c).
	outPending bool
	// outFinal holds the outbound SA's last counters once deleteChild has
	// removed it ahead of the inbound one, so that the Child SA's totals
	// (ChildSADown, ikectl, metrics) keep its outbound traffic.
	outFinal *sadb.Counters
}

// childRequest is what a Child SA request carries (§1.2, §1.3).
type childRequest struct {
	sa        *wire.SA
	tsi, tsr  *wire.TS
	transport bool
	suite     *suite // chosen already (CREATE_CHILD_SA, where the KE group matters)
}

func childRequestFrom(ps []wire.Payload) childRequest {
	var r childRequest
	for _, p := range ps {
		switch v := p.(type) {
		case *wire.SA:
			r.sa = v
		case *wire.TS:
			if v.Responder {
				r.tsr = v
			} else {
				r.tsi = v
			}
		case *wire.Notify:
			if v.Code == wire.NotifyUseTransportMode {
				r.transport = true
			}
		}
	}
	return r
}

// localSelectors and remoteSelectors are the connection's traffic
// selectors, defaulting to the IKE addresses (host to host).
func (sa *ikeSA) localSelectors(c *Connection) []wire.TrafficSelector {
	if len(c.LocalTS) > 0 && c.Mode == ModeTunnel {
		return c.LocalTS
	}
	return []wire.TrafficSelector{HostSelector(sa.local.Addr())}
}

func (sa *ikeSA) remoteSelectors(c *Connection) []wire.TrafficSelector {
	if len(c.RemoteTS) > 0 && c.Mode == ModeTunnel {
		return c.RemoteTS
	}
	return []wire.TrafficSelector{HostSelector(sa.remote.Addr())}
}

// acceptChild is the responder's Child SA negotiation: choose an ESP
// proposal, narrow the selectors (§2.9), settle the mode, derive keys and
// install. It returns the response payloads, or a refusal with the notify
// to answer with. Caller holds mu.
func (sa *ikeSA) acceptChild(c *Connection, req childRequest, seed keySeed, rekeys *childSA) ([]wire.Payload, error) {
	o, err := sa.prepareChild(c, req)
	if err != nil {
		return nil, err
	}
	return sa.installOffer(o, seed, rekeys)
}

// childOffer is the responder's answer to a Child SA request before the
// SA is installed: with additional key exchanges (RFC 9370 §2.2.4) the
// answer goes out first and the SA is installed after the last one.
type childOffer struct {
	suite    *suite
	mode     Mode
	spi      uint32 // ours, allocated
	tsi, tsr []wire.TrafficSelector
}

// payloads are the answer's [N(USE_TRANSPORT_MODE),] SA, TSi, TSr.
func (o *childOffer) payloads() []wire.Payload {
	var spiBytes [4]byte
	binary.BigEndian.PutUint32(spiBytes[:], o.spi)
	chosen := o.suite.wire(spiBytes[:])
	out := []wire.Payload{}
	if o.mode == ModeTransport {
		out = append(out, &wire.Notify{Code: wire.NotifyUseTransportMode})
	}
	return append(out, &chosen,
		&wire.TS{Responder: false, Selectors: o.tsi},
		&wire.TS{Responder: true, Selectors: o.tsr})
}

// prepareChild chooses the ESP proposal, narrows the selectors (§2.9),
// settles the mode and allocates our SPI. Caller holds mu.
func (sa *ikeSA) prepareChild(c *Connection, req childRequest) (*childOffer, error) {
	if req.tsi == nil || req.tsr == nil {
		return nil, refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("SA without TSi and TSr"))
	}
	s := req.suite
	if s == nil {
		s = selectProposal(c.ESPProposals, req.sa.Proposals, wire.ProtoESP, false)
		sa.traceSelection("ESP", c.ESPProposals, wire.ProtoESP, req.sa.Proposals, s)
	}
	if s == nil {
		return nil, refuseWith(&wire.Notify{Code: wire.NotifyNoProposalChosen}, noProposal("ESP", req.sa.Proposals, c.ESPProposals, false))
	}
	if len(s.spi) != 4 {
		return nil, refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("ESP proposal without a 4-octet SPI"))
	}
	// TSi is the initiator's side: our remote.
	tsi := Narrow(req.tsi.Selectors, sa.remoteSelectors(c))
	tsr := Narrow(req.tsr.Selectors, sa.localSelectors(c))
	if len(tsi) == 0 || len(tsr) == 0 {
		return nil, refuseWith(&wire.Notify{Code: wire.NotifyTSUnacceptable}, errors.New("traffic selectors do not overlap the configured ones"))
	}
	mode := ModeTunnel
	if req.transport && c.Mode == ModeTransport {
		mode = ModeTransport
	}
	spi, err := sa.eng.cfg.SADB.AllocateSPI()
	if err != nil {
		return nil, refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, err)
	}
	return &childOffer{suite: s, mode: mode, spi: spi, tsi: tsi, tsr: tsr}, nil
}

// installOffer installs a prepared Child SA and returns the answer's
// payloads; a failure releases the SPI. Caller holds mu.
func (sa *ikeSA) installOffer(o *childOffer, seed keySeed, rekeys *childSA) ([]wire.Payload, error) {
	if _, err := sa.installChild(o.suite, o.mode, o.spi, binary.BigEndian.Uint32(o.suite.spi), o.tsr, o.tsi, seed, rekeys); err != nil {
		sa.eng.cfg.SADB.ReleaseSPI(o.spi)
		return nil, refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, err)
	}
	return o.payloads(), nil
}

// installChild derives the Child SA keys (§2.17) and hands both SAs to the
// data plane. Caller holds mu.
//
// seed holds the nonces (and the new g^ir with PFS) of the exchange that
// created the Child SA: IKE_AUTH's, or CREATE_CHILD_SA's. A rekeyed Child
// SA (rekeys non-nil) takes over the old one's ReqID and policies, so that
// the data plane switches to it without a gap (make-before-break).
//
// seed.initiator says whether this side started the exchange that made the
// SA: KEYMAT's first half protects traffic from that exchange's initiator
// (§2.17), which in CREATE_CHILD_SA need not be the IKE SA's initiator.
func (sa *ikeSA) installChild(s *suite, mode Mode, spiIn, spiOut uint32, localTS, remoteTS []wire.TrafficSelector, seed keySeed, rekeys *childSA) (*childSA, error) {
	if sa.state >= stateDeleting {
		// The IKE SA went while the exchange was in flight (a Delete,
		// Close): a Child SA installed now would belong to no IKE SA and
		// stay in the data plane for ever.
		return nil, errClosed
	}
	integLen := 0
	var integID uint16
	if s.integ != nil {
		integLen, integID = s.integ.KeyLen, s.integ.ID
	}
	keys, err := transform.DeriveChildKeys(sa.suite.prf, sa.keys.SkD, seed.shared, seed.ni, seed.nr, s.encr.KeyMaterialLen(s.keyBits), integLen, seed.additional...)
	if err != nil {
		return nil, err
	}
	// "I" is the exchange initiator to its responder.
	encIn, intIn, encOut, intOut := keys.EncR, keys.IntegR, keys.EncI, keys.IntegI
	if !seed.initiator {
		encIn, intIn, encOut, intOut = keys.EncI, keys.IntegI, keys.EncR, keys.IntegR
	}
	now := sa.eng.cfg.Now()
	local, remote := sa.local.Addr(), sa.remote.Addr()
	base := sadb.SA{Protocol: sadb.ESP, Mode: mode, EncrID: s.encr.ID, EncrKeyBits: s.keyBits, IntegID: integID,
		ESN: s.esn, LocalTS: localTS, RemoteTS: remoteTS, Installed: now, Lifetime: sa.childLifetime()}
	var reqID uint32
	if rekeys != nil {
		reqID = rekeys.reqID
	} else {
		reqID = sa.eng.nextReqID.Add(1)
	}
	base.ReqID = reqID
	if sa.conn != nil {
		base.IfID = sa.conn.InterfaceID
	}
	in, out := base, base
	if sa.espInUDP() {
		in.EncapSrcPort, in.EncapDstPort = sa.remote.Port(), sa.local.Port()
		out.EncapSrcPort, out.EncapDstPort = sa.local.Port(), sa.remote.Port()
	}
	in.SPI, in.Inbound, in.Src, in.Dst, in.EncrKey, in.IntegKey = spiIn, true, remote, local, sadb.Key(encIn), sadb.Key(intIn)
	out.SPI, out.Src, out.Dst, out.EncrKey, out.IntegKey = spiOut, local, remote, sadb.Key(encOut), sadb.Key(intOut)
	install := []*sadb.SA{&in, &out}
	// The responder of a rekey keeps sending on the old SA until the
	// initiator deletes it (outPending).
	outPending := rekeys != nil && !seed.initiator
	if outPending {
		install = install[:1]
	}
	if err := sa.eng.cfg.SADB.Install(install...); err != nil {
		keys.Wipe()
		return nil, err
	}
	c := &childSA{suite: s, mode: mode, inbound: &in, outbound: &out, localTS: localTS, remoteTS: remoteTS, reqID: reqID, outPending: outPending}
	if rekeys != nil {
		sa.eng.stats.rekeys("child")
	}
	// A rekeyed SA installs the same policies again (same ReqID); a
	// reauthenticated one replaces them with its own ReqID. Either way the
	// engine counts references, so the old SA's removal keeps them.
	policies := childPolicies(c, local, remote)
	for _, p := range policies {
		p.IfID = base.IfID
	}
	if err := sa.eng.addPolicies(policies); err != nil {
		if outPending {
			_ = sa.eng.cfg.SADB.Remove(in.ID())
			out.EncrKey.Wipe()
			out.IntegKey.Wipe()
		} else {
			_ = sa.eng.cfg.SADB.Remove(in.ID(), out.ID())
		}
		return nil, err
	}
	for _, p := range policies {
		c.policies = append(c.policies, p.ID())
	}
	sa.children = append(sa.children, c)
	sa.startChildTimer(c)
	sa.eng.subs.childInstalled(sa, c, rekeys)
	sa.eng.keyLog.child(sa, c)
	sa.childUp(c)
	if sa.logs(slog.LevelInfo) {
		sa.log(slog.LevelInfo, "CHILD SA installed", "spi_in", fmt.Sprintf("%08x", spiIn), "spi_out", fmt.Sprintf("%08x", spiOut),
			"mode", mode.String(), "algorithms", s.String(), "local_ts", formatTSList(localTS), "remote_ts", formatTSList(remoteTS))
	}
	return c, nil
}

func formatTSList(ts []wire.TrafficSelector) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = FormatTrafficSelector(t)
	}
	return out
}

// info snapshots the Child SA with its data-plane counters.
func (c *childSA) info(db *sadb.DB) ChildInfo {
	in := ChildInfo{
		SPIIn: fmt.Sprintf("%08x", c.inbound.SPI), SPIOut: fmt.Sprintf("%08x", c.outbound.SPI),
		Protocol: c.inbound.Protocol.String(), Mode: c.mode.String(),
		LocalTS: formatTSList(c.localTS), RemoteTS: formatTSList(c.remoteTS),
		Algorithms: c.suite.String(), Proposal: c.suite.keywords(), Installed: c.inbound.Installed,
	}
	if ctr, err := db.Counters(c.inbound.ID()); err == nil {
		in.BytesIn, in.PacketsIn = ctr.Bytes, ctr.Packets
	}
	if ctr, ok := c.outCounters(db); ok {
		in.BytesOut, in.PacketsOut = ctr.Bytes, ctr.Packets
	}
	return in
}

// childBySPI finds a Child SA by the SPI the peer names in a Delete: the
// SPI of the peer's inbound SA, which is our outbound one (§3.11).
func (sa *ikeSA) childByPeerSPI(spi uint32) *childSA {
	for _, c := range sa.children {
		if c.outbound.SPI == spi {
			return c
		}
	}
	return nil
}

// childLifetime is what the data plane enforces on a Child SA: the byte
// limits as configured, and a hard time limit beyond the rekey time (a
// tenth, as strongSwan's life_time, but at least a minute, so that a rekey
// slowed by load or loss is not overtaken), so that an SA whose rekey keeps
// failing does not outlive its keys' intended life. Caller holds mu.
func (sa *ikeSA) childLifetime() sadb.Lifetime {
	c := sa.conn
	if c == nil {
		return sadb.Lifetime{}
	}
	l := sadb.Lifetime{SoftBytes: c.RekeyBytes, HardBytes: c.LifeBytes}
	if c.RekeyTime > 0 {
		l.HardTime = c.RekeyTime + max(c.RekeyTime/10, time.Minute)
	}
	return l
}

// concludePeerRekey lets the Child SA that the peer's rekey of old made
// send, now that old is going: its outbound half enters the data plane
// before old's leaves it, so that the policy always has an SA. Caller
// holds mu.
func (sa *ikeSA) concludePeerRekey(old *childSA) {
	c := old.peerRekey
	if c == nil || !c.outPending || !sa.hasChild(c) {
		return
	}
	c.outPending = false
	if err := sa.eng.cfg.SADB.Install(c.outbound); err != nil {
		sa.log(slog.LevelError, "installing the outbound half of the peer's rekeyed Child SA failed", "spi_out", fmt.Sprintf("%08x", c.outbound.SPI), "err", err)
		return
	}
	if sa.logs(slog.LevelDebug) {
		sa.log(slog.LevelDebug, "outbound Child SA of the peer's rekey installed", "spi_out", fmt.Sprintf("%08x", c.outbound.SPI))
	}
}
