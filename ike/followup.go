package ike

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): the additional key exchanges of a
// CREATE_CHILD_SA, for a new or rekeyed Child SA with PFS and for an IKE
// SA rekey. The CREATE_CHILD_SA negotiates the proposal and runs the first
// key exchange; its response carries N(ADDITIONAL_KEY_EXCHANGE) with a
// link the responder chose, and the initiator sends one IKE_FOLLOWUP_KE
// per additional exchange, each carrying the link of the previous answer:
//
//	HDR(CREATE_CHILD_SA), SK {SA, Ni, KEi, [TSi, TSr]}  -->
//	               <--  HDR(CREATE_CHILD_SA), SK {SA, Nr, KEr, [TSi, TSr],
//	                                              N(ADDITIONAL_KEY_EXCHANGE)(link1)}
//	HDR(IKE_FOLLOWUP_KE), SK {KEi(1), N(ADDITIONAL_KEY_EXCHANGE)(link1)}  -->
//	               <--  HDR(IKE_FOLLOWUP_KE), SK {KEr(1)[, N(ADDITIONAL_KEY_EXCHANGE)(link2)]}
//
// The keys come from all the secrets at the end: a Child SA's KEYMAT =
// prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)), an IKE SA's SKEYSEED
// = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n)); the SA is made
// only then. A responder that no longer knows the link (it expired, or
// never existed) answers STATE_NOT_FOUND, and the initiator gives up that
// CREATE_CHILD_SA.

// Bounds on the responder's pending exchanges: a peer that never sends
// its IKE_FOLLOWUP_KE leaves state behind, so it expires, and there are
// never more pending per IKE SA than the requests it may have outstanding.
const (
	followupTimeout = 60 * time.Second
	maxFollowups    = recvWindow
	linkLen         = 8
)

// followup is a CREATE_CHILD_SA whose additional key exchanges are still
// running, on the responder.
type followup struct {
	link    []byte
	started time.Time
	groups  []transform.Group // the exchanges still due, in order
	secrets [][]byte          // SK(0), SK(1), ... so far
	ni, nr  []byte

	// A Child SA: the prepared answer, and the Child SA it rekeys.
	child  *childOffer
	rekeys *childSA
	// An IKE SA rekey: the new SA's suite and SPIs.
	ike             *suite
	ourSPI, peerSPI uint64
}

// wipe zeroes the secrets.
func (f *followup) wipe() {
	for _, s := range f.secrets {
		wipe(s)
	}
	f.secrets = nil
}

// followupTable holds the pending followups by IKE SA. It is the engine's
// rather than the SA's so that an SA carries no word for a rare state
// (compact.go); its lock is a leaf lock, taken with an SA's lock held.
type followupTable struct {
	mu sync.Mutex
	m  map[*ikeSA][]*followup
}

// addFollowup keeps f for sa, dropping the oldest when sa has too many.
// Caller holds sa.mu.
func (sa *ikeSA) addFollowup(f *followup) {
	t := &sa.eng.followups
	t.mu.Lock()
	if t.m == nil {
		t.m = map[*ikeSA][]*followup{}
	}
	list := t.m[sa]
	var dropped *followup
	if len(list) >= maxFollowups {
		dropped, list = list[0], list[1:]
	}
	t.m[sa] = append(list, f)
	t.mu.Unlock()
	sa.hasFollowups = true
	if dropped != nil {
		sa.releaseFollowup(dropped, "too many pending")
	}
}

// takeFollowup removes and returns sa's followup of link, nil when there is
// none or it expired (expired ones are released on the way). Caller holds
// sa.mu.
func (sa *ikeSA) takeFollowup(link []byte) *followup {
	if !sa.hasFollowups {
		return nil
	}
	t := &sa.eng.followups
	now := sa.eng.cfg.Now()
	var found *followup
	var expired []*followup
	t.mu.Lock()
	var kept []*followup
	for _, f := range t.m[sa] {
		switch {
		case now.Sub(f.started) > followupTimeout:
			expired = append(expired, f)
		case found == nil && subtle.ConstantTimeCompare(f.link, link) == 1:
			found = f
		default:
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		delete(t.m, sa)
	} else {
		t.m[sa] = kept
	}
	t.mu.Unlock()
	sa.hasFollowups = len(kept) > 0
	for _, f := range expired {
		sa.releaseFollowup(f, "expired")
	}
	return found
}

// dropFollowups releases what sa's pending followups hold: the SA is
// going. Caller holds sa.mu.
func (sa *ikeSA) dropFollowups() {
	if !sa.hasFollowups {
		return
	}
	t := &sa.eng.followups
	t.mu.Lock()
	list := t.m[sa]
	delete(t.m, sa)
	t.mu.Unlock()
	sa.hasFollowups = false
	for _, f := range list {
		sa.releaseFollowup(f, "IKE SA deleted")
	}
}

// releaseFollowup frees an abandoned followup: its secrets and the SPI
// allocated for its Child SA. Caller holds sa.mu.
func (sa *ikeSA) releaseFollowup(f *followup, why string) {
	f.wipe()
	if f.child != nil {
		sa.eng.cfg.SADB.ReleaseSPI(f.child.spi)
	}
	sa.log(slog.LevelInfo, "pending additional key exchange abandoned", "reason", why)
}

// newLink draws the data of an ADDITIONAL_KEY_EXCHANGE notify.
func (sa *ikeSA) newLink() ([]byte, error) {
	link := make([]byte, linkLen)
	_, err := sa.eng.cfg.Rand.Read(link)
	return link, err
}

// linkNotify is N(ADDITIONAL_KEY_EXCHANGE)(link).
func linkNotify(link []byte) *wire.Notify {
	return &wire.Notify{Code: wire.NotifyAdditionalKeyExchange, Data: link}
}

// startFollowup turns a CREATE_CHILD_SA answer into the first of several:
// f is kept under a fresh link and the answer gets N(ADDITIONAL_KEY_EXCHANGE).
// Caller holds mu.
func (sa *ikeSA) startFollowup(f *followup, answer []wire.Payload) ([]wire.Payload, error) {
	link, err := sa.newLink()
	if err != nil {
		return nil, err
	}
	f.link, f.started = link, sa.eng.cfg.Now()
	sa.addFollowup(f)
	return append(answer, linkNotify(link)), nil
}

// followupResponder answers one IKE_FOLLOWUP_KE request. It runs with the
// SA's mutex held.
type followupResponder struct {
	sa    *ikeSA
	inner []wire.Payload
	f     *followup
	ke    *wire.KE
	resp  []wire.Payload
	after func()
}

// respondFollowup answers IKE_FOLLOWUP_KE. Caller holds mu, and runs after
// (when not nil) once it is released. A refusal ends that CREATE_CHILD_SA,
// not the IKE SA.
func (sa *ikeSA) respondFollowup(inner []wire.Payload) (pkt [][]byte, after func()) {
	hs := &followupResponder{sa: sa, inner: inner}
	if err := hs.handshake(); err != nil {
		if hs.f != nil {
			sa.releaseFollowup(hs.f, "refused")
		}
		return sa.answer(wire.IKE_FOLLOWUP_KE, "IKE_FOLLOWUP_KE refused", asRefusal(err, wire.NotifyTemporaryFailure)), nil
	}
	pkt, err := sa.sealMessage(wire.IKE_FOLLOWUP_KE, sa.respID, true, hs.resp)
	if err != nil {
		sa.log(slog.LevelError, "cannot seal IKE_FOLLOWUP_KE response", "err", err)
		return nil, nil
	}
	return pkt, hs.after
}

func (hs *followupResponder) handshake() error {
	if err := hs.checkState(); err != nil {
		return err
	}
	if err := hs.findState(); err != nil {
		return err
	}
	if err := hs.readKE(); err != nil {
		return err
	}
	if err := hs.keyExchange(); err != nil {
		return err
	}
	if len(hs.f.groups) > 0 {
		return hs.more()
	}
	return hs.complete()
}

// checkState refuses exchanges on an SA that is not up (§2.25).
func (hs *followupResponder) checkState() error {
	if hs.sa.state != stateEstablished {
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, errors.New("the IKE SA is not established"))
	}
	return nil
}

// findState finds the pending exchange the link names; STATE_NOT_FOUND
// when there is none (RFC 9370 §2.2.4).
func (hs *followupResponder) findState() error {
	n := wire.FindNotify(hs.inner, wire.NotifyAdditionalKeyExchange)
	if n == nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("IKE_FOLLOWUP_KE without ADDITIONAL_KEY_EXCHANGE"))
	}
	hs.f = hs.sa.takeFollowup(n.Data)
	if hs.f == nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyStateNotFound}, fmt.Errorf("no pending key exchange for link %x", n.Data)).
			logged(slog.LevelInfo, "IKE_FOLLOWUP_KE for an unknown or expired exchange: STATE_NOT_FOUND")
	}
	return nil
}

// readKE takes KEi(n); a method other than the negotiated one is answered
// with INVALID_KE_PAYLOAD naming it, which ends this CREATE_CHILD_SA.
func (hs *followupResponder) readKE() error {
	want := hs.f.groups[0]
	hs.ke, _ = wire.Find(hs.inner, wire.PayloadKE).(*wire.KE)
	if hs.ke == nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, errors.New("IKE_FOLLOWUP_KE without KE"))
	}
	if hs.ke.Group != want.ID() {
		return refuseWith(groupNotify(want), fmt.Errorf("IKE_FOLLOWUP_KE with method %d, %s was negotiated", hs.ke.Group, want.Name())).
			logged(slog.LevelInfo, "IKE_FOLLOWUP_KE: another key exchange method than negotiated", "received", hs.ke.Group, "negotiated", want.Name())
	}
	return nil
}

// keyExchange answers KEi(n) and keeps SK(n); an ML-KEM key failing its
// checks is INVALID_SYNTAX.
func (hs *followupResponder) keyExchange() error {
	g := hs.f.groups[0]
	pub, shared, err := transform.Respond(g, hs.sa.eng.cfg.Rand, hs.ke.Data)
	if err != nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyInvalidSyntax}, fmt.Errorf("initiator's %s value: %w", g.Name(), err))
	}
	hs.f.secrets = append(hs.f.secrets, shared)
	hs.f.groups = hs.f.groups[1:]
	hs.resp = []wire.Payload{&wire.KE{Group: g.ID(), Data: pub}}
	return nil
}

// more answers with the next link: further exchanges are due.
func (hs *followupResponder) more() error {
	sa := hs.sa
	link, err := sa.newLink()
	if err != nil {
		return err
	}
	hs.f.link, hs.f.started = link, sa.eng.cfg.Now()
	sa.addFollowup(hs.f)
	hs.resp = append(hs.resp, linkNotify(link))
	return nil
}

// complete makes what the CREATE_CHILD_SA asked for from all the secrets:
// the Child SA, or the new IKE SA (published after the lock, as
// respondRekeyIKE does).
func (hs *followupResponder) complete() error {
	sa, f := hs.sa, hs.f
	defer f.wipe()
	if f.child != nil {
		seed := keySeed{shared: f.secrets[0], ni: f.ni, nr: f.nr, additional: f.secrets[1:], initiator: false}
		if _, err := sa.installOffer(f.child, seed, f.rekeys); err != nil {
			f.child = nil // installOffer released the SPI
			return err
		}
		created := sa.children[len(sa.children)-1]
		created.nonces = [2][]byte{f.ni, f.nr}
		if f.rekeys != nil {
			f.rekeys.peerRekey = created
			sa.log(slog.LevelInfo, "CHILD SA rekeyed by the peer", "old_spi_in", fmt.Sprintf("%08x", f.rekeys.inbound.SPI))
		}
		return nil
	}
	if sa.rekeyedBy != nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, errors.New("this IKE SA was rekeyed meanwhile"))
	}
	n := sa.successor(f.ike, false, f.ourSPI, f.peerSPI)
	n.ni, n.nr = f.ni, f.nr
	if err := n.deriveRekeyedMulti(sa.suite.prf, sa.keys.SkD, f.secrets); err != nil {
		return refuseWith(&wire.Notify{Code: wire.NotifyTemporaryFailure}, err)
	}
	hs.after = sa.handOverRekeyed(n)
	return nil
}

// followupRequester runs, as initiator, the IKE_FOLLOWUP_KE exchanges of a
// CREATE_CHILD_SA whose answer chose additional key exchanges: a state
// struct whose handshake() lists the steps. It runs without the SA's lock.
type followupRequester struct {
	sa      *ikeSA
	ctx     context.Context
	what    string // "Child SA" or "IKE SA rekey", for errors
	groups  []transform.Group
	link    []byte
	secrets [][]byte // SK(1), ... collected
}

// runFollowups runs the exchanges groups after a CREATE_CHILD_SA answered
// with answer, and returns their secrets in order. On an error the
// secrets collected are wiped.
func (sa *ikeSA) runFollowups(ctx context.Context, what string, groups []transform.Group, answer []wire.Payload) ([][]byte, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	hs := &followupRequester{sa: sa, ctx: ctx, what: what, groups: groups}
	if err := hs.handshake(answer); err != nil {
		for _, s := range hs.secrets {
			wipe(s)
		}
		return nil, err
	}
	return hs.secrets, nil
}

func (hs *followupRequester) handshake(answer []wire.Payload) error {
	if err := hs.readLink(answer, "CREATE_CHILD_SA"); err != nil {
		return err
	}
	for i, g := range hs.groups {
		resp, err := hs.exchange(i+1, g)
		if err != nil {
			return err
		}
		if i+1 < len(hs.groups) {
			if err := hs.readLink(resp, "IKE_FOLLOWUP_KE"); err != nil {
				return err
			}
		}
	}
	return nil
}

// readLink takes the link for the next IKE_FOLLOWUP_KE from an answer.
func (hs *followupRequester) readLink(ps []wire.Payload, exch string) error {
	n := wire.FindNotify(ps, wire.NotifyAdditionalKeyExchange)
	if n == nil || len(n.Data) == 0 {
		return fmt.Errorf("%s: the %s answer has no ADDITIONAL_KEY_EXCHANGE notify for the additional key exchanges it chose", hs.what, exch)
	}
	hs.link = append([]byte(nil), n.Data...)
	return nil
}

// exchange runs one IKE_FOLLOWUP_KE: KEi(n) and the link, KEr(n) back.
// A ciphertext failing its checks ends the IKE SA
// (draft-ietf-ipsecme-ikev2-mlkem §2.2).
func (hs *followupRequester) exchange(n int, g transform.Group) ([]wire.Payload, error) {
	sa := hs.sa
	priv, err := g.GenerateKey(sa.eng.cfg.Rand)
	if err != nil {
		return nil, err
	}
	link := hs.link
	resp, err := sa.request(hs.ctx, func(msgID uint32) ([][]byte, error) {
		return sa.sealMessage(wire.IKE_FOLLOWUP_KE, msgID, false, []wire.Payload{&wire.KE{Group: g.ID(), Data: priv.Public()}, linkNotify(link)})
	})
	if err != nil {
		return nil, err
	}
	for _, p := range resp.payloads {
		if x, ok := p.(*wire.Notify); ok && x.Code.IsError() {
			ne := &notifyError{code: x.Code, when: fmt.Sprintf("IKE_FOLLOWUP_KE (%s, additional key exchange %d, %s)", hs.what, n, g.Name())}
			if x.Code == wire.NotifyStateNotFound {
				return nil, fmt.Errorf("%w: the responder no longer knows the exchange", ne)
			}
			return nil, ne
		}
	}
	ke, _ := wire.Find(resp.payloads, wire.PayloadKE).(*wire.KE)
	if ke == nil || ke.Group != g.ID() {
		return nil, fmt.Errorf("%s: IKE_FOLLOWUP_KE answer without the KE of %s", hs.what, g.Name())
	}
	shared, err := priv.SharedSecret(ke.Data)
	if err != nil {
		if errors.Is(err, transform.ErrKEMCiphertext) {
			sa.log(slog.LevelWarn, "invalid ML-KEM ciphertext in IKE_FOLLOWUP_KE: deleting the IKE SA", "err", err)
			sa.deleteIKE(hs.ctx, "invalid ML-KEM ciphertext")
		}
		return nil, fmt.Errorf("%s: responder's %s value: %w", hs.what, g.Name(), err)
	}
	hs.secrets = append(hs.secrets, shared)
	return resp.payloads, nil
}

// deriveRekeyedMulti computes a rekeyed IKE SA's keys from all its key
// exchanges: SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... |
// SK(n)) (RFC 9370 §2.2.4; RFC 7296 §2.18 with one), the old SA's PRF
// keying it; it wipes the secrets.
func (n *ikeSA) deriveRekeyedMulti(oldPRF *transform.PRF, skd []byte, secrets [][]byte) error {
	skeyseed := transform.RekeySKEYSEED(oldPRF, skd, secrets, n.ni, n.nr)
	for _, s := range secrets {
		wipe(s)
	}
	return n.keysFrom(skeyseed)
}

// spiBytes8 is an IKE SPI as a proposal carries it.
func spiBytes8(spi uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], spi)
	return b[:]
}
