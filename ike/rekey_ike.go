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

// respondRekeyIKE answers an IKE SA rekey request. Caller holds mu; it
// runs after, once mu is released: the new SA is published (and takes the
// Child SAs) there, since no SA's lock is taken while another's is held.
func (sa *ikeSA) respondRekeyIKE(inner []wire.Payload) (pkt [][]byte, after func()) {
	refuse := func(n *wire.Notify, err error) ([][]byte, func()) {
		sa.log(slog.LevelWarn, "IKE SA rekey refused", "err", err, "notify", notifyName(n.Code))
		sa.eng.stats.notify(notifyName(n.Code))
		pkt, _ := sa.sealMessage(wire.CREATE_CHILD_SA, sa.respID, true, []wire.Payload{n})
		return pkt, nil
	}
	if sa.rekeyedBy != nil || sa.state != stateEstablished {
		return refuse(&wire.Notify{Code: wire.NotifyTemporaryFailure}, errors.New("this IKE SA is already rekeyed"))
	}
	saP, _ := wire.Find(inner, wire.PayloadSA).(*wire.SA)
	nonce, _ := wire.Find(inner, wire.PayloadNonce).(*wire.Nonce)
	ke, _ := wire.Find(inner, wire.PayloadKE).(*wire.KE)
	if saP == nil || nonce == nil || ke == nil {
		return refuse(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("IKE rekey without SA, Nonce or KE"))
	}
	s := selectProposal(sa.conn.IKEProposals, saP.Proposals, wire.ProtoIKE, true)
	if s == nil {
		return refuse(&wire.Notify{Code: wire.NotifyNoProposalChosen}, errors.New("no acceptable IKE proposal"))
	}
	if len(s.spi) != 8 {
		return refuse(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("IKE rekey proposal without an 8-octet SPI"))
	}
	if ke.Group != s.group.ID() {
		g := s.group.ID()
		return refuse(&wire.Notify{Code: wire.NotifyInvalidKEPayload, Data: []byte{byte(g >> 8), byte(g)}}, errors.New("KE group differs"))
	}
	newSA, payloads, err := sa.rekeyedSA(s, false, binary.BigEndian.Uint64(s.spi), nonce.Data, ke)
	if err != nil {
		return refuse(&wire.Notify{Code: wire.NotifyTemporaryFailure}, err)
	}
	pkt, err = sa.sealMessage(wire.CREATE_CHILD_SA, sa.respID, true, payloads)
	if err != nil {
		return nil, nil
	}
	if sa.ikeRekeying {
		// Our own rekey is outstanding: which new SA survives is decided
		// when it completes.
		sa.peerIKERekey = newSA
		return pkt, func() { newSA.publish(true) }
	}
	h := sa.detachTo(newSA)
	return pkt, func() { newSA.adopt(h); newSA.publish(true) }
}

// rekeyedSA makes the new IKE SA: for the responder of the rekey from the
// requester's nonce and KE (returning the response payloads), for its
// requester from the response (peerKE is the responder's). Caller holds mu.
func (sa *ikeSA) rekeyedSA(s *suite, weStarted bool, peerSPI uint64, peerNonce []byte, peerKE *wire.KE) (*ikeSA, []wire.Payload, error) {
	e := sa.eng
	spi, err := e.newSPI()
	if err != nil {
		return nil, nil, err
	}
	dh, err := s.group.GenerateKey(e.cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	shared, err := dh.SharedSecret(peerKE.Data)
	if err != nil {
		return nil, nil, err
	}
	nonce := make([]byte, nonceLen(s.prf))
	if _, err := e.cfg.Rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	n := sa.successor(s, weStarted, spi, peerSPI)
	n.ni, n.nr = append([]byte(nil), peerNonce...), nonce
	var spiB [8]byte
	binary.BigEndian.PutUint64(spiB[:], spi)
	chosen := s.wire(spiB[:])
	payloads := []wire.Payload{&chosen, &wire.Nonce{Data: nonce}, &wire.KE{Group: s.group.ID(), Data: dh.Public()}}
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

// rekeyIKE runs the IKE SA rekey as requester, then deletes the old SA.
func (sa *ikeSA) rekeyIKE(ctx context.Context) (string, error) {
	sa.mu.Lock()
	if sa.state != stateEstablished {
		sa.mu.Unlock()
		return "", errors.New("IKE SA not established")
	}
	if n := sa.rekeyedBy; n != nil {
		// The peer rekeyed it a moment ago: what the caller asked for is done.
		sa.mu.Unlock()
		return n.id(), nil
	}
	if sa.ikeRekeying {
		sa.mu.Unlock()
		return "", errors.New("IKE SA is being rekeyed already")
	}
	sa.ikeRekeying = true
	props := sa.conn.IKEProposals
	prf := sa.suite.prf
	group := sa.suite.group
	skd := append([]byte(nil), sa.keys.SkD...)
	sa.mu.Unlock()
	id, err := sa.rekeyIKEExchange(ctx, props, prf, group, skd)
	wipe(skd)
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
	}
	return id, err
}

// rekeyIKEExchange runs the CREATE_CHILD_SA that rekeys the IKE SA.
func (sa *ikeSA) rekeyIKEExchange(ctx context.Context, props []transform.Proposal, prf *transform.PRF, group transform.Group, skd []byte) (string, error) {
	e := sa.eng
	spi, err := e.newSPI()
	if err != nil {
		return "", err
	}
	ni := make([]byte, nonceLen(prf))
	if _, err := e.cfg.Rand.Read(ni); err != nil {
		return "", err
	}
	for try := 0; ; try++ {
		dh, err := group.GenerateKey(e.cfg.Rand)
		if err != nil {
			return "", err
		}
		resp, err := sa.request(ctx, func(msgID uint32) ([][]byte, error) {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], spi)
			ps := []wire.Payload{&wire.SA{Proposals: toWire(props, wire.ProtoIKE, b[:], true)}, &wire.Nonce{Data: ni},
				&wire.KE{Group: group.ID(), Data: dh.Public()}}
			return sa.sealMessage(wire.CREATE_CHILD_SA, msgID, false, ps)
		})
		if err != nil {
			return "", err
		}
		if n := wire.FindNotify(resp.payloads, wire.NotifyInvalidKEPayload); n != nil && try == 0 && len(n.Data) == 2 {
			if g := transform.GroupByID(binary.BigEndian.Uint16(n.Data)); g != nil && offersGroupIn(props, g.ID()) {
				group = g
				continue
			}
		}
		newSA, redundant, err := sa.completeRekeyIKE(resp, props, spi, ni, dh, prf, skd)
		if err != nil {
			return "", err
		}
		if redundant != nil {
			// Ours lost the collision: delete it; the peer deletes the old.
			redundant.deleteIKE(ctx, "redundant after a simultaneous rekey")
			return newSA.id(), nil
		}
		sa.deleteIKE(ctx, "rekeyed")
		return newSA.id(), nil
	}
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

// completeRekeyIKE makes our new SA from the response. It returns the SA
// that now carries the Child SAs and, after a collision this side lost, the
// redundant SA of ours to delete.
func (sa *ikeSA) completeRekeyIKE(resp *response, props []transform.Proposal, spi uint64, ni []byte, dh transform.PrivateKey,
	oldPRF *transform.PRF, skd []byte) (*ikeSA, *ikeSA, error) {
	for _, p := range resp.payloads {
		if n, ok := p.(*wire.Notify); ok && n.Code.IsError() {
			return nil, nil, &notifyError{code: n.Code, when: "IKE SA rekey"}
		}
	}
	saP, _ := wire.Find(resp.payloads, wire.PayloadSA).(*wire.SA)
	nonce, _ := wire.Find(resp.payloads, wire.PayloadNonce).(*wire.Nonce)
	ke, _ := wire.Find(resp.payloads, wire.PayloadKE).(*wire.KE)
	if saP == nil || nonce == nil || ke == nil {
		return nil, nil, errors.New("IKE rekey response without SA, Nonce or KE")
	}
	s := acceptChosen(props, saP, wire.ProtoIKE, true)
	if s == nil || len(s.spi) != 8 || ke.Group != s.group.ID() {
		return nil, nil, errors.New("responder chose an IKE proposal we did not offer")
	}
	shared, err := dh.SharedSecret(ke.Data)
	if err != nil {
		return nil, nil, err
	}
	sa.mu.Lock()
	n := sa.successor(s, true, spi, binary.BigEndian.Uint64(s.spi))
	n.ni, n.nr = ni, append([]byte(nil), nonce.Data...)
	if err := n.deriveRekeyed(oldPRF, skd, shared); err != nil {
		sa.mu.Unlock()
		return nil, nil, err
	}
	if sa.rekeyedBy != nil {
		// The peer's rekey won already (it deleted this SA while ours was
		// outstanding): ours is redundant.
		kept := sa.rekeyedBy
		sa.log(slog.LevelInfo, "IKE SA rekeyed by the peer first: ours is redundant", "kept", kept.id())
		sa.mu.Unlock()
		n.publish(false) // to send its Delete
		return kept, n, nil
	}
	theirs := sa.peerIKERekey
	if theirs == nil {
		h := sa.detachTo(n)
		sa.mu.Unlock()
		n.adopt(h)
		n.publish(true)
		return n, nil, nil
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
		return theirs, n, nil
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
			theirs.deleteIKE(context.Background(), "redundant after a simultaneous rekey; the peer did not delete it")
		}
	})
	return n, nil, nil
}
