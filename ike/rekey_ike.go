package ike

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// IKE SA rekeying (RFC 7296 §1.3.2, §2.18): a CREATE_CHILD_SA on the old IKE
// SA whose SA payload proposes protocol IKE with the new SPI. The new SA's
// keys come from the old SK_d and a fresh Diffie-Hellman; the Child SAs move
// over; the side that started the rekey then deletes the old SA and is the
// original initiator of the new one.
//
// Both sides may rekey at once (§2.8.2). A side that answers the peer's
// rekey while its own is outstanding keeps the peer's new SA aside
// (peerIKERekey); once its own completes, the exchange holding the lowest of
// the four nonces made the redundant SA: its initiator deletes that new SA,
// the other side deletes the old one, and the Child SAs go to the survivor.
// A rekey request arriving after this side finished its own rekey is
// refused with TEMPORARY_FAILURE: the old SA is about to go.

// rekeyIKEResponder answers one IKE SA rekey request: a state struct whose
// handshake() lists the steps, each refusing where it finds the fault. It
// runs with the old SA's mutex held.
type rekeyIKEResponder struct {
	sa       *ikeSA
	inner    []wire.Payload
	offer    *wire.SA
	nonce    *wire.Nonce
	ke       *wire.KE
	suite    *suite
	newSA    *ikeSA
	payloads []wire.Payload
}

// respondRekeyIKE answers an IKE SA rekey request. Caller holds mu; it
// runs after, once mu is released: the new SA is published (and takes the
// Child SAs) there, since no SA's lock is taken while another's is held.
func (sa *ikeSA) respondRekeyIKE(inner []wire.Payload) (pkt [][]byte, after func()) {
	hs := &rekeyIKEResponder{sa: sa, inner: inner}
	if err := hs.handshake(); err != nil {
		return sa.answer(wire.CREATE_CHILD_SA, "IKE SA rekey refused", asRefusal(err, wire.NotifyTemporaryFailure)), nil
	}
	pkt, err := sa.sealMessage(wire.CREATE_CHILD_SA, sa.respID, true, hs.payloads)
	if err != nil {
		return nil, nil
	}
	if hs.newSA == nil {
		return pkt, nil // additional key exchanges follow (followup.go)
	}
	return pkt, sa.handOverRekeyed(hs.newSA)
}

// handOverRekeyed makes newSA, the peer's rekey of sa, take over, and
// returns what runs once sa's lock is released. Caller holds sa.mu.
func (sa *ikeSA) handOverRekeyed(newSA *ikeSA) (after func()) {
	if sa.ikeRekeying {
		// Our own rekey is outstanding: which new SA survives is decided
		// when it completes.
		sa.peerIKERekey = newSA
		return func() { newSA.publish(true) }
	}
	h := sa.detachTo(newSA)
	return func() { newSA.adopt(h); newSA.publish(true) }
}

func (hs *rekeyIKEResponder) handshake() error {
	if err := hs.checkState(); err != nil {
		return err
	}
	if err := hs.readPayloads(); err != nil {
		return err
	}
	if err := hs.chooseProposal(); err != nil {
		return err
	}
	if err := hs.checkKE(); err != nil {
		return err
	}
	return hs.makeSA()
}

// checkState refuses the rekey of an SA rekeyed already: it is about to go.
func (hs *rekeyIKEResponder) checkState() error {
	if hs.sa.rekeyedBy != nil || hs.sa.state != stateEstablished {
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, errors.New("this IKE SA is already rekeyed"))
	}
	if hs.sa.childOps > 0 {
		// §2.25.2: not while this side creates, rekeys or deletes a Child
		// SA of it; the peer tries again.
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, errors.New("a Child SA exchange of this IKE SA is in flight")).logged(slog.LevelInfo, "IKE SA rekey refused")
	}
	return nil
}

// readPayloads checks for SA, Ni and KEi (§1.3.2).
func (hs *rekeyIKEResponder) readPayloads() error {
	hs.offer, _ = wire.Find(hs.inner, wire.PayloadSA).(*wire.SA)
	hs.nonce, _ = wire.Find(hs.inner, wire.PayloadNonce).(*wire.Nonce)
	hs.ke, _ = wire.Find(hs.inner, wire.PayloadKE).(*wire.KE)
	if hs.offer == nil || hs.nonce == nil || hs.ke == nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("IKE rekey without SA, Nonce or KE"))
	}
	return nil
}

// chooseProposal selects by our preference (§2.7); the new SA's SPI comes
// with the proposal. Additional key exchanges need no IKE_INTERMEDIATE
// here (they run in IKE_FOLLOWUP_KE); require_pq holds for the new SA too.
func (hs *rekeyIKEResponder) chooseProposal() error {
	hs.suite = selectProposalRules(hs.sa.conn.IKEProposals, hs.offer.Proposals, wire.ProtoIKE, matchRules{withDH: true, requirePQ: hs.sa.conn.RequirePQ})
	hs.sa.traceSelection("IKE", hs.sa.conn.IKEProposals, wire.ProtoIKE, hs.offer.Proposals, hs.suite)
	if hs.suite == nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyNoProposalChosen}, noProposal("IKE", hs.offer.Proposals, hs.sa.conn.IKEProposals, true))
	}
	if len(hs.suite.spi) != 8 {
		return refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("IKE rekey proposal without an 8-octet SPI"))
	}
	return nil
}

// checkKE asks for the selected group when the KE carries another (§1.3).
func (hs *rekeyIKEResponder) checkKE() error {
	if hs.ke.Group != hs.suite.group.ID() {
		return refuseWith(groupNotify(hs.suite.group), errors.New("KE group differs"))
	}
	return nil
}

// makeSA makes the new IKE SA and the response payloads; with additional
// key exchanges the SA is made after the last IKE_FOLLOWUP_KE.
func (hs *rekeyIKEResponder) makeSA() error {
	n, payloads, err := hs.sa.rekeyedSA(hs.suite, binary.BigEndian.Uint64(hs.suite.spi), hs.nonce.Data, hs.ke)
	if err != nil {
		var r *refusal
		if errors.As(err, &r) {
			return r
		}
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, err)
	}
	hs.newSA, hs.payloads = n, payloads
	return nil
}

// rekeyedSA makes the new IKE SA of the peer's rekey from its nonce and KE
// and returns the response payloads; with additional key exchanges (RFC
// 9370 §2.2.4) it returns no SA but keeps what makes it for the last
// IKE_FOLLOWUP_KE. Caller holds mu.
func (sa *ikeSA) rekeyedSA(s *suite, peerSPI uint64, peerNonce []byte, peerKE *wire.KE) (*ikeSA, []wire.Payload, error) {
	e := sa.eng
	spi, err := e.newSPI()
	if err != nil {
		return nil, nil, err
	}
	pub, shared, err := transform.Respond(s.group, e.cfg.Rand, peerKE.Data)
	if err != nil {
		return nil, nil, refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, fmt.Errorf("initiator's %s value: %w", s.group.Name(), err))
	}
	nonce := make([]byte, nonceLen(s.prf))
	if _, err := e.cfg.Rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	chosen := s.wire(spiBytes8(spi))
	payloads := []wire.Payload{&chosen, &wire.Nonce{Data: nonce}, &wire.KE{Group: s.group.ID(), Data: pub}}
	ni := append([]byte(nil), peerNonce...)
	if s.hasAddKE() {
		f := &followup{groups: s.adds(), secrets: [][]byte{shared}, ni: ni, nr: nonce, ike: s, ourSPI: spi, peerSPI: peerSPI}
		payloads, err = sa.startFollowup(f, payloads)
		if err != nil {
			f.wipe()
			return nil, nil, err
		}
		return nil, payloads, nil
	}
	n := sa.successor(s, false, spi, peerSPI)
	n.ni, n.nr = ni, nonce
	if err := n.deriveRekeyed(sa.suite.prf, sa.keys.SkD, shared); err != nil {
		return nil, nil, err
	}
	return n, payloads, nil
}

// successor is the new IKE SA that takes over from sa: same peer,
// connection and identities, new SPIs, message IDs from zero.
func (sa *ikeSA) successor(s *suite, weStarted bool, ourSPI, peerSPI uint64) *ikeSA {
	e := sa.eng
	n := &ikeSA{
		eng: e, serial: e.nextID.Add(1), initiator: weStarted, started: e.cfg.Now(),
		state: stateEstablished, conn: sa.conn, bind: sa.bind, local: sa.local, remote: sa.remote, encap: sa.encap,
		suite: s, natLocal: sa.natLocal, natRemote: sa.natRemote, localID: sa.localID, remoteID: sa.remoteID,
		authName: sa.authName, established: e.cfg.Now(), fragments: sa.fragments, saHandshake: &saHandshake{},
	}
	if weStarted {
		n.spii, n.spir = ourSPI, peerSPI
	} else {
		n.spii, n.spir = peerSPI, ourSPI
	}
	return n
}

// deriveRekeyed computes the new SA's keys (§2.18): SKEYSEED =
// prf(SK_d (old), g^ir (new) | Ni | Nr), the old SA's PRF keying it.
//
// skd is the old SA's SK_d, copied when the rekey began: the old SA may be
// deleted (and its keys wiped) before our exchange completes.
func (n *ikeSA) deriveRekeyed(oldPRF *transform.PRF, skd, shared []byte) error {
	data := make([]byte, 0, len(shared)+len(n.ni)+len(n.nr))
	data = append(append(append(data, shared...), n.ni...), n.nr...)
	skeyseed := oldPRF.Sum(nil, skd, data)
	wipe(data)
	wipe(shared)
	return n.keysFrom(skeyseed)
}

// handover is what an IKE SA gives the SA that takes over after a rekey:
// its Child SAs, and its names for the log line.
type handover struct {
	children         []*childSA
	oldID            string
	oldSPIi, oldSPIr uint64
	event            *SAEvent // the old SA for subscribers (events_sub.go)
}

// detachTo takes sa's Child SAs away for n, the IKE SA that survives the
// rekey, and stops sa's timers; n.adopt takes them, after sa.mu is
// released, since no SA's lock is taken while another's is held. Between
// the two the Child SAs stay in the data plane; only the engine's list of
// them is in flight. Caller holds sa.mu.
func (sa *ikeSA) detachTo(n *ikeSA) handover {
	h := handover{children: sa.children, oldID: sa.id(), oldSPIi: sa.spii, oldSPIr: sa.spir}
	h.event = sa.eng.subs.ikeRekeying(sa)
	sa.children = nil
	sa.rekeyedBy = n
	sa.stopTimers()
	sa.eng.stats.rekeys("ike")
	return h
}

// adopt takes the Child SAs of the SA n replaces and starts n's timers.
// Caller holds no SA's lock.
func (n *ikeSA) adopt(h handover) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == stateDead {
		// Deleted before it could take over (Close, the peer's Delete):
		// the Child SAs go with it.
		for _, c := range h.children {
			n.removeChild(c)
		}
		return
	}
	n.children = append(n.children, h.children...)
	n.lastRecv = n.established
	n.startTimers()
	// The Child SAs' rekey timers were the old SA's; arm them on the new.
	for _, c := range h.children {
		n.startChildTimer(c)
	}
	n.eng.subs.ikeRekeyed(h.event, n)
	n.log(slog.LevelInfo, "IKE SA rekeyed", "old_sa", h.oldID, "old_spi_i", spiHex(h.oldSPIi), "old_spi_r", spiHex(h.oldSPIr),
		"algorithms", n.suite.String())
}

// publish makes a new IKE SA from a rekey known to the engine: in the SA
// table, counted as established and, unless it is redundant, in the
// identity index. Caller holds no SA's lock. An engine closed meanwhile
// gets no new SA.
func (n *ikeSA) publish(index bool) {
	e := n.eng
	e.register(n)
	n.mu.Lock()
	if n.state == stateEstablished {
		if index {
			e.indexIdentity(n)
		}
		n.markUp()
	}
	n.mu.Unlock()
	select {
	case <-e.closing:
		n.destroy("engine closed")
	default:
	}
}

// RekeyIKE rekeys the IKE SA with ID id and returns the new SA's ID.
func (e *Engine) RekeyIKE(ctx context.Context, id string) (string, error) {
	for _, sa := range e.allSAs() {
		if sa.id() == id {
			return sa.rekeyIKE(ctx)
		}
	}
	return "", fmt.Errorf("no IKE SA %q", id)
}

// rekeyIKERequester is this side's IKE SA rekey (§1.3.2): a state struct
// whose handshake() lists the steps. The exchange runs without the old
// SA's lock; steps that read or change an SA take its lock, one at a time.
type rekeyIKERequester struct {
	sa  *ikeSA
	ctx context.Context

	// Settled from the old SA when the rekey begins; skd is a copy of its
	// SK_d, which may be wiped (the SA deleted) before the answer comes.
	props     []transform.Proposal
	prf       *transform.PRF
	group     transform.Group
	skd       []byte
	requirePQ bool

	spi  uint64
	ni   []byte
	dh   transform.PrivateKey
	resp *response

	// The answer: the chosen suite, the responder's nonce and the secrets
	// of all key exchanges, SK(0) first (RFC 9370 §2.2.4).
	chosen  *suite
	nr      []byte
	secrets [][]byte

	// survivor carries the Child SAs now; redundant, after a collision this
	// side lost, is our new SA, to delete.
	survivor, redundant *ikeSA
}

// rekeyIKE runs the IKE SA rekey as requester and returns the ID of the
// SA that carries on.
func (sa *ikeSA) rekeyIKE(ctx context.Context) (string, error) {
	hs := &rekeyIKERequester{sa: sa, ctx: ctx}
	if done, err := hs.begin(); done != "" || err != nil {
		return done, err
	}
	err := hs.handshake()
	wipe(hs.skd)
	sa.endRekeying()
	if err != nil {
		// The peer's simultaneous rekey may have won: then the SA lives on
		// under its SPIs, which is what the caller asked for.
		sa.mu.Lock()
		n := sa.rekeyedBy
		sa.mu.Unlock()
		if n != nil {
			return n.id(), nil
		}
		return "", err
	}
	return hs.survivor.id(), nil
}

func (hs *rekeyIKERequester) handshake() error {
	if err := hs.allocate(); err != nil {
		return err
	}
	if err := hs.exchange(); err != nil {
		return err
	}
	if err := hs.readAnswer(); err != nil {
		return err
	}
	if err := hs.followups(); err != nil {
		return err
	}
	if err := hs.complete(); err != nil {
		return err
	}
	hs.deleteOld()
	return nil
}

// begin marks the SA as rekeying and settles the proposals, PRF, group and
// SK_d; done is the new SA's ID when the peer's rekey did it already.
func (hs *rekeyIKERequester) begin() (done string, err error) {
	sa := hs.sa
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if sa.state != stateEstablished {
		return "", errors.New("IKE SA not established")
	}
	if n := sa.rekeyedBy; n != nil {
		// The peer rekeyed it a moment ago: what the caller asked for is done.
		return n.id(), nil
	}
	if sa.ikeRekeying {
		return "", errors.New("IKE SA is being rekeyed already")
	}
	if sa.childOps > 0 {
		return "", errors.New("a Child SA exchange of this IKE SA is in flight")
	}
	sa.ikeRekeying = true
	hs.props, hs.prf, hs.group, hs.requirePQ = sa.conn.IKEProposals, sa.suite.prf, sa.suite.group, sa.conn.RequirePQ
	hs.skd = append([]byte(nil), sa.keys.SkD...)
	return "", nil
}

// allocate takes the new SA's SPI and makes Ni.
func (hs *rekeyIKERequester) allocate() error {
	e := hs.sa.eng
	spi, err := e.newSPI()
	if err != nil {
		return err
	}
	hs.spi = spi
	hs.ni = make([]byte, nonceLen(hs.prf))
	_, err = e.cfg.Rand.Read(hs.ni)
	return err
}

// exchange sends SA, Ni, KEi and waits for the answer, once more with the
// group an INVALID_KE_PAYLOAD asks for.
func (hs *rekeyIKERequester) exchange() error {
	for try := 0; ; try++ {
		dh, err := hs.group.GenerateKey(hs.sa.eng.cfg.Rand)
		if err != nil {
			return err
		}
		hs.dh = dh
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

// build is the request: SA (protocol IKE, the new SPI), Ni, KEi. Called
// with mu held.
func (hs *rekeyIKERequester) build(msgID uint32) ([][]byte, error) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], hs.spi)
	ps := []wire.Payload{&wire.SA{Proposals: toWire(hs.props, wire.ProtoIKE, b[:], true)}, &wire.Nonce{Data: hs.ni},
		&wire.KE{Group: hs.group.ID(), Data: hs.dh.Public()}}
	return hs.sa.sealMessage(wire.CREATE_CHILD_SA, msgID, false, ps)
}

// deleteOld deletes what the rekey left: the old SA, or after a collision
// this side lost, our redundant new SA (the peer deletes the old).
func (hs *rekeyIKERequester) deleteOld() {
	if hs.redundant != nil {
		hs.redundant.deleteIKE(hs.ctx, "redundant after a simultaneous rekey")
		return
	}
	hs.sa.deleteIKE(hs.ctx, "rekeyed")
}

// endRekeying clears the rekey-in-progress mark; if the own rekey failed
// while the peer's succeeded, the Child SAs go to the peer's new SA.
func (sa *ikeSA) endRekeying() {
	sa.mu.Lock()
	sa.ikeRekeying = false
	pend := sa.peerIKERekey
	var h handover
	if pend != nil && sa.rekeyedBy == nil {
		sa.peerIKERekey = nil
		h = sa.detachTo(pend)
	} else {
		pend = nil
	}
	sa.mu.Unlock()
	if pend != nil {
		pend.adopt(h)
	}
}

// readAnswer checks the answer: the suite we offered (require_pq holding
// for the new SA too), the responder's nonce and SK(0).
func (hs *rekeyIKERequester) readAnswer() error {
	resp := hs.resp
	for _, p := range resp.payloads {
		if n, ok := p.(*wire.Notify); ok && n.Code.IsError() {
			return &notifyError{code: n.Code, when: "IKE SA rekey"}
		}
	}
	saP, _ := wire.Find(resp.payloads, wire.PayloadSA).(*wire.SA)
	nonce, _ := wire.Find(resp.payloads, wire.PayloadNonce).(*wire.Nonce)
	ke, _ := wire.Find(resp.payloads, wire.PayloadKE).(*wire.KE)
	if saP == nil || nonce == nil || ke == nil {
		return errors.New("IKE rekey response without SA, Nonce or KE")
	}
	s := acceptChosen(hs.props, saP, wire.ProtoIKE, true)
	if s == nil || len(s.spi) != 8 || ke.Group != s.group.ID() {
		return errors.New("responder chose an IKE proposal we did not offer")
	}
	if hs.requirePQ && !s.postQuantum() {
		return fmt.Errorf("responder chose %s for the rekeyed IKE SA, without a post-quantum key exchange, and require_pq is set", s)
	}
	shared, err := hs.dh.SharedSecret(ke.Data)
	if err != nil {
		return err
	}
	hs.chosen, hs.nr, hs.secrets = s, append([]byte(nil), nonce.Data...), [][]byte{shared}
	return nil
}

// followups runs the additional key exchanges the answer chose (RFC 9370
// §2.2.4), on the old SA.
func (hs *rekeyIKERequester) followups() error {
	more, err := hs.sa.runFollowups(hs.ctx, "IKE SA rekey", hs.chosen.adds(), hs.resp.payloads)
	if err != nil {
		wipe(hs.secrets[0])
		return err
	}
	hs.secrets = append(hs.secrets, more...)
	return nil
}

// complete makes our new SA from all the key exchanges; then §2.8.2
// decides, after a collision, which new SA survives and takes the Child
// SAs.
func (hs *rekeyIKERequester) complete() error {
	sa, s := hs.sa, hs.chosen
	sa.mu.Lock()
	n := sa.successor(s, true, hs.spi, binary.BigEndian.Uint64(s.spi))
	n.ni, n.nr = hs.ni, hs.nr
	if err := n.deriveRekeyedMulti(hs.prf, hs.skd, hs.secrets); err != nil {
		sa.mu.Unlock()
		return err
	}
	if sa.rekeyedBy != nil {
		// The peer's rekey won already (it deleted this SA while ours was
		// outstanding): ours is redundant.
		kept := sa.rekeyedBy
		sa.log(slog.LevelInfo, "IKE SA rekeyed by the peer first: ours is redundant", "kept", kept.id())
		sa.mu.Unlock()
		n.publish(false) // to send its Delete
		hs.survivor, hs.redundant = kept, n
		return nil
	}
	theirs := sa.peerIKERekey
	if theirs == nil {
		h := sa.detachTo(n)
		sa.mu.Unlock()
		n.adopt(h)
		n.publish(true)
		hs.survivor = n
		return nil
	}
	// §2.8.2: both rekeyed at once. The exchange with the lowest nonce
	// made the redundant SA.
	sa.peerIKERekey = nil
	if bytes.Compare(lowestNonce(n.ni, n.nr), lowestNonce(theirs.ni, theirs.nr)) < 0 {
		sa.log(slog.LevelInfo, "simultaneous IKE SA rekey: ours is redundant", "kept", theirs.id())
		h := sa.detachTo(theirs)
		sa.mu.Unlock()
		n.publish(false) // to send its Delete
		theirs.adopt(h)
		hs.survivor, hs.redundant = theirs, n
		return nil
	}
	sa.log(slog.LevelInfo, "simultaneous IKE SA rekey: the peer's is redundant", "kept", n.id())
	h := sa.detachTo(n)
	sa.mu.Unlock()
	n.adopt(h)
	n.publish(true)
	// The peer deletes its redundant SA once its own exchange completes;
	// if its answer was lost and the old SA is gone by then, it never can.
	// Then this side removes it, after the peer had time to.
	grace := 4 * sa.eng.cfg.RetransmitTimeout
	time.AfterFunc(grace, func() {
		theirs.mu.Lock()
		alive := theirs.state == stateEstablished && len(theirs.children) == 0
		theirs.mu.Unlock()
		if alive {
			// The peer may never have made its half (its own exchange
			// failed when the old SA went): one Delete, no waiting for
			// an answer that may not come.
			if ch := theirs.sendFinalDelete(); ch == nil {
				return
			}
			theirs.destroy("redundant after a simultaneous rekey; the peer did not delete it")
		}
	})
	hs.survivor = n
	return nil
}
