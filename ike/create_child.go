package ike

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// CREATE_CHILD_SA (RFC 7296 §1.3): further Child SAs and Child SA rekeys,
// with optional PFS. IKE SA rekeying is in rekey_ike.go.

// createChildResponder answers one CREATE_CHILD_SA request for a Child SA.
// Its steps run in order, each failing with the notify §1.3 and §2.21
// prescribe. It runs with the SA's mutex held.
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
}

// respondCreateChild answers CREATE_CHILD_SA. Caller holds mu, and runs
// after (when not nil) once it is released.
func (sa *ikeSA) respondCreateChild(inner []wire.Payload) (pkt [][]byte, after func()) {
	if sa.state != stateEstablished {
		// §2.25: an exchange on an SA being deleted or not yet up.
		return sa.errorResponse(wire.CREATE_CHILD_SA, wire.NotifyTemporaryFailure, nil), nil
	}
	if saP, _ := wire.Find(inner, wire.PayloadSA).(*wire.SA); saP != nil && len(saP.Proposals) > 0 && saP.Proposals[0].Protocol == wire.ProtoIKE {
		return sa.respondRekeyIKE(inner)
	}
	hs := &createChildResponder{sa: sa, inner: inner, req: childRequestFrom(inner)}
	payloads, refusal, err := hs.handshake()
	if err != nil {
		sa.log(slog.LevelWarn, "CREATE_CHILD_SA refused", "err", err, "notify", notifyName(refusal.Code))
		sa.eng.stats.notify(notifyName(refusal.Code))
		pkt, err := sa.sealMessage(wire.CREATE_CHILD_SA, sa.respID, true, []wire.Payload{refusal})
		if err != nil {
			return nil, nil
		}
		return pkt, nil
	}
	pkt, err = sa.sealMessage(wire.CREATE_CHILD_SA, sa.respID, true, payloads)
	if err != nil {
		sa.log(slog.LevelError, "cannot seal CREATE_CHILD_SA response", "err", err)
		return nil, nil
	}
	return pkt, nil
}

// handshake runs the steps of §1.3.1 and §1.3.3; on failure it returns
// the notify to answer with.
func (hs *createChildResponder) handshake() ([]wire.Payload, *wire.Notify, error) {
	if err := hs.readPayloads(); err != nil {
		return nil, &wire.Notify{Code: wire.NotifyInvalidSyntax}, err
	}
	if n, err := hs.findRekeyed(); err != nil {
		return nil, n, err
	}
	if n, err := hs.chooseProposal(); err != nil {
		return nil, n, err
	}
	if err := hs.keyExchange(); err != nil {
		return nil, &wire.Notify{Code: wire.NotifyInvalidSyntax}, err
	}
	payloads, code, err := hs.accept()
	if err != nil {
		return nil, &wire.Notify{Code: code}, err
	}
	return payloads, nil, nil
}

// readPayloads checks for SA, Ni, TSi and TSr (§1.3.1).
func (hs *createChildResponder) readPayloads() error {
	hs.nonce, _ = wire.Find(hs.inner, wire.PayloadNonce).(*wire.Nonce)
	hs.ke, _ = wire.Find(hs.inner, wire.PayloadKE).(*wire.KE)
	if hs.req.sa == nil || hs.nonce == nil || hs.req.tsi == nil || hs.req.tsr == nil {
		return errors.New("CREATE_CHILD_SA without SA, Nonce, TSi or TSr")
	}
	return nil
}

// findRekeyed finds the Child SA named by REKEY_SA: its SPI is the one the
// requester receives on, our outbound SPI (§1.3.3).
func (hs *createChildResponder) findRekeyed() (*wire.Notify, error) {
	n := wire.FindNotify(hs.inner, wire.NotifyRekeySA)
	if n == nil {
		return nil, nil
	}
	if len(n.SPI) != 4 {
		return &wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("REKEY_SA without a 4-octet SPI")
	}
	hs.rekeys = hs.sa.childByPeerSPI(binary.BigEndian.Uint32(n.SPI))
	if hs.rekeys != nil && hs.rekeys.deleting {
		// §2.25: a rekey of an SA this side is closing (it finished its own
		// rekey of it first) is refused for now; the Delete follows.
		return &wire.Notify{Code: wire.NotifyTemporaryFailure}, fmt.Errorf("child SA %x is being deleted", n.SPI)
	}
	if hs.rekeys == nil {
		// §2.25: the SA may have been deleted meanwhile.
		return &wire.Notify{Code: wire.NotifyChildSANotFound, Protocol: wire.ProtoESP, SPI: append([]byte(nil), n.SPI...)},
			fmt.Errorf("no Child SA with SPI %x to rekey", n.SPI)
	}
	return nil, nil
}

// chooseProposal selects an ESP proposal including its DH group (PFS), and
// asks for the selected group when the KE carries another (§1.3).
func (hs *createChildResponder) chooseProposal() (*wire.Notify, error) {
	s := selectProposal(hs.sa.conn.ESPProposals, hs.req.sa.Proposals, wire.ProtoESP, true)
	if s == nil {
		return &wire.Notify{Code: wire.NotifyNoProposalChosen}, fmt.Errorf("no acceptable ESP proposal in %s", describeOffer(hs.req.sa.Proposals))
	}
	if s.group != nil && (hs.ke == nil || hs.ke.Group != s.group.ID()) {
		g := s.group.ID()
		return &wire.Notify{Code: wire.NotifyInvalidKEPayload, Data: []byte{byte(g >> 8), byte(g)}},
			fmt.Errorf("KE group differs from the selected %s", s.group.Name())
	}
	hs.req.suite = s
	return nil, nil
}

// keyExchange makes Nr and, with PFS, our KE and the new g^ir.
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
	dh, err := g.GenerateKey(sa.eng.cfg.Rand)
	if err != nil {
		return err
	}
	if hs.shared, err = dh.SharedSecret(hs.ke.Data); err != nil {
		return err
	}
	hs.keR = &wire.KE{Group: g.ID(), Data: dh.Public()}
	return nil
}

// accept installs the Child SA and builds the response: SA, Nr, [KEr],
// TSi, TSr (§1.3.1).
func (hs *createChildResponder) accept() ([]wire.Payload, wire.NotifyType, error) {
	sa := hs.sa
	ni := append([]byte(nil), hs.nonce.Data...)
	seed := keySeed{shared: hs.shared, ni: ni, nr: hs.nr, initiator: false}
	payloads, code, err := sa.acceptChild(sa.conn, hs.req, seed, hs.rekeys)
	wipe(hs.shared)
	if err != nil {
		return nil, code, err
	}
	created := sa.children[len(sa.children)-1]
	created.nonces = [2][]byte{ni, hs.nr}
	if hs.rekeys != nil {
		hs.rekeys.peerRekey = created
		sa.log(slog.LevelInfo, "CHILD SA rekeyed by the peer", "old_spi_in", fmt.Sprintf("%08x", hs.rekeys.inbound.SPI))
	}
	// Order: SA, Nr, [KEr], TSi, TSr; a transport-mode notify first if any.
	out := []wire.Payload{}
	var rest []wire.Payload
	for _, p := range payloads {
		if n, ok := p.(*wire.Notify); ok {
			out = append(out, n)
		} else {
			rest = append(rest, p)
		}
	}
	out = append(out, rest[0], &wire.Nonce{Data: hs.nr})
	if hs.keR != nil {
		out = append(out, hs.keR)
	}
	out = append(out, rest[1:]...)
	return out, 0, nil
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

// createChild runs CREATE_CHILD_SA as requester (§1.3.1, §1.3.3): a new
// Child SA with the connection's selectors, or the rekey of old, with PFS
// when the ESP proposal has a DH group. A rekey replaces old make-before-
// break: the new SA is installed, then old is deleted (§2.8).
func (sa *ikeSA) createChild(ctx context.Context, old *childSA) error {
	sa.mu.Lock()
	if sa.state != stateEstablished {
		sa.mu.Unlock()
		return errors.New("IKE SA not established")
	}
	conn := sa.conn
	props := conn.ESPProposals
	local, remote := sa.localSelectors(conn), sa.remoteSelectors(conn)
	mode := conn.Mode
	if old != nil {
		local, remote, mode = old.localTS, old.remoteTS, old.mode
	}
	prf := sa.suite.prf
	sa.mu.Unlock()

	spi, err := sa.eng.cfg.SADB.AllocateSPI()
	if err != nil {
		return err
	}
	ni := make([]byte, nonceLen(prf))
	if _, err := sa.eng.cfg.Rand.Read(ni); err != nil {
		return err
	}
	var group transform.Group
	if len(props[0].DH) > 0 {
		group = transform.GroupByID(props[0].DH[0])
	}
	var resp *response
	for try := 0; ; try++ {
		var dh transform.PrivateKey
		if group != nil {
			if dh, err = group.GenerateKey(sa.eng.cfg.Rand); err != nil {
				return err
			}
		}
		resp, err = sa.request(ctx, func(msgID uint32) ([][]byte, error) {
			var ps []wire.Payload
			if old != nil {
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], old.inbound.SPI)
				ps = append(ps, &wire.Notify{Protocol: wire.ProtoESP, SPI: b[:], Code: wire.NotifyRekeySA})
			}
			if mode == ModeTransport {
				ps = append(ps, &wire.Notify{Code: wire.NotifyUseTransportMode})
			}
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], spi)
			ps = append(ps, &wire.SA{Proposals: toWire(props, wire.ProtoESP, b[:], true)}, &wire.Nonce{Data: ni})
			if dh != nil {
				ps = append(ps, &wire.KE{Group: group.ID(), Data: dh.Public()})
			}
			ps = append(ps, &wire.TS{Selectors: local}, &wire.TS{Responder: true, Selectors: remote})
			return sa.sealMessage(wire.CREATE_CHILD_SA, msgID, false, ps)
		})
		if err != nil {
			sa.eng.cfg.SADB.ReleaseSPI(spi)
			return err
		}
		if n := wire.FindNotify(resp.payloads, wire.NotifyInvalidKEPayload); n != nil && try == 0 && len(n.Data) == 2 {
			want := binary.BigEndian.Uint16(n.Data)
			if g := transform.GroupByID(want); g != nil && offersGroupIn(props, want) {
				group = g
				continue
			}
		}
		if err := sa.completeCreateChild(resp, props, spi, ni, dh, local, remote, mode, old); err != nil {
			sa.eng.cfg.SADB.ReleaseSPI(spi)
			return err
		}
		break
	}
	if old != nil {
		sa.finishRekey(ctx, old)
	}
	return nil
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

func offersGroupIn(props []transform.Proposal, id uint16) bool {
	for _, p := range props {
		if containsID(p.DH, id) {
			return true
		}
	}
	return false
}

// completeCreateChild checks the response and installs the Child SA.
func (sa *ikeSA) completeCreateChild(resp *response, props []transform.Proposal, spi uint32, ni []byte, dh transform.PrivateKey,
	local, remote []wire.TrafficSelector, mode Mode, old *childSA) error {
	for _, p := range resp.payloads {
		if n, ok := p.(*wire.Notify); ok && n.Code.IsError() {
			return &notifyError{code: n.Code, when: "CREATE_CHILD_SA"}
		}
	}
	req := childRequestFrom(resp.payloads)
	nonce, _ := wire.Find(resp.payloads, wire.PayloadNonce).(*wire.Nonce)
	ke, _ := wire.Find(resp.payloads, wire.PayloadKE).(*wire.KE)
	if req.sa == nil || nonce == nil || req.tsi == nil || req.tsr == nil {
		return errors.New("CREATE_CHILD_SA response without SA, Nonce, TSi or TSr")
	}
	s := acceptChosen(props, req.sa, wire.ProtoESP, true)
	if s == nil || len(s.spi) != 4 {
		return errors.New("responder chose an ESP proposal we did not offer")
	}
	var shared []byte
	if s.group != nil {
		if dh == nil || ke == nil || ke.Group != s.group.ID() {
			return errors.New("PFS group mismatch in CREATE_CHILD_SA response")
		}
		var err error
		if shared, err = dh.SharedSecret(ke.Data); err != nil {
			return err
		}
	}
	if !Covers(local, req.tsi.Selectors) || !Covers(remote, req.tsr.Selectors) {
		return errors.New("responder widened the traffic selectors")
	}
	gotMode := ModeTunnel
	if req.transport {
		gotMode = ModeTransport
	}
	if gotMode != mode {
		return errors.New("responder answered with another mode")
	}
	sa.mu.Lock()
	defer sa.mu.Unlock()
	seed := keySeed{shared: shared, ni: ni, nr: append([]byte(nil), nonce.Data...), initiator: true}
	c, err := sa.installChild(s, mode, spi, binary.BigEndian.Uint32(s.spi), req.tsi.Selectors, req.tsr.Selectors, seed, old)
	wipe(shared)
	if err != nil {
		return err
	}
	c.nonces = [2][]byte{ni, seed.nr}
	if old != nil {
		old.rekeyedBy = c
	}
	return nil
}

// deleteChild deletes a Child SA with the peer (§1.4.1) and locally.
func (sa *ikeSA) deleteChild(ctx context.Context, c *childSA) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], c.inbound.SPI)
	_, err := sa.request(ctx, func(msgID uint32) ([][]byte, error) {
		return sa.sealMessage(wire.INFORMATIONAL, msgID, false, []wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPISize: 4, SPIs: [][]byte{b[:]}}})
	})
	if err != nil {
		sa.log(slog.LevelInfo, "peer did not confirm the Child SA delete", "err", err)
	}
	sa.mu.Lock()
	defer sa.mu.Unlock()
	for _, x := range sa.children {
		if x == c {
			sa.removeChild(c)
			sa.dropChild(c)
			return
		}
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
