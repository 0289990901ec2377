package ike

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// CREATE_CHILD_SA (RFC 7296 §1.3): further Child SAs and Child SA rekeys,
// with optional PFS. IKE SA rekeying is in rekey_ike.go. Both sides are a
// state struct whose handshake() lists the steps; a step that finds a
// fault returns a refusal (refusal.go).

// createChildResponder answers one CREATE_CHILD_SA request for a Child SA.
// It runs with the SA's mutex held.
type createChildResponder struct {
	sa     *ikeSA
	inner  []wire.Payload
	req    childRequest
	rekeys *childSA
	nonce  *wire.Nonce
	ke     *wire.KE
	nr     []byte
	keR    *wire.KE
	shared []byte
	resp   []wire.Payload
}

// respondCreateChild answers CREATE_CHILD_SA. Caller holds mu, and runs
// after (when not nil) once it is released.
func (sa *ikeSA) respondCreateChild(inner []wire.Payload) (pkt [][]byte, after func()) {
	if saP, _ := wire.Find(inner, wire.PayloadSA).(*wire.SA); sa.state == stateEstablished && saP != nil && len(saP.Proposals) > 0 && saP.Proposals[0].Protocol == wire.ProtoIKE {
		return sa.respondRekeyIKE(inner)
	}
	hs := &createChildResponder{sa: sa, inner: inner, req: childRequestFrom(inner)}
	if err := hs.handshake(); err != nil {
		return sa.answer(wire.CREATE_CHILD_SA, "CREATE_CHILD_SA refused", asRefusal(err, wire.NotifyTemporaryFailure)), nil
	}
	pkt, err := sa.sealMessage(wire.CREATE_CHILD_SA, sa.respID, true, hs.resp)
	if err != nil {
		sa.log(slog.LevelError, "cannot seal CREATE_CHILD_SA response", "err", err)
		return nil, nil
	}
	return pkt, nil
}

// handshake runs the steps of §1.3.1 and §1.3.3.
func (hs *createChildResponder) handshake() error {
	if err := hs.checkState(); err != nil {
		return err
	}
	if err := hs.readPayloads(); err != nil {
		return err
	}
	if err := hs.findRekeyed(); err != nil {
		return err
	}
	if err := hs.chooseProposal(); err != nil {
		return err
	}
	if err := hs.keyExchange(); err != nil {
		return err
	}
	return hs.accept()
}

// checkState refuses an exchange on an SA being deleted or not yet up
// (§2.25).
func (hs *createChildResponder) checkState() error {
	if hs.sa.state != stateEstablished {
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, errors.New("the IKE SA is not established")).logged(slog.LevelInfo, "CREATE_CHILD_SA refused")
	}
	if hs.sa.ikeRekeying || hs.sa.rekeyedBy != nil {
		// §2.25.2: a Child SA exchange while this side rekeys the IKE
		// SA; the peer tries again on the new IKE SA.
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, errors.New("the IKE SA is being rekeyed")).logged(slog.LevelInfo, "CREATE_CHILD_SA refused")
	}
	return nil
}

// readPayloads checks for SA, Ni, TSi and TSr (§1.3.1).
func (hs *createChildResponder) readPayloads() error {
	hs.nonce, _ = wire.Find(hs.inner, wire.PayloadNonce).(*wire.Nonce)
	hs.ke, _ = wire.Find(hs.inner, wire.PayloadKE).(*wire.KE)
	if hs.req.sa == nil || hs.nonce == nil || hs.req.tsi == nil || hs.req.tsr == nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("CREATE_CHILD_SA without SA, Nonce, TSi or TSr"))
	}
	return nil
}

// findRekeyed finds the Child SA named by REKEY_SA: its SPI is the one the
// requester receives on, our outbound SPI (§1.3.3).
func (hs *createChildResponder) findRekeyed() error {
	n := wire.FindNotify(hs.inner, wire.NotifyRekeySA)
	if n == nil {
		return nil
	}
	if len(n.SPI) != 4 {
		return refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("REKEY_SA without a 4-octet SPI"))
	}
	hs.rekeys = hs.sa.childByPeerSPI(binary.BigEndian.Uint32(n.SPI))
	if hs.rekeys != nil && hs.rekeys.peerRekey != nil {
		// The peer rekeyed this SA already (its soft expiries on both
		// SAs of the pair each asked): one replacement is enough.
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, fmt.Errorf("child SA %x is rekeyed already", n.SPI))
	}
	if hs.rekeys != nil && hs.rekeys.deleting {
		// §2.25: a rekey of an SA this side is closing (it finished its own
		// rekey of it first) is refused for now; the Delete follows.
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, fmt.Errorf("child SA %x is being deleted", n.SPI))
	}
	if hs.rekeys == nil {
		// §2.25: the SA may have been deleted meanwhile.
		return refuseWith(&wire.Notify{Code: wire.NotifyChildSANotFound, Protocol: wire.ProtoESP, SPI: append([]byte(nil), n.SPI...)},
			fmt.Errorf("no Child SA with SPI %x to rekey", n.SPI))
	}
	return nil
}

// chooseProposal selects an ESP proposal including its DH group (PFS), and
// asks for the selected group when the KE carries another (§1.3).
func (hs *createChildResponder) chooseProposal() error {
	s := selectProposal(hs.sa.conn.ESPProposals, hs.req.sa.Proposals, wire.ProtoESP, true)
	hs.sa.traceSelection("ESP", hs.sa.conn.ESPProposals, wire.ProtoESP, hs.req.sa.Proposals, s)
	if s == nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyNoProposalChosen}, noProposal("ESP", hs.req.sa.Proposals, hs.sa.conn.ESPProposals, true))
	}
	if s.group != nil && (hs.ke == nil || hs.ke.Group != s.group.ID()) {
		return refuseWith(groupNotify(s.group), fmt.Errorf("KE group differs from the selected %s", s.group.Name()))
	}
	hs.req.suite = s
	return nil
}

// keyExchange makes Nr and, with PFS, our KE and the new g^ir (for ML-KEM
// the encapsulation; a key failing its checks is INVALID_SYNTAX).
func (hs *createChildResponder) keyExchange() error {
	sa := hs.sa
	hs.nr = make([]byte, nonceLen(sa.suite.prf))
	if _, err := sa.eng.cfg.Rand.Read(hs.nr); err != nil {
		return err
	}
	g := hs.req.suite.group
	if g == nil {
		return nil
	}
	pub, shared, err := transform.Respond(g, sa.eng.cfg.Rand, hs.ke.Data)
	if err != nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, err)
	}
	hs.shared = shared
	hs.keR = &wire.KE{Group: g.ID(), Data: pub}
	return nil
}

// accept installs the Child SA and builds the response: SA, Nr, [KEr],
// TSi, TSr (§1.3.1). With additional key exchanges (RFC 9370 §2.2.4) the
// response goes out with N(ADDITIONAL_KEY_EXCHANGE) and the SA is
// installed after the last IKE_FOLLOWUP_KE (followup.go).
func (hs *createChildResponder) accept() error {
	sa := hs.sa
	ni := append([]byte(nil), hs.nonce.Data...)
	if hs.req.suite.hasAddKE() {
		return hs.acceptLater(ni)
	}
	seed := keySeed{shared: hs.shared, ni: ni, nr: hs.nr, initiator: false}
	payloads, err := sa.acceptChild(sa.conn, hs.req, seed, hs.rekeys)
	wipe(hs.shared)
	if err != nil {
		return err
	}
	created := sa.children[len(sa.children)-1]
	created.nonces = [2][]byte{ni, hs.nr}
	if hs.rekeys != nil {
		hs.rekeys.peerRekey = created
		sa.log(slog.LevelInfo, "CHILD SA rekeyed by the peer", "old_spi_in", fmt.Sprintf("%08x", hs.rekeys.inbound.SPI))
	}
	// Order: SA, Nr, [KEr], TSi, TSr; a transport-mode notify first if any.
	var rest []wire.Payload
	for _, p := range payloads {
		if n, ok := p.(*wire.Notify); ok {
			hs.resp = append(hs.resp, n)
		} else {
			rest = append(rest, p)
		}
	}
	hs.resp = append(hs.resp, rest[0], &wire.Nonce{Data: hs.nr})
	if hs.keR != nil {
		hs.resp = append(hs.resp, hs.keR)
	}
	hs.resp = append(hs.resp, rest[1:]...)
	return nil
}

// acceptLater answers a request whose suite has additional key exchanges:
// the Child SA is prepared (proposal, selectors, our SPI) and kept with
// SK(0) under a link for the IKE_FOLLOWUP_KE exchanges.
func (hs *createChildResponder) acceptLater(ni []byte) error {
	sa := hs.sa
	o, err := sa.prepareChild(sa.conn, hs.req)
	if err != nil {
		wipe(hs.shared)
		return err
	}
	f := &followup{groups: o.suite.adds(), secrets: [][]byte{hs.shared}, ni: ni, nr: hs.nr, child: o, rekeys: hs.rekeys}
	ps := o.payloads()
	var rest []wire.Payload
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok {
			hs.resp = append(hs.resp, n)
		} else {
			rest = append(rest, p)
		}
	}
	hs.resp = append(hs.resp, rest[0], &wire.Nonce{Data: hs.nr}, hs.keR)
	hs.resp = append(hs.resp, rest[1:]...)
	if hs.resp, err = sa.startFollowup(f, hs.resp); err != nil {
		sa.releaseFollowup(f, "internal error")
		return err
	}
	return nil
}

// CreateChild negotiates an additional Child SA on the IKE SA with ID id,
// or rekeys the Child SA whose inbound SPI is rekeySPI (nonzero).
func (e *Engine) CreateChild(ctx context.Context, id string, rekeySPI uint32) error {
	for _, sa := range e.allSAs() {
		if sa.id() != id {
			continue
		}
		var old *childSA
		if rekeySPI != 0 {
			sa.mu.Lock()
			for _, c := range sa.children {
				if c.inbound.SPI == rekeySPI {
					old = c
				}
			}
			sa.mu.Unlock()
			if old == nil {
				return fmt.Errorf("%s has no Child SA with inbound SPI %08x", id, rekeySPI)
			}
		}
		return sa.createChild(ctx, old)
	}
	return fmt.Errorf("no IKE SA %q", id)
}

// createChildRequester is this side's CREATE_CHILD_SA (§1.3.1, §1.3.3): a
// new Child SA with the connection's selectors, or the rekey of old, with
// PFS when the ESP proposal has a DH group. A rekey replaces old make-
// before-break: the new SA is installed, then old is deleted (§2.8). The
// exchange runs without the SA's lock; steps that read or change the SA
// take it.
type createChildRequester struct {
	sa  *ikeSA
	ctx context.Context
	old *childSA

	// What the exchange asks for, settled from the SA when it begins.
	props         []transform.Proposal
	local, remote []wire.TrafficSelector
	mode          Mode
	prf           *transform.PRF

	spi   uint32
	ni    []byte
	group transform.Group
	dh    transform.PrivateKey
	resp  *response

	// The checked answer, and the secrets of its key exchanges: SK(0) of
	// CREATE_CHILD_SA's KE, then those of the IKE_FOLLOWUP_KEs.
	ans     *childAnswer
	nr      []byte
	secrets [][]byte
}

// createChild runs CREATE_CHILD_SA as requester.
func (sa *ikeSA) createChild(ctx context.Context, old *childSA) error {
	hs := &createChildRequester{sa: sa, ctx: ctx, old: old}
	return hs.handshake()
}

// errRekeyedAlready ends a Child SA rekey whose Child SA a rekey replaced
// meanwhile: nothing is left to do.
var errRekeyedAlready = errors.New("rekeyed already")

func (hs *createChildRequester) handshake() error {
	if err := hs.begin(); err != nil {
		if err == errRekeyedAlready {
			return nil
		}
		return err
	}
	defer func() {
		hs.sa.mu.Lock()
		hs.sa.childOps--
		if hs.old != nil {
			hs.old.rekeying = false
		}
		hs.sa.mu.Unlock()
	}()
	if err := hs.allocate(); err != nil {
		return err
	}
	if err := hs.exchange(); err != nil {
		hs.sa.eng.cfg.SADB.ReleaseSPI(hs.spi)
		return err
	}
	if err := hs.readAnswer(); err != nil {
		hs.sa.eng.cfg.SADB.ReleaseSPI(hs.spi)
		return err
	}
	if err := hs.followups(); err != nil {
		hs.sa.eng.cfg.SADB.ReleaseSPI(hs.spi)
		return err
	}
	if err := hs.install(); err != nil {
		hs.sa.eng.cfg.SADB.ReleaseSPI(hs.spi)
		return err
	}
	if hs.old != nil {
		hs.sa.finishRekey(hs.ctx, hs.old)
	}
	return nil
}

// begin settles what to ask for: the connection's selectors and mode, or
// the rekeyed Child SA's.
func (hs *createChildRequester) begin() error {
	sa := hs.sa
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if sa.state != stateEstablished {
		return errors.New("IKE SA not established")
	}
	if sa.ikeRekeying || sa.rekeyedBy != nil {
		// §2.25.2: not while the IKE SA is being rekeyed; the Child SAs
		// go to the new one, where the rekey is tried again.
		return errors.New("the IKE SA is being rekeyed")
	}
	if old := hs.old; old != nil {
		switch {
		case old.rekeyedBy != nil || old.peerRekey != nil:
			// Rekeyed already (the peer's rekey came first): what the
			// caller asked for is done, as for an IKE SA (rekeyIKE).
			return errRekeyedAlready
		case old.rekeying || old.deleting:
			return errors.New("the Child SA is being rekeyed or deleted already")
		}
		old.rekeying = true
	}
	conn := sa.conn
	hs.props = conn.ESPProposals
	hs.local, hs.remote, hs.mode = sa.localSelectors(conn), sa.remoteSelectors(conn), conn.Mode
	if hs.old != nil {
		hs.local, hs.remote, hs.mode = hs.old.localTS, hs.old.remoteTS, hs.old.mode
	}
	hs.prf = sa.suite.prf
	sa.childOps++
	if len(hs.props[0].DH) > 0 {
		hs.group = transform.GroupByID(hs.props[0].DH[0])
	}
	return nil
}

// allocate takes our inbound SPI and makes Ni.
func (hs *createChildRequester) allocate() error {
	spi, err := hs.sa.eng.cfg.SADB.AllocateSPI()
	if err != nil {
		return err
	}
	hs.spi = spi
	hs.ni = make([]byte, nonceLen(hs.prf))
	if _, err := hs.sa.eng.cfg.Rand.Read(hs.ni); err != nil {
		hs.sa.eng.cfg.SADB.ReleaseSPI(spi)
		return err
	}
	return nil
}

// exchange sends the request and waits for the answer, once more with
// the group an INVALID_KE_PAYLOAD asks for (§1.3).
func (hs *createChildRequester) exchange() error {
	for try := 0; ; try++ {
		hs.dh = nil
		if hs.group != nil {
			dh, err := hs.group.GenerateKey(hs.sa.eng.cfg.Rand)
			if err != nil {
				return err
			}
			hs.dh = dh
		}
		resp, err := hs.sa.request(hs.ctx, hs.build)
		if err != nil {
			return err
		}
		hs.resp = resp
		g, err := requestedGroup(resp.payloads, hs.props, hs.group)
		if err != nil || g == nil {
			return err
		}
		if try > 0 {
			return errors.New("responder asked for another key exchange group twice")
		}
		hs.group = g
	}
}

// build is the request: [N(REKEY_SA),] [N(USE_TRANSPORT_MODE),] SA, Ni,
// [KEi,] TSi, TSr (§1.3.1). Called with mu held.
func (hs *createChildRequester) build(msgID uint32) ([][]byte, error) {
	var ps []wire.Payload
	if hs.old != nil {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], hs.old.inbound.SPI)
		ps = append(ps, &wire.Notify{Protocol: wire.ProtoESP, SPI: b[:], Code: wire.NotifyRekeySA})
	}
	if hs.mode == ModeTransport {
		ps = append(ps, &wire.Notify{Code: wire.NotifyUseTransportMode})
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], hs.spi)
	ps = append(ps, &wire.SA{Proposals: toWire(hs.props, wire.ProtoESP, b[:], true)}, &wire.Nonce{Data: hs.ni})
	if hs.dh != nil {
		ps = append(ps, &wire.KE{Group: hs.group.ID(), Data: hs.dh.Public()})
	}
	ps = append(ps, &wire.TS{Selectors: hs.local}, &wire.TS{Responder: true, Selectors: hs.remote})
	return hs.sa.sealMessage(wire.CREATE_CHILD_SA, msgID, false, ps)
}

// readAnswer checks the answer as IKE_AUTH's is checked
// (checkChildAnswer) and computes, with PFS, the new g^ir.
func (hs *createChildRequester) readAnswer() error {
	ans, err := checkChildAnswer(hs.resp.payloads, "CREATE_CHILD_SA", hs.props, true, hs.local, hs.remote, hs.mode)
	if err != nil {
		return err
	}
	nonce, _ := wire.Find(hs.resp.payloads, wire.PayloadNonce).(*wire.Nonce)
	if nonce == nil {
		return errors.New("CREATE_CHILD_SA response without a Nonce")
	}
	hs.ans, hs.nr = ans, append([]byte(nil), nonce.Data...)
	if ans.suite.group != nil {
		ke, _ := wire.Find(hs.resp.payloads, wire.PayloadKE).(*wire.KE)
		if hs.dh == nil || ke == nil || ke.Group != ans.suite.group.ID() {
			return errors.New("PFS group mismatch in CREATE_CHILD_SA response")
		}
		shared, err := hs.dh.SharedSecret(ke.Data)
		if err != nil {
			return err
		}
		hs.secrets = [][]byte{shared}
	}
	return nil
}

// followups runs the additional key exchanges the answer chose (RFC 9370
// §2.2.4).
func (hs *createChildRequester) followups() error {
	more, err := hs.sa.runFollowups(hs.ctx, "Child SA", hs.ans.suite.adds(), hs.resp.payloads)
	if err != nil {
		for _, s := range hs.secrets {
			wipe(s)
		}
		return err
	}
	hs.secrets = append(hs.secrets, more...)
	return nil
}

// install derives the keys, with PFS from all the key exchanges' secrets,
// and installs the SA.
func (hs *createChildRequester) install() error {
	ans := hs.ans
	var shared []byte
	var additional [][]byte
	if len(hs.secrets) > 0 {
		shared, additional = hs.secrets[0], hs.secrets[1:]
	}
	defer func() {
		for _, s := range hs.secrets {
			wipe(s)
		}
	}()
	sa := hs.sa
	sa.mu.Lock()
	defer sa.mu.Unlock()
	seed := keySeed{shared: shared, ni: hs.ni, nr: hs.nr, additional: additional, initiator: true}
	c, err := sa.installChild(ans.suite, hs.mode, hs.spi, binary.BigEndian.Uint32(ans.suite.spi), ans.tsi, ans.tsr, seed, hs.old)
	if err != nil {
		return err
	}
	c.nonces = [2][]byte{hs.ni, seed.nr}
	if hs.old != nil {
		hs.old.rekeyedBy = c
	}
	return nil
}

// childAnswer is a responder's acceptance of a Child SA request, checked.
type childAnswer struct {
	suite    *suite
	tsi, tsr []wire.TrafficSelector
}

// checkChildAnswer checks what a responder answered to a Child SA request
// (IKE_AUTH's or CREATE_CHILD_SA's, named by exch): no error notify, one
// proposal we offered (§2.7, with its SPI), selectors within ours (§2.9),
// the mode asked for.
func checkChildAnswer(ps []wire.Payload, exch string, offered []transform.Proposal, withDH bool, local, remote []wire.TrafficSelector, mode Mode) (*childAnswer, error) {
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok && n.Code.IsError() {
			return nil, &notifyError{code: n.Code, when: exch}
		}
	}
	req := childRequestFrom(ps)
	if req.sa == nil || req.tsi == nil || req.tsr == nil {
		return nil, fmt.Errorf("%s response without SA, TSi or TSr", exch)
	}
	s := acceptChosen(offered, req.sa, wire.ProtoESP, withDH)
	if s == nil || len(s.spi) != 4 {
		return nil, errors.New("responder chose an ESP proposal we did not offer")
	}
	if !Covers(local, req.tsi.Selectors) || !Covers(remote, req.tsr.Selectors) {
		return nil, errors.New("responder widened the traffic selectors")
	}
	got := ModeTunnel
	if req.transport {
		got = ModeTransport
	}
	if got != mode {
		return nil, fmt.Errorf("responder answered with %s mode", got)
	}
	return &childAnswer{suite: s, tsi: req.tsi.Selectors, tsr: req.tsr.Selectors}, nil
}

// finishRekey deletes what our rekey of old left behind. Normally that is
// old. If the peer rekeyed old at the same time, §2.8.1 decides: the
// exchange holding the lowest of the four nonces made the redundant SA, and
// its initiator deletes that SA; the other side deletes old.
func (sa *ikeSA) finishRekey(ctx context.Context, old *childSA) {
	sa.mu.Lock()
	ours, theirs := old.rekeyedBy, old.peerRekey
	victim := old
	if theirs != nil && ours != nil {
		oursLow := lowestNonce(ours.nonces[0], ours.nonces[1])
		theirsLow := lowestNonce(theirs.nonces[0], theirs.nonces[1])
		if bytes.Compare(oursLow, theirsLow) < 0 {
			sa.log(slog.LevelInfo, "simultaneous Child SA rekey: ours is redundant", "spi_in", fmt.Sprintf("%08x", ours.inbound.SPI))
			victim = ours
		} else {
			sa.log(slog.LevelInfo, "simultaneous Child SA rekey: the peer's is redundant")
		}
	}
	victim.deleting = true
	sa.mu.Unlock()
	sa.deleteChild(ctx, victim)
}

// deleteChild deletes a Child SA with the peer (§1.4.1) and locally.
func (sa *ikeSA) deleteChild(ctx context.Context, c *childSA) {
	// Nothing more goes out on the SA (after a rekey its successor
	// carries the traffic): the peer removes its inbound half when the
	// Delete arrives, and a packet sent on ours meanwhile would be lost.
	// Ours inbound stays until the answer.
	sa.mu.Lock()
	if sa.hasChild(c) {
		// If the peer's rekey of c won a collision, its SA takes over.
		sa.concludePeerRekey(c)
		if ctr, err := sa.eng.cfg.SADB.Counters(c.outbound.ID()); err == nil {
			c.outFinal = &ctr // its traffic stays counted (childevents.go)
		}
		if err := sa.eng.cfg.SADB.Remove(c.outbound.ID()); err != nil && !errors.Is(err, sadb.ErrNotFound) {
			sa.log(slog.LevelWarn, "removing the outbound Child SA before its delete failed", "err", err)
		}
	}
	sa.childOps++ // an IKE SA rekey waits for this exchange (§2.25.2)
	sa.mu.Unlock()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], c.inbound.SPI)
	_, err := sa.request(ctx, func(msgID uint32) ([][]byte, error) {
		return sa.sealMessage(wire.INFORMATIONAL, msgID, false, []wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPISize: 4, SPIs: [][]byte{b[:]}}})
	})
	if err != nil {
		sa.log(slog.LevelInfo, "peer did not confirm the Child SA delete", "err", err)
	}
	sa.mu.Lock()
	sa.childOps--
	next := sa.rekeyedBy
	if sa.hasChild(c) {
		sa.removeChild(c)
		sa.dropChild(c)
		next = nil
	}
	sa.mu.Unlock()
	// The Child SA may have moved on with an IKE SA rekey meanwhile:
	// follow the successors, one SA's lock at a time.
	for x := next; x != nil; {
		x.mu.Lock()
		if x.hasChild(c) {
			x.removeChild(c)
			x.dropChild(c)
			x.mu.Unlock()
			return
		}
		n := x.rekeyedBy
		x.mu.Unlock()
		x = n
	}
}

// lowestNonce returns the smaller of two nonces, for the collision rule of
// §2.8.1.
func lowestNonce(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}
