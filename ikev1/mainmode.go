package ikev1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

const (
	levelDebug = slog.LevelDebug
	levelInfo  = slog.LevelInfo
	levelWarn  = slog.LevelWarn
)

// nonceLen is the length of the nonces iked sends (RFC 2409 §5 allows 8
// to 256; 32 matches the strongest PRF's key).
const nonceLen = 32

// maxHalfOpen bounds the responder SAs in Main Mode: IKEv1 has no
// stateless cookie exchange, so a flood of first messages is capped.
const maxHalfOpen = 10000

// mainMode is one Main Mode's state (RFC 2409 §5), both roles: the steps
// record what the later messages' hashes and keys need.
type mainMode struct {
	started    time.Time
	authImpl   MainModeAuth
	authMethod uint16
	auth       AuthExchange
	offered    []isakmp.Transform // initiator: the transforms of message 1
	chosen     *isakmp.Transform  // the negotiated transform
	saiB       []byte             // the initiator's SA payload body
	dh         transform.PrivateKey
	gxi, gxr   []byte
	ni, nr     []byte
	hashPRF    *transform.PRF
	// next is the number of the Main Mode message expected next.
	next int
	// busy is set while the lock is released around the authentication
	// call-out: a message of this Main Mode arriving then is dropped.
	busy  bool
	hoKey halfOpenKey
	// initialContact: the peer's message 5 carried INITIAL-CONTACT.
	initialContact bool
	// onAnswer (initiator) is called once the peer answers anything
	// (InitiateOptions.OnAnswer); nil once called.
	onAnswer func()
}

// errTimeout ends a handshake whose retransmissions went unanswered.
var errTimeout = errors.New("ikev1: no answer from the peer")

// errClosed ends what the engine's Close interrupted.
var errClosed = errors.New("ikev1: engine closed")

// peerError is a handshake the peer refused with a notification.
type peerError struct{ code isakmp.NotifyType }

func (e *peerError) Error() string { return "peer refused: " + e.code.String() }

// localAddr is the address an SA uses on bind b: the bind's, or the
// connection's when the bind listens on any address.
func localAddr(b transport.Bind, c *Connection) netip.AddrPort {
	la := b.LocalAddr()
	if la.Addr().IsUnspecified() && c != nil && c.Local.IsValid() {
		return netip.AddrPortFrom(c.Local, la.Port())
	}
	return la
}

// hardLife is the ISAKMP SA lifetime this side proposes: a tenth beyond
// the rekey time, as strongSwan's (4 h rekey, 4.4 h life).
func hardLife(d time.Duration) time.Duration { return d + d/10 }

// startMainMode sends Main Mode's first message for c. done, when not
// nil, hears how Main Mode ended; onAnswer, when not nil, that the peer
// answered.
func (e *Engine) startMainMode(c *Connection, done chan error, onAnswer func()) (*isakmpSA, error) {
	if !c.Remote.Addr().IsValid() || c.Remote.Addr().IsUnspecified() {
		return nil, fmt.Errorf("connection %s has no remote address to initiate to", c.Name)
	}
	b, err := e.bindFor(c)
	if err != nil {
		return nil, err
	}
	authImpl, method := e.authFor(c.Auth)
	if authImpl == nil {
		return nil, fmt.Errorf("connection %s: no IKEv1 authentication method for its credentials", c.Name)
	}
	if err := prepareInitiator(authImpl, c.Auth); err != nil {
		return nil, fmt.Errorf("connection %s: %w", c.Name, err)
	}
	var offered []isakmp.Transform
	for _, p := range c.IKEProposals {
		ts, err := phase1Transforms(p, method, hardLife(c.ikeLifetime()))
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			t.Number = uint8(len(offered) + 1)
			offered = append(offered, t)
		}
	}
	offered = withAuthAttributes(authImpl, c.Auth, offered)
	cookie, err := e.newCookie()
	if err != nil {
		return nil, err
	}
	now := e.cfg.Now()
	remote := c.Remote
	if remote.Port() == 0 {
		remote = netip.AddrPortFrom(remote.Addr(), 500)
	}
	sa := &isakmpSA{eng: e, serial: e.nextSerial.Add(1), initiator: true, started: now, contact: remote.Addr(),
		conn: c, bind: b, local: localAddr(b, c), remote: remote, icookie: cookie, lastHeard: now}
	saP := &isakmp.SA{DOI: isakmp.DOIIPsec, Situation: isakmp.SitIdentityOnly,
		Proposals: []isakmp.Proposal{{Number: 1, Protocol: isakmp.ProtoISAKMP, Transforms: offered}}}
	sa.mm = &mainMode{started: now, authImpl: authImpl, authMethod: method, offered: offered,
		saiB: saP.MarshalBody(), next: 2, onAnswer: onAnswer}
	if done != nil {
		sa.p1Waiters = append(sa.p1Waiters, done)
	}
	ps := append([]isakmp.Payload{saP}, e.vendorIDs()...)
	ps = append(ps, authVendorIDs(authImpl)...)
	e.register(sa, nil)
	sa.mu.Lock()
	defer sa.unlock()
	sa.p1Flight = sa.startFlight(sa.plain(isakmp.ExchangeMain, ps), func() { sa.fail(errTimeout, "timeout") })
	sa.after(e.cfg.HalfOpenTimeout, func() {
		if sa.state == stateMainMode {
			sa.fail(errTimeout, "timeout")
		}
	})
	sa.log(levelInfo, "initiating Main Mode", "proposals", len(offered), "auth", authImpl.Name(method))
	return sa, nil
}

// vendorIDer is a MainModeAuth that announces itself (GSS-API).
type vendorIDer interface{ VendorIDs() [][]byte }

func authVendorIDs(a MainModeAuth) []isakmp.Payload {
	v, ok := a.(vendorIDer)
	if !ok {
		return nil
	}
	var out []isakmp.Payload
	for _, id := range v.VendorIDs() {
		out = append(out, &isakmp.VendorID{Data: id})
	}
	return out
}

// fail ends Main Mode (or the SA): waiters hear err, the failure is
// counted under label, and the SA is destroyed. Caller holds mu.
func (sa *isakmpSA) fail(err error, label string) {
	if sa.dead {
		return
	}
	if sa.state == stateMainMode {
		sa.eng.stats.failure(label)
		sa.log(levelWarn, "Main Mode failed", "err", err.Error())
		peer, initiator := sa.remote.Addr(), sa.initiator
		sa.later(func() { sa.eng.observeFailure(peer, initiator, label) })
	}
	sa.finishWaiters(err)
	sa.destroyLocked(err.Error())
}

// onMainMode dispatches a Main Mode message. Caller holds mu.
func (sa *isakmpSA) onMainMode(b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) {
	if sa.retransmitted(pkt) {
		return
	}
	mm := sa.mm
	if sa.state != stateMainMode || mm == nil || mm.busy {
		sa.eng.stats.drop(DropUnexpected)
		return
	}
	var err error
	switch {
	case sa.initiator && mm.next == 2:
		err = sa.initiatorMM2(hdr, pkt)
	case sa.initiator && mm.next == 4:
		err = sa.initiatorMM4(hdr, pkt)
	case sa.initiator && mm.next == 6:
		err = sa.initiatorMM6(b, from, hdr, pkt)
	case !sa.initiator && mm.next == 3:
		err = sa.responderMM3(hdr, pkt)
	case !sa.initiator && mm.next == 5:
		err = sa.responderMM5(b, from, hdr, pkt)
	default:
		sa.eng.stats.drop(DropUnexpected)
		return
	}
	if err != nil {
		sa.handshakeError(err)
	}
}

// dropError is a message dropped without ending the handshake (it may
// be forged or garbled; the peer retransmits the real one).
type dropError struct {
	reason string
	err    error
}

func (d *dropError) Error() string { return d.err.Error() }

func drop(reason string, format string, args ...any) error {
	return &dropError{reason: reason, err: fmt.Errorf(format, args...)}
}

// notifyError ends the handshake and tells the peer why.
type notifyError struct {
	code  isakmp.NotifyType
	label string
	err   error
}

func (n *notifyError) Error() string { return n.err.Error() }

func refuse(code isakmp.NotifyType, label, format string, args ...any) error {
	return &notifyError{code: code, label: label, err: fmt.Errorf(format, args...)}
}

// handshakeError acts on a failed Main Mode step. Caller holds mu.
func (sa *isakmpSA) handshakeError(err error) {
	var d *dropError
	if errors.As(err, &d) {
		sa.eng.stats.drop(d.reason)
		sa.log(levelDebug, "dropped Main Mode message", "err", d.err.Error())
		return
	}
	var n *notifyError
	var a *authFailure
	switch {
	case errors.As(err, &n):
		sa.sendNotify(n.code)
		sa.fail(err, n.label)
	case errors.As(err, &a):
		sa.sendNotify(isakmp.AuthenticationFailed)
		sa.fail(err, "authentication_failed")
	default:
		sa.fail(err, "internal")
	}
}

// sendNotify tells the peer about an error: encrypted once keys exist,
// else in the clear (RFC 2408 §5). Caller holds mu.
func (sa *isakmpSA) sendNotify(code isakmp.NotifyType) {
	sa.eng.stats.notify(code.String())
	n := &isakmp.Notify{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoISAKMP, Code: code, SPI: cookiePair(sa.icookie, sa.rcookie)}
	if sa.block != nil && sa.keys != nil && sa.keys.a != nil {
		sa.sendInformational([]isakmp.Payload{n})
		return
	}
	sa.eng.sendPlainNotify(sa.bind, sa.remote, sa.icookie, sa.rcookie, code, nil)
}

// initiatorMM2 reads the responder's choice and sends KE and nonce.
func (sa *isakmpSA) initiatorMM2(hdr *isakmp.Header, pkt []byte) error {
	mm := sa.mm
	if hdr.Encrypted() || hdr.RCookie == 0 {
		return drop(DropUnexpected, "message 2 encrypted or without a responder cookie")
	}
	body, err := isakmp.ParseBody(hdr.Next, pkt[isakmp.HeaderLen:], false)
	if err != nil {
		return drop(DropMalformed, "message 2: %v", err)
	}
	saP, _ := isakmp.Find(body.Payloads, isakmp.PayloadSA).(*isakmp.SA)
	if saP == nil || len(saP.Proposals) != 1 || len(saP.Proposals[0].Transforms) != 1 || saP.Proposals[0].Protocol != isakmp.ProtoISAKMP {
		return refuse(isakmp.BadProposalSyntax, "no_proposal_chosen", "message 2 does not choose exactly one ISAKMP transform")
	}
	chosen := saP.Proposals[0].Transforms[0]
	ok := false
	for i := range mm.offered {
		if sameTransform(&mm.offered[i], &chosen, isakmp.AttrLifeType, isakmp.AttrLifeDuration, isakmp.AttrGSSIdentity, attrGSSIDWin2000) {
			ok = true
		}
	}
	if !ok {
		return refuse(isakmp.NoProposalChosen, "no_proposal_chosen", "the responder chose a transform we did not offer")
	}
	suite, err := parsePhase1(&chosen)
	if err != nil {
		return refuse(isakmp.AttributesNotSupported, "no_proposal_chosen", "chosen transform: %v", err)
	}
	if suite.life == 0 {
		suite.life = hardLife(sa.conn.ikeLifetime())
	}
	sa.rcookie = hdr.RCookie
	sa.suite = suite
	mm.chosen = cloneTransform(&chosen)
	sa.noteVendorIDs(body.Payloads)
	if mm.auth, err = mm.authImpl.NewExchange(sa.authParams(&chosen)); err != nil {
		return err
	}
	if err := sa.makeKE(); err != nil {
		return err
	}
	extra, err := mm.auth.KEPayloads(nil)
	if err != nil {
		return err
	}
	ps := append([]isakmp.Payload{&isakmp.KE{Data: mm.gxi}, &isakmp.Nonce{Data: mm.ni}}, extra...)
	if sa.peerNATT {
		ps = append(ps, sa.natdPayloads()...)
	}
	stopFlight(sa.p1Flight)
	sa.p1Flight = sa.startFlight(sa.plain(isakmp.ExchangeMain, ps), func() { sa.fail(errTimeout, "timeout") })
	mm.next = 4
	return nil
}

func cloneTransform(t *isakmp.Transform) *isakmp.Transform {
	c := &isakmp.Transform{Number: t.Number, ID: t.ID}
	for _, a := range t.Attributes {
		c.Attributes = append(c.Attributes, isakmp.Attribute{Type: a.Type, Basic: a.Basic, Value: bytes.Clone(a.Value)})
	}
	return c
}

func (sa *isakmpSA) authParams(t *isakmp.Transform) *AuthParams {
	return &AuthParams{Initiator: sa.initiator, Method: sa.mm.authMethod, Creds: sa.conn.Auth, PRF: sa.suite.prf,
		LocalAddr: sa.local, PeerAddr: sa.remote, Transform: t}
}

// makeKE makes this side's DH key and nonce. Caller holds mu.
func (sa *isakmpSA) makeKE() error {
	mm := sa.mm
	dh, err := sa.suite.group.GenerateKey(sa.eng.cfg.Rand)
	if err != nil {
		return err
	}
	nonce := make([]byte, nonceLen)
	if _, err := io.ReadFull(sa.eng.cfg.Rand, nonce); err != nil {
		return err
	}
	mm.dh = dh
	if sa.initiator {
		mm.gxi, mm.ni = dh.Public(), nonce
	} else {
		mm.gxr, mm.nr = dh.Public(), nonce
	}
	return nil
}

// peerKE reads the peer's KE and nonce. Caller holds mu.
func (sa *isakmpSA) peerKE(ps []isakmp.Payload) error {
	ke, _ := isakmp.Find(ps, isakmp.PayloadKE).(*isakmp.KE)
	n, _ := isakmp.Find(ps, isakmp.PayloadNonce).(*isakmp.Nonce)
	if ke == nil || n == nil {
		return drop(DropMalformed, "KE message without KE or nonce")
	}
	if len(ke.Data) != sa.suite.group.PublicLen() {
		return refuse(isakmp.InvalidKeyInformation, "invalid_ke", "KE of %d octets for %s", len(ke.Data), sa.suite.group.Name())
	}
	if sa.initiator {
		sa.mm.gxr, sa.mm.nr = bytes.Clone(ke.Data), bytes.Clone(n.Data)
	} else {
		sa.mm.gxi, sa.mm.ni = bytes.Clone(ke.Data), bytes.Clone(n.Data)
	}
	return nil
}

// deriveKeys computes g^xy, SKEYID and the keys, and the first IV.
// Caller holds mu.
func (sa *isakmpSA) deriveKeys() error {
	mm := sa.mm
	peer := mm.gxr
	if !sa.initiator {
		peer = mm.gxi
	}
	gxy, err := mm.dh.SharedSecret(peer)
	if err != nil {
		return refuse(isakmp.InvalidKeyInformation, "invalid_ke", "peer's public value: %v", err)
	}
	defer clear(gxy)
	skeyid, err := mm.auth.SKEYID(sa.suite.prf, mm.ni, mm.nr, gxy)
	if err != nil {
		return err
	}
	defer clear(skeyid)
	k, err := deriveKeys(sa.suite.prf, skeyid, gxy, sa.icookie, sa.rcookie, sa.suite.encKeyLen())
	if err != nil {
		return err
	}
	block, err := sa.suite.encr.NewBlock(k.encKey)
	if err != nil {
		k.wipe()
		return err
	}
	k.phase1IV = initialIV(sa.suite.prf, mm.gxi, mm.gxr, block.BlockSize())
	sa.keys, sa.block = k, block
	mm.hashPRF = mm.auth.HashPRF(sa.suite.prf)
	mm.dh = nil
	sa.eng.keyLog.isakmp(sa)
	return nil
}

// ownIdentity is the identity this side sends. Caller holds mu.
func (sa *isakmpSA) ownIdentity() Identity {
	if !sa.conn.LocalID.IsZero() {
		return sa.conn.LocalID
	}
	if id := sa.mm.auth.LocalIdentity(); !id.IsZero() {
		return id
	}
	return addrIdentity(sa.local.Addr())
}

// initiatorMM4 reads the responder's KE and sends the encrypted identity
// and proof.
func (sa *isakmpSA) initiatorMM4(hdr *isakmp.Header, pkt []byte) error {
	mm := sa.mm
	if hdr.Encrypted() {
		return drop(DropUnexpected, "message 4 encrypted")
	}
	body, err := isakmp.ParseBody(hdr.Next, pkt[isakmp.HeaderLen:], false)
	if err != nil {
		return drop(DropMalformed, "message 4: %v", err)
	}
	if err := sa.peerKE(body.Payloads); err != nil {
		return err
	}
	if err := mm.auth.PeerKE(body.Payloads); err != nil {
		return err
	}
	if sa.peerNATT {
		sa.detectNAT(body.Payloads)
	}
	if err := sa.deriveKeys(); err != nil {
		return err
	}
	if sa.useNATT() {
		sa.floatToNATT()
	}
	sa.localID = sa.ownIdentity()
	idP := sa.localID.payload()
	hashI := phase1Hash(mm.hashPRF, sa.keys.skeyid, mm.gxi, mm.gxr, sa.icookie, sa.rcookie, mm.saiB, mm.hashTail(idP.Body(), true))
	proof, err := mm.auth.Prove(hashI)
	if err != nil {
		return err
	}
	ps := append([]isakmp.Payload{idP}, proof...)
	if sa.eng.firstContact(sa) {
		ps = append(ps, &isakmp.Notify{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoISAKMP, Code: isakmp.InitialContact,
			SPI: cookiePair(sa.icookie, sa.rcookie)})
	}
	pkts, err := sa.seal(isakmp.ExchangeMain, 0, 0, ps)
	if err != nil {
		return err
	}
	stopFlight(sa.p1Flight)
	sa.p1Flight = sa.startFlight(pkts, func() { sa.fail(errTimeout, "timeout") })
	mm.next = 6
	return nil
}

// initiatorMM6 verifies the responder and establishes the SA.
func (sa *isakmpSA) initiatorMM6(b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) error {
	mm := sa.mm
	if !hdr.Encrypted() {
		return drop(DropUnexpected, "message 6 not encrypted")
	}
	body, last, err := sa.open(hdr, pkt)
	if err != nil {
		return drop(DropIntegrity, "message 6: %v", err)
	}
	idP, _ := isakmp.Find(body.Payloads, isakmp.PayloadID).(*isakmp.ID)
	if idP == nil {
		return drop(DropIntegrity, "message 6 without ID (wrong keys?)")
	}
	peerID, err := identityOf(idP)
	if err != nil {
		return refuse(isakmp.InvalidIDInformation, "invalid_id", "responder's identity: %v", err)
	}
	hashR := phase1Hash(mm.hashPRF, sa.keys.skeyid, mm.gxr, mm.gxi, sa.rcookie, sa.icookie, mm.saiB, mm.hashTail(idP.Body(), false))
	// The message decrypted to a well-formed chain: the IV moves on, so
	// that a notification about it (AUTHENTICATION-FAILED) uses the IV the
	// peer expects.
	sa.setIV(0, last)
	if err := sa.verifyUnlocked(hashR, peerID, body.Payloads); err != nil {
		return err
	}
	if sa.dead {
		return nil
	}
	if !sa.conn.RemoteID.matches(peerID) {
		return refuse(isakmp.InvalidIDInformation, "identity_mismatch", "responder is %s, the connection wants %s", peerID, sa.conn.RemoteID)
	}
	sa.remoteID = peerID
	if from != sa.remote && sa.encap {
		sa.remote, sa.bind = from, b
	}
	sa.establish()
	return nil
}

// verifyUnlocked runs the method's Verify without the SA's lock (it may
// block on CRLs or a KDC). Caller holds mu; on return mu is held again
// and the caller checks sa.dead.
func (sa *isakmpSA) verifyUnlocked(hash []byte, peerID Identity, ps []isakmp.Payload) error {
	mm := sa.mm
	mm.busy = true
	auth := mm.auth
	sa.mu.Unlock()
	err := auth.Verify(hash, peerID, ps)
	sa.mu.Lock()
	mm.busy = false
	return err
}

// respondMainMode1 answers a first Main Mode message: choose a
// connection and a transform, make the SA, send message 2.
func (e *Engine) respondMainMode1(b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) {
	key := halfOpenKey{peer: from, icookie: hdr.ICookie}
	e.tableMu.Lock()
	old := e.halfOpen[key]
	halfOpen := len(e.halfOpen)
	e.tableMu.Unlock()
	if old != nil {
		old.mu.Lock()
		if !old.retransmitted(pkt) {
			e.stats.drop(DropUnexpected)
		}
		old.unlock()
		return
	}
	if halfOpen >= maxHalfOpen {
		e.stats.drop(DropRateLimited)
		return
	}
	msg, err := isakmp.Parse(pkt)
	if err != nil {
		e.stats.drop(DropMalformed)
		e.log.Info("dropped malformed Main Mode message", "version", "ikev1", "peer", from, "err", err)
		var pe *isakmp.Error
		if errors.As(err, &pe) {
			e.sendPlainNotify(b, from, hdr.ICookie, 0, pe.Notify, nil)
		}
		return
	}
	saP, _ := isakmp.Find(msg.Payloads, isakmp.PayloadSA).(*isakmp.SA)
	if saP == nil || len(saP.Proposals) != 1 || saP.Proposals[0].Protocol != isakmp.ProtoISAKMP {
		e.stats.drop(DropMalformed)
		e.sendPlainNotify(b, from, hdr.ICookie, 0, isakmp.BadProposalSyntax, nil)
		return
	}
	c, authImpl, method, chosen, suite := e.chooseMainMode(b, from, saP)
	if c == nil {
		label := "no_proposal_chosen"
		if offered, accepted := e.authMismatch(b, from, saP); offered != nil {
			// The algorithms fit, the authentication method does not:
			// the two sides have no method in common.
			label = "auth_mismatch"
			e.log.Warn("authentication mismatch: the peer offers an authentication method no connection accepts", "version", "ikev1",
				"peer", from, "offered", offered, "accepted", accepted)
		} else {
			e.log.Info("no acceptable Main Mode proposal", "version", "ikev1", "peer", from, "offer", describeOffer(saP))
		}
		e.stats.failure(label)
		e.sendPlainNotify(b, from, hdr.ICookie, 0, isakmp.NoProposalChosen, nil)
		e.observeFailure(from.Addr(), false, label)
		return
	}
	cookie, err := e.newCookie()
	if err != nil {
		return
	}
	now := e.cfg.Now()
	sa := &isakmpSA{eng: e, serial: e.nextSerial.Add(1), started: now, contact: from.Addr(), conn: c, bind: b,
		local: localAddr(b, c), remote: from, icookie: hdr.ICookie, rcookie: cookie, lastHeard: now}
	if suite.life == 0 {
		suite.life = hardLife(c.ikeLifetime())
	}
	sa.suite = suite
	sa.mm = &mainMode{started: now, authImpl: authImpl, authMethod: method, chosen: cloneTransform(chosen),
		saiB: bytes.Clone(saP.Body), next: 3, hoKey: key}
	sa.noteVendorIDs(msg.Payloads)
	reply := []isakmp.Payload{&isakmp.SA{DOI: isakmp.DOIIPsec, Situation: isakmp.SitIdentityOnly,
		Proposals: []isakmp.Proposal{{Number: saP.Proposals[0].Number, Protocol: isakmp.ProtoISAKMP,
			Transforms: []isakmp.Transform{replyTransform(authImpl, c.Auth, sa.mm.chosen)}}}}}
	reply = append(reply, e.vendorIDs()...)
	reply = append(reply, authVendorIDs(authImpl)...)
	e.register(sa, &key)
	sa.mu.Lock()
	defer sa.unlock()
	pkts := sa.plain(isakmp.ExchangeMain, reply)
	sa.send(pkts)
	sa.answered(pkt, pkts)
	sa.after(e.cfg.HalfOpenTimeout, func() {
		if sa.state == stateMainMode {
			sa.fail(errTimeout, "timeout")
		}
	})
	sa.log(levelDebug, "answered Main Mode", "algorithms", suite.String(), "auth", authImpl.Name(method))
}

// chooseMainMode picks the connection and transform for a first Main
// Mode message: among the connections whose addresses fit, in
// configuration order, the first of our proposals (in our order) that
// one of the peer's transforms matches with our authentication method.
// With pre-shared keys the connection is fixed here, before the peer's
// identity is known (its identity is encrypted with a key derived from
// the PSK: RFC 2409 §5.4's well-known constraint).
func (e *Engine) chooseMainMode(b transport.Bind, from netip.AddrPort, saP *isakmp.SA) (*Connection, MainModeAuth, uint16, *isakmp.Transform, *phase1Suite) {
	local := b.LocalAddr().Addr()
	for _, c := range e.Connections() {
		if c.Local.IsValid() && !local.IsUnspecified() && c.Local != local {
			continue
		}
		if c.Remote.Addr().IsValid() && !c.Remote.Addr().IsUnspecified() && c.Remote.Addr() != from.Addr() {
			continue
		}
		authImpl, method := e.authFor(c.Auth)
		if authImpl == nil {
			continue
		}
		for _, p := range c.IKEProposals {
			for i := range saP.Proposals[0].Transforms {
				t := &saP.Proposals[0].Transforms[i]
				s, err := parsePhase1(t)
				if err != nil || s.auth != method || !matchesPhase1(p, s) {
					continue
				}
				return c, authImpl, method, t, s
			}
		}
	}
	return nil, nil, 0, nil, nil
}

// authMismatch reports, for an offer chooseMainMode refused, whether a
// connection for the peer would have taken one of its transforms but for
// the authentication method: then it returns the methods the peer offered
// and those the connections accept (nil when the algorithms did not fit
// either).
func (e *Engine) authMismatch(b transport.Bind, from netip.AddrPort, saP *isakmp.SA) (offered, accepted []string) {
	local := b.LocalAddr().Addr()
	fits := false
	for _, c := range e.Connections() {
		if c.Local.IsValid() && !local.IsUnspecified() && c.Local != local {
			continue
		}
		if c.Remote.Addr().IsValid() && !c.Remote.Addr().IsUnspecified() && c.Remote.Addr() != from.Addr() {
			continue
		}
		authImpl, method := e.authFor(c.Auth)
		if authImpl == nil {
			continue
		}
		if name := authImpl.Name(method); !slices.Contains(accepted, name) {
			accepted = append(accepted, name)
		}
		for _, p := range c.IKEProposals {
			for i := range saP.Proposals[0].Transforms {
				if s, err := parsePhase1(&saP.Proposals[0].Transforms[i]); err == nil && matchesPhase1(p, s) {
					fits = true
				}
			}
		}
	}
	if !fits {
		return nil, nil
	}
	for i := range saP.Proposals[0].Transforms {
		s, err := parsePhase1(&saP.Proposals[0].Transforms[i])
		if err != nil {
			continue
		}
		if name := authMethodName(s.auth); !slices.Contains(offered, name) {
			offered = append(offered, name)
		}
	}
	return offered, accepted
}

// authMethodName names a Main Mode authentication method attribute as
// the methods name themselves in logs, or by its number.
func authMethodName(m uint16) string {
	switch m {
	case isakmp.AuthPSK:
		return "psk"
	case isakmp.AuthRSASig:
		return "rsa-sig"
	case isakmp.AuthECDSA256, isakmp.AuthECDSA384, isakmp.AuthECDSA521:
		return "ecdsa-sig"
	case isakmp.AuthGSSAPI:
		return "kerberos"
	}
	return fmt.Sprintf("method %d", m)
}

// describeOffer prints a peer's Main Mode offer for a log line.
func describeOffer(saP *isakmp.SA) string {
	var parts []string
	for _, p := range saP.Proposals {
		for i := range p.Transforms {
			s, err := parsePhase1(&p.Transforms[i])
			if err != nil {
				parts = append(parts, "("+err.Error()+")")
				continue
			}
			parts = append(parts, fmt.Sprintf("%s/auth %d", s, s.auth))
		}
	}
	return fmt.Sprint(parts)
}

// responderMM3 reads the initiator's KE and answers with ours.
func (sa *isakmpSA) responderMM3(hdr *isakmp.Header, pkt []byte) error {
	mm := sa.mm
	if hdr.Encrypted() {
		return drop(DropUnexpected, "message 3 encrypted")
	}
	body, err := isakmp.ParseBody(hdr.Next, pkt[isakmp.HeaderLen:], false)
	if err != nil {
		return drop(DropMalformed, "message 3: %v", err)
	}
	if err := sa.peerKE(body.Payloads); err != nil {
		return err
	}
	if mm.auth, err = mm.authImpl.NewExchange(sa.authParams(mm.chosen)); err != nil {
		return err
	}
	// A method may refuse with payloads that tell the initiator why
	// (GSS-API's KRB-ERROR token): message 4 carries them, without keys
	// made for the refused peer, and the handshake ends there.
	extra, refusal := mm.auth.KEPayloads(body.Payloads)
	if refusal != nil && len(extra) == 0 {
		return refusal
	}
	if err := sa.makeKE(); err != nil {
		return err
	}
	natd := isakmp.Find(body.Payloads, isakmp.PayloadNATD) != nil
	if refusal == nil {
		if sa.peerNATT && natd {
			sa.detectNAT(body.Payloads)
		}
		if err := sa.deriveKeys(); err != nil {
			return err
		}
	}
	ps := append([]isakmp.Payload{&isakmp.KE{Data: mm.gxr}, &isakmp.Nonce{Data: mm.nr}}, extra...)
	if sa.peerNATT && natd && refusal == nil {
		ps = append(ps, sa.natdPayloads()...)
	}
	pkts := sa.plain(isakmp.ExchangeMain, ps)
	sa.send(pkts)
	sa.answered(pkt, pkts)
	if refusal != nil {
		// The reason travels in message 4: no notification besides it,
		// which the initiator might read first and lose the reason.
		sa.fail(refusal, "authentication_failed")
		return nil
	}
	mm.next = 5
	return nil
}

// responderMM5 verifies the initiator and answers with our proof.
func (sa *isakmpSA) responderMM5(b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) error {
	mm := sa.mm
	if !hdr.Encrypted() {
		return drop(DropUnexpected, "message 5 not encrypted")
	}
	body, last, err := sa.open(hdr, pkt)
	if err != nil {
		return drop(DropIntegrity, "message 5: %v", err)
	}
	idP, _ := isakmp.Find(body.Payloads, isakmp.PayloadID).(*isakmp.ID)
	if idP == nil {
		return drop(DropIntegrity, "message 5 without ID (wrong keys?)")
	}
	peerID, err := identityOf(idP)
	if err != nil {
		return refuse(isakmp.InvalidIDInformation, "invalid_id", "initiator's identity: %v", err)
	}
	hashI := phase1Hash(mm.hashPRF, sa.keys.skeyid, mm.gxi, mm.gxr, sa.icookie, sa.rcookie, mm.saiB, mm.hashTail(idP.Body(), false))
	sa.setIV(0, last)
	if err := sa.verifyUnlocked(hashI, peerID, body.Payloads); err != nil {
		return err
	}
	if sa.dead {
		return nil
	}
	if !sa.conn.RemoteID.matches(peerID) {
		return refuse(isakmp.InvalidIDInformation, "identity_mismatch", "initiator is %s, the connection wants %s", peerID, sa.conn.RemoteID)
	}
	for _, p := range body.Payloads {
		if n, ok := p.(*isakmp.Notify); ok && n.Code == isakmp.InitialContact {
			mm.initialContact = true
		}
	}
	// The initiator floats to the NAT-T port with message 5 (RFC 3947 §4).
	if from != sa.remote {
		sa.remote, sa.bind = from, b
		if _, natt := b.(transport.NATTBind); natt {
			sa.encap = true
			sa.local = localAddr(b, sa.conn)
		}
	}
	if sa.useNATT() && !sa.encap {
		sa.log(levelWarn, "NAT detected but the initiator did not float to port 4500")
	}
	sa.remoteID = peerID
	sa.localID = sa.ownIdentity()
	idR := sa.localID.payload()
	hashR := phase1Hash(mm.hashPRF, sa.keys.skeyid, mm.gxr, mm.gxi, sa.rcookie, sa.icookie, mm.saiB, mm.hashTail(idR.Body(), true))
	proof, err := mm.auth.Prove(hashR)
	if err != nil {
		return err
	}
	pkts, err := sa.seal(isakmp.ExchangeMain, 0, 0, append([]isakmp.Payload{idR}, proof...))
	if err != nil {
		return err
	}
	sa.send(pkts)
	sa.answered(pkt, pkts)
	sa.eng.leaveHalfOpen(mm.hoKey)
	sa.establish()
	return nil
}

// establish completes Main Mode. Caller holds mu.
func (sa *isakmpSA) establish() {
	mm := sa.mm
	now := sa.eng.cfg.Now()
	sa.state = stateEstablished
	sa.established = now
	sa.expires = now.Add(sa.suite.life)
	sa.authName = mm.authImpl.Name(mm.authMethod)
	stopFlight(sa.p1Flight)
	sa.p1Flight = nil
	sa.keys.skeyid = nil
	mm.auth.Close()
	if !sa.initiator {
		sa.eng.countContact(sa)
	}
	initialContact := mm.initialContact
	sa.mm = nil
	sa.eng.stats.completedHandshake(sa.role(), now.Sub(mm.started))
	attrs := []any{"algorithms", sa.suite.String(), "auth", sa.authName,
		"local_id", sa.localID.String(), "remote_id", sa.remoteID.String(), "nat_local", sa.natLocal, "nat_remote", sa.natRemote,
		"lifetime", sa.suite.life.String()}
	if name := mm.authPeerName(); name != "" {
		attrs = append(attrs, "peer_principal", name)
	}
	sa.log(levelInfo, "ISAKMP SA established", attrs...)
	sa.startTimers()
	sa.finishWaiters(nil)
	// After the lock is released: INITIAL-CONTACT deletes the peer's old
	// SAs (it rebooted). A new SA beside an old one is otherwise left
	// alone: it may be a phase 1 rekey, whose old SA hands its IPsec SAs
	// over when it is deleted (retire), or a second connection.
	if initialContact {
		sa.later(func() { sa.eng.initialContact(sa) })
	}
}

// peers returns the other established SAs with sa's peer: same remote
// address and identity. Called without locks.
func (e *Engine) peersOf(sa *isakmpSA) []*isakmpSA {
	sa.mu.Lock()
	remote, id, conn := sa.remote.Addr(), sa.remoteID, sa.conn
	sa.mu.Unlock()
	var out []*isakmpSA
	for _, o := range e.allSAs() {
		if o == sa {
			continue
		}
		o.mu.Lock()
		same := o.state == stateEstablished && o.remote.Addr() == remote && o.remoteID.matches(id) && o.conn.Name == conn.Name
		o.mu.Unlock()
		if same {
			out = append(out, o)
		}
	}
	return out
}

// initialContact deletes the SAs the peer had with us before it
// rebooted (RFC 2407 §4.6.3.3), without telling it: it has forgotten them.
// Only SAs established before sa's Main Mode reached us are the peer's
// old ones: one it established since may be in use (contact.go says why
// that bound suffices).
func (e *Engine) initialContact(sa *isakmpSA) {
	sa.mu.Lock()
	started := sa.started
	sa.unlock()
	for _, o := range e.peersOf(sa) {
		o.mu.Lock()
		old := o.established.Before(started)
		o.unlock()
		if old {
			o.destroy("peer sent INITIAL-CONTACT", false)
		}
	}
}

// Initiate establishes the named connection: a Main Mode, unless an
// ISAKMP SA of it is established, and a Quick Mode. It returns the SA's
// snapshot.
func (e *Engine) Initiate(ctx context.Context, name string) (SAInfo, error) {
	c := e.connection(name)
	if c == nil {
		return SAInfo{}, fmt.Errorf("no IKEv1 connection named %q", name)
	}
	return e.InitiateConn(ctx, c)
}

// InitiateConn establishes c, a connection that need not be among the
// configured ones.
func (e *Engine) InitiateConn(ctx context.Context, c *Connection) (SAInfo, error) {
	if err := ValidateConnection(c); err != nil {
		return SAInfo{}, err
	}
	sa, err := e.mainModeFor(ctx, c)
	if err != nil {
		return SAInfo{}, err
	}
	if err := sa.quickModeWait(ctx, nil); err != nil {
		return sa.info(), err
	}
	return sa.info(), nil
}

// mainModeFor returns an established ISAKMP SA of c, making one when
// there is none.
func (e *Engine) mainModeFor(ctx context.Context, c *Connection) (*isakmpSA, error) {
	return e.mainModeNotify(ctx, c, nil)
}

// mainModeNotify is mainModeFor whose new Main Mode calls onAnswer when
// the peer answers.
func (e *Engine) mainModeNotify(ctx context.Context, c *Connection, onAnswer func()) (*isakmpSA, error) {
	for _, sa := range e.allSAs() {
		sa.mu.Lock()
		ok := sa.conn == c && sa.state == stateEstablished && !sa.rekeying &&
			(c.QuickModeLimit == 0 || sa.qmCount < c.QuickModeLimit)
		sa.mu.Unlock()
		if ok {
			return sa, nil
		}
	}
	return e.startAndWait(ctx, c, onAnswer)
}

// mainMode runs a new Main Mode for c and waits for it.
func (e *Engine) mainMode(ctx context.Context, c *Connection) (*isakmpSA, error) {
	return e.startAndWait(ctx, c, nil)
}

// startAndWait runs a new Main Mode for c and waits for it; onAnswer, when
// not nil, hears that the peer answered.
func (e *Engine) startAndWait(ctx context.Context, c *Connection, onAnswer func()) (*isakmpSA, error) {
	done := make(chan error, 1)
	sa, err := e.startMainMode(c, done, onAnswer)
	if err != nil {
		return nil, err
	}
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		return sa, nil
	case <-ctx.Done():
		sa.destroy("initiation cancelled", false)
		return nil, ctx.Err()
	case <-e.closing:
		return nil, errClosed
	}
}

// unlock releases mu and runs what was queued with later.
func (sa *isakmpSA) unlock() {
	fns := sa.deferred
	sa.deferred = nil
	sa.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// later queues fn to run once mu is released (a call-out, or work on
// another SA). Caller holds mu.
func (sa *isakmpSA) later(fn func()) { sa.deferred = append(sa.deferred, fn) }

// receive handles one message for this SA.
func (sa *isakmpSA) receive(b transport.Bind, from netip.AddrPort, hdr *isakmp.Header, pkt []byte) {
	sa.mu.Lock()
	if mm := sa.mm; !sa.dead && sa.initiator && mm != nil && mm.onAnswer != nil {
		// Anything the peer sends to our cookie, even a refusal, says
		// it speaks IKEv1. Heard before the message is handled, so
		// before a refusal ends the initiation: whoever waits on it
		// learns both in order. Called with the lock released.
		onAnswer := mm.onAnswer
		mm.onAnswer = nil
		sa.unlock()
		onAnswer()
		sa.mu.Lock()
	}
	defer sa.unlock()
	if sa.dead {
		sa.eng.stats.drop(DropUnknownSPI)
		return
	}
	switch hdr.Exchange {
	case isakmp.ExchangeMain:
		sa.onMainMode(b, from, hdr, pkt)
	case isakmp.ExchangeQuick:
		sa.onQuickMode(b, from, hdr, pkt)
	case isakmp.ExchangeInformational:
		sa.onInformational(b, from, hdr, pkt)
	default:
		sa.eng.stats.drop(DropUnsupported)
		sa.log(levelInfo, "dropped message of an unsupported exchange", "exchange", hdr.Exchange.String())
	}
}
