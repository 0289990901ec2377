package ike

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// IKE_INTERMEDIATE (RFC 9242) and the additional key exchanges it carries
// in the initial exchanges (RFC 9370 §2.2.2). Both sides announce the
// exchange with INTERMEDIATE_EXCHANGE_SUPPORTED in IKE_SA_INIT; a proposal
// with ADDKE transforms is only chosen when both did. Then, between
// IKE_SA_INIT and IKE_AUTH, the initiator runs one IKE_INTERMEDIATE per
// additional key exchange, in type order (ADDKE1 first):
//
//	HDR(IKE_INTERMEDIATE), SK {KEi(n)}  -->
//	                                <--  HDR(IKE_INTERMEDIATE), SK {KEr(n)}
//
// Each message is protected, and fragmented (RFC 7383) when large, with
// the keys in force, and after each exchange both sides derive new ones
// from the old SK_d and the exchange's secret:
// SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr), then prf+ as in §2.14.
//
// Every IKE_INTERMEDIATE message is authenticated in IKE_AUTH: each side
// chains IntAuth_iN = prf(SK_pi, IntAuth_i(N-1) | A | P) over the
// initiator's messages and IntAuth_rN likewise over the responder's, with
// the SK_p that protected the message, where A is the header and the SK
// payload's generic header as if the message were sent whole and
// unencrypted (lengths of header, SK header and inner payloads only), and
// P the inner payloads. AUTH then signs IntAuth_iN | IntAuth_rN |
// IKE_AUTH's message ID after the usual octets (keys.go signedOctets).
//
// The responder sends its IKE_INTERMEDIATE response under the old keys
// and switches at once; it keeps the old inbound keys until the next
// request arrives under the new ones, so that a retransmitted request (its
// response was lost) is still recognised and answered from the cache.

// intermediate is a handshake's IKE_INTERMEDIATE state.
type intermediate struct {
	authI, authR []byte // IntAuth_iN and IntAuth_rN so far
	exchanges    int    // IKE_INTERMEDIATE exchanges completed
	done         int    // additional key exchanges completed
	authMID      uint32 // the IKE_AUTH request's message ID
	// prevIn (responder) opens a retransmission of the last request, sent
	// under the keys replaced since.
	prevIn *transform.Protector
}

// intermediateState returns the handshake's IKE_INTERMEDIATE state,
// making it on first use. Caller holds mu.
func (sa *ikeSA) intermediateState() *intermediate {
	if sa.inter == nil {
		sa.inter = &intermediate{}
	}
	return sa.inter
}

// addKEsLeft returns the additional key exchanges not done yet. Caller
// holds mu.
func (sa *ikeSA) addKEsLeft() []transform.Group {
	adds := sa.suite.adds()
	if sa.inter != nil {
		adds = adds[min(sa.inter.done, len(adds)):]
	}
	return adds
}

// IntAuthData is IntAuth_A | IntAuth_P of an IKE_INTERMEDIATE message with
// header hdr whose inner payloads are plain, the first of type first: the
// header with Next Payload SK and the length of header, SK header and
// inner payloads, the SK payload's generic header with that length, and
// the inner payloads (RFC 9242 §3.3.2, as strongSwan computes it).
// Exported for cmd/ikeload, which chains it the same way.
func IntAuthData(hdr wire.Header, first wire.PayloadType, plain []byte) []byte {
	hdr.NextPayload = wire.PayloadSK
	hdr.Length = uint32(wire.HeaderLen + wire.GenericHeaderLen + len(plain))
	out := make([]byte, 0, int(hdr.Length))
	out = wire.AppendHeader(out, &hdr)
	sk := wire.GenericHeaderLen + len(plain)
	out = append(out, byte(first), 0, byte(sk>>8), byte(sk))
	return append(out, plain...)
}

// chainIntAuth adds an IKE_INTERMEDIATE message to the initiator's
// (fromInitiator) or responder's IntAuth chain, with the SK_p in force.
// Caller holds mu.
func (sa *ikeSA) chainIntAuth(fromInitiator bool, hdr wire.Header, first wire.PayloadType, plain []byte) {
	x := sa.intermediateState()
	chain, skp := &x.authI, sa.keys.SkPi
	if !fromInitiator {
		chain, skp = &x.authR, sa.keys.SkPr
	}
	data := IntAuthData(hdr, first, plain)
	h := sa.suite.prf.New(skp)
	h.Write(*chain)
	h.Write(data)
	*chain = h.Sum((*chain)[:0])
	wipe(data)
}

// intAuthOctets are what AUTH signs after the usual octets when
// IKE_INTERMEDIATE exchanges took place: IntAuth_iN | IntAuth_rN |
// IKE_AUTH's message ID (RFC 9242 §3.3.2); none otherwise. Caller holds mu.
func (sa *ikeSA) intAuthOctets(out []byte) []byte {
	x := sa.inter
	if x == nil || x.exchanges == 0 {
		return out
	}
	out = append(append(out, x.authI...), x.authR...)
	return binary.BigEndian.AppendUint32(out, x.authMID)
}

// updateKeys replaces the IKE SA's keys after an additional key exchange:
// SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr) (RFC 9370 §2.2.2), and
// wipes the old ones and shared. It returns the old inbound protector
// for the caller to keep or wipe. Caller holds mu.
func (sa *ikeSA) updateKeys(shared []byte) (*transform.Protector, error) {
	skeyseed := transform.RekeySKEYSEED(sa.suite.prf, sa.keys.SkD, [][]byte{shared}, sa.ni, sa.nr)
	wipe(shared)
	oldKeys, oldOut, oldIn := sa.keys, sa.out, sa.in
	if err := sa.keysFrom(skeyseed); err != nil {
		return nil, err
	}
	oldKeys.Wipe()
	oldOut.Wipe()
	return oldIn, nil
}

// dropPrevIn wipes the keys kept for a retransmitted IKE_INTERMEDIATE
// request: a request under the new keys came, or the handshake ended.
// Caller holds mu.
func (sa *ikeSA) dropPrevIn() {
	if sa.saHandshake != nil && sa.inter != nil && sa.inter.prevIn != nil {
		sa.inter.prevIn.Wipe()
		sa.inter.prevIn = nil
	}
}

// checkPrevious authenticates a retransmitted request under the keys
// replaced after the last IKE_INTERMEDIATE exchange. Caller holds mu.
func (sa *ikeSA) checkPrevious(pkt []byte, msg *wire.Message) bool {
	if sa.saHandshake == nil || sa.inter == nil || sa.inter.prevIn == nil {
		return false
	}
	in := sa.in
	sa.in = sa.inter.prevIn
	err := sa.checkOnly(pkt, msg)
	sa.in = in
	return err == nil
}

// exchangeIntermediates runs, as initiator, the additional key exchanges
// the responder chose, one IKE_INTERMEDIATE each, in type order. It runs
// without the SA's lock; each exchange takes it where it reads or changes
// the SA.
func (hs *initiator) exchangeIntermediates() error {
	sa := hs.sa
	sa.mu.Lock()
	adds := sa.suite.adds()
	sa.mu.Unlock()
	for i, g := range adds {
		x := &intermediateRequester{sa: sa, ctx: hs.ctx, group: g, n: i + 1}
		if err := x.handshake(); err != nil {
			return err
		}
	}
	return nil
}

// intermediateRequester is one IKE_INTERMEDIATE key exchange this side
// starts (RFC 9370 §2.2.2): a state struct whose handshake() lists the
// steps.
type intermediateRequester struct {
	sa    *ikeSA
	ctx   context.Context
	group transform.Group
	n     int // 1 for the first additional key exchange
	priv  transform.PrivateKey
	resp  *response
	ke    *wire.KE
}

func (x *intermediateRequester) handshake() error {
	if err := x.generate(); err != nil {
		return err
	}
	if err := x.exchange(); err != nil {
		return err
	}
	if err := x.checkAnswer(); err != nil {
		return err
	}
	return x.update()
}

// generate makes this exchange's fresh key.
func (x *intermediateRequester) generate() error {
	priv, err := x.group.GenerateKey(x.sa.eng.cfg.Rand)
	x.priv = priv
	return err
}

// exchange sends KEi(n) and waits for the answer.
func (x *intermediateRequester) exchange() error {
	resp, err := x.sa.request(x.ctx, x.build)
	x.resp = resp
	return err
}

// build seals HDR(IKE_INTERMEDIATE), SK {KEi(n)} and adds it to IntAuth_i.
// Called with mu held.
func (x *intermediateRequester) build(msgID uint32) ([][]byte, error) {
	sa := x.sa
	inner := []wire.Payload{&wire.KE{Group: x.group.ID(), Data: x.priv.Public()}}
	pkt, err := sa.sealMessage(wire.IKE_INTERMEDIATE, msgID, false, inner)
	if err != nil {
		return nil, err
	}
	hdr := wire.Header{SPIi: sa.spii, SPIr: sa.spir, Version: wire.Version, Exchange: wire.IKE_INTERMEDIATE, Flags: sa.flags(false), MessageID: msgID}
	plain := wire.AppendPayloads(nil, inner)
	sa.chainIntAuth(true, hdr, inner[0].Type(), plain)
	return pkt, nil
}

// checkAnswer takes KEr(n) from the answer, adds the answer to IntAuth_r
// and computes the exchange's secret. INVALID_KE_PAYLOAD cannot be
// followed here: the method was settled in IKE_SA_INIT.
func (x *intermediateRequester) checkAnswer() error {
	sa, ps := x.sa, x.resp.payloads
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok && n.Code.IsError() {
			ne := &notifyError{code: n.Code, when: fmt.Sprintf("IKE_INTERMEDIATE (additional key exchange %d, %s)", x.n, x.group.Name())}
			if n.Code == wire.NotifyInvalidKEPayload {
				return fmt.Errorf("%w: the method was negotiated in IKE_SA_INIT, another cannot be chosen now", ne)
			}
			return ne
		}
	}
	x.ke, _ = wire.Find(ps, wire.PayloadKE).(*wire.KE)
	if x.ke == nil {
		return refuse(wire.NotifyInvalidSyntax, fmt.Errorf("IKE_INTERMEDIATE response without KE (additional key exchange %d)", x.n)).counted("invalid_ke")
	}
	if x.ke.Group != x.group.ID() {
		return refuse(wire.NotifyInvalidSyntax, fmt.Errorf("IKE_INTERMEDIATE response with key exchange method %d, %s was negotiated", x.ke.Group, x.group.Name())).counted("invalid_ke")
	}
	sa.mu.Lock()
	defer sa.mu.Unlock()
	sa.chainIntAuth(false, x.resp.hdr, x.resp.plain.first, x.resp.plain.plain)
	return nil
}

// update computes the secret and derives the next keys (SKEYSEED(n)). A
// ciphertext that fails its checks ends the handshake, logged
// (draft-ietf-ipsecme-ikev2-mlkem §2.2).
func (x *intermediateRequester) update() error {
	shared, err := x.priv.SharedSecret(x.ke.Data)
	x.priv = nil
	if err != nil {
		return refuse(wire.NotifyInvalidSyntax, fmt.Errorf("responder's key exchange value in additional key exchange %d (%s): %w", x.n, x.group.Name(), err)).counted("invalid_ke")
	}
	sa := x.sa
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if sa.state != stateAuthenticating {
		wipe(shared)
		return errClosed
	}
	old, err := sa.updateKeys(shared)
	if err != nil {
		return err
	}
	old.Wipe()
	in := sa.intermediateState()
	in.exchanges++
	in.done++
	sa.log(slog.LevelDebug, "additional key exchange done, keys updated", "exchange", x.n, "method", x.group.Name())
	return nil
}

// intermediateResponder answers one IKE_INTERMEDIATE request. It runs with
// the SA's mutex held.
type intermediateResponder struct {
	sa     *ikeSA
	hdr    *wire.Header
	inner  []wire.Payload
	plain  plainMessage
	group  transform.Group // the additional key exchange due, nil when none
	ke     *wire.KE
	shared []byte
	resp   []wire.Payload
}

// respondIntermediate answers IKE_INTERMEDIATE (RFC 9242) and returns the
// response. A refusal ends the handshake: the SA goes after the answer.
func (sa *ikeSA) respondIntermediate(hdr *wire.Header, inner []wire.Payload, plain plainMessage) [][]byte {
	hs := &intermediateResponder{sa: sa, hdr: hdr, inner: inner, plain: plain}
	if err := hs.handshake(); err != nil {
		r := asRefusal(err, wire.NotifyInvalidSyntax)
		sa.eng.observeFailure(sa.remote.Addr(), false, r.failure)
		pkt := sa.answer(wire.IKE_INTERMEDIATE, "IKE_INTERMEDIATE refused", r)
		wipe(hs.shared)
		sa.destroyLocked("IKE_INTERMEDIATE failed")
		return pkt
	}
	pkt, err := hs.finish()
	if err != nil {
		sa.log(slog.LevelError, "cannot answer IKE_INTERMEDIATE", "err", err)
		sa.destroyLocked("internal error")
		return nil
	}
	return pkt
}

func (hs *intermediateResponder) handshake() error {
	if err := hs.checkAnnounced(); err != nil {
		return err
	}
	hs.authenticateRequest()
	if err := hs.readKE(); err != nil {
		return err
	}
	return hs.keyExchange()
}

// checkAnnounced refuses IKE_INTERMEDIATE from a peer that did not
// announce it in IKE_SA_INIT (RFC 9242 §3.1).
func (hs *intermediateResponder) checkAnnounced() error {
	if !hs.sa.peerIntermediate {
		return refuse(wire.NotifyInvalidSyntax, errors.New("IKE_INTERMEDIATE from a peer that did not announce INTERMEDIATE_EXCHANGE_SUPPORTED"))
	}
	return nil
}

// authenticateRequest adds the request to IntAuth_i, under the keys that
// protected it.
func (hs *intermediateResponder) authenticateRequest() {
	hs.sa.chainIntAuth(true, *hs.hdr, hs.plain.first, hs.plain.plain)
}

// readKE takes KEi(n) when an additional key exchange is due. Its method
// was negotiated: another is answered with INVALID_KE_PAYLOAD naming it,
// which the initiator cannot follow (it ends the handshake). With no key
// exchange due, the exchange carries nothing this side knows of and is
// answered empty (RFC 9242 allows it for other uses).
func (hs *intermediateResponder) readKE() error {
	sa := hs.sa
	hs.ke, _ = wire.Find(hs.inner, wire.PayloadKE).(*wire.KE)
	if left := sa.addKEsLeft(); len(left) > 0 {
		hs.group = left[0]
	}
	switch {
	case hs.group == nil && hs.ke != nil:
		return refuse(wire.NotifyInvalidSyntax, errors.New("IKE_INTERMEDIATE with a KE payload after the additional key exchanges"))
	case hs.group != nil && hs.ke == nil:
		return refuse(wire.NotifyInvalidSyntax, fmt.Errorf("IKE_INTERMEDIATE without the KE payload of additional key exchange %s", hs.group.Name()))
	case hs.group != nil && hs.ke.Group != hs.group.ID():
		return refuseWith(groupNotify(hs.group), fmt.Errorf("additional key exchange with method %d, %s was negotiated", hs.ke.Group, hs.group.Name())).
			counted("invalid_ke").logged(slog.LevelInfo, "IKE_INTERMEDIATE: another key exchange method than negotiated", "received", hs.ke.Group, "negotiated", hs.group.Name())
	}
	return nil
}

// keyExchange answers KEi(n): a Diffie-Hellman key of our own, or the
// encapsulation to the initiator's ML-KEM key, whose checks failing is
// answered with INVALID_SYNTAX (draft-ietf-ipsecme-ikev2-mlkem §2.2).
func (hs *intermediateResponder) keyExchange() error {
	if hs.group == nil {
		return nil
	}
	pub, shared, err := transform.Respond(hs.group, hs.sa.eng.cfg.Rand, hs.ke.Data)
	if err != nil {
		return refuse(wire.NotifyInvalidSyntax, fmt.Errorf("initiator's %s value: %w", hs.group.Name(), err)).counted("invalid_ke").
			logged(slog.LevelInfo, "IKE_INTERMEDIATE: invalid key exchange value", "method", hs.group.Name(), "err", err)
	}
	hs.shared = shared
	hs.resp = []wire.Payload{&wire.KE{Group: hs.group.ID(), Data: pub}}
	return nil
}

// finish seals the response under the keys in force, adds it to IntAuth_r,
// then switches to the next keys, keeping the old inbound ones for a
// retransmission of this request.
func (hs *intermediateResponder) finish() ([][]byte, error) {
	sa := hs.sa
	pkt, err := sa.sealMessage(wire.IKE_INTERMEDIATE, sa.respID, true, hs.resp)
	if err != nil {
		wipe(hs.shared)
		return nil, err
	}
	hdr := wire.Header{SPIi: sa.spii, SPIr: sa.spir, Version: wire.Version, Exchange: wire.IKE_INTERMEDIATE, Flags: sa.flags(true), MessageID: sa.respID}
	first := wire.PayloadNone
	if len(hs.resp) > 0 {
		first = hs.resp[0].Type()
	}
	plain := wire.AppendPayloads(nil, hs.resp)
	sa.chainIntAuth(false, hdr, first, plain)
	x := sa.intermediateState()
	x.exchanges++
	if hs.group != nil {
		old, err := sa.updateKeys(hs.shared)
		if err != nil {
			return nil, err
		}
		x.prevIn = old
		x.done++
		sa.log(slog.LevelDebug, "additional key exchange done, keys updated", "exchange", x.done, "method", hs.group.Name())
	}
	return pkt, nil
}
