package ike

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// saInitResponder is the responder's state for one IKE_SA_INIT request.
// Its steps run in order and each fails where the fault is found, with
// the notify RFC 7296 prescribes.
type saInitResponder struct {
	eng   *Engine
	bind  transport.Bind
	from  netip.AddrPort
	pkt   []byte
	msg   *wire.Message
	cands []*Connection
	sa    *wire.SA
	ke    *wire.KE
	nonce *wire.Nonce
	suite *suite
	// intermediate: the initiator announced IKE_INTERMEDIATE (RFC 9242).
	intermediate bool
}

// respondSAInit answers an IKE_SA_INIT request (§1.2). A refusal is
// answered unprotected, with its notify alone (§2.21.1), or dropped.
func (e *Engine) respondSAInit(b transport.Bind, from netip.AddrPort, pkt []byte, msg *wire.Message) {
	hs := &saInitResponder{eng: e, bind: b, from: from, pkt: pkt, msg: msg}
	err := hs.handshake()
	if err == nil {
		return
	}
	var r *refusal
	if !errors.As(err, &r) {
		e.log.Warn("IKE_SA_INIT failed", "peer", from, "err", err)
		return
	}
	if r.failure != "" {
		e.stats.failure(r.failure)
		e.observeFailure(from.Addr(), false, r.failure)
	}
	if r.drop != "" {
		e.stats.drop(r.drop)
	}
	if r.msg != "" {
		e.log.Log(context.Background(), r.level, r.msg, append([]any{"peer", from, "err", r.err}, r.attrs...)...)
	}
	if r.notify != nil {
		e.sendInitError(b, from, &msg.Header, r.notify.Code, r.notify.Data)
	}
}

func (hs *saInitResponder) handshake() error {
	if hs.answerRetransmission() {
		return nil
	}
	if err := hs.findConnections(); err != nil {
		return err
	}
	if err := hs.readPayloads(); err != nil {
		return err
	}
	if err := hs.checkCookie(); err != nil {
		return err
	}
	if err := hs.eng.allowInit(hs.from.Addr()); err != nil { // authlimit hook
		return err
	}
	if err := hs.chooseProposal(); err != nil {
		return err
	}
	if err := hs.checkKE(); err != nil {
		return err
	}
	return hs.createSA()
}

// answerRetransmission resends the cached response to a request already
// answered (§2.1): the same SPIi from the same peer.
func (hs *saInitResponder) answerRetransmission() bool {
	e := hs.eng
	sa := e.sas.getHalfOpen(halfOpenKey{hs.from, hs.msg.Header.SPIi})
	if sa == nil {
		return false
	}
	sa.mu.Lock()
	var resp []byte
	if sa.saHandshake != nil { // not established (and released) meanwhile
		resp = sa.msgR
	}
	sa.mu.Unlock()
	if resp != nil {
		e.stats.retransmitsAnswered.Add(1)
		e.send(hs.bind, hs.from, resp)
	}
	return true
}

// findConnections picks the connections that may answer this peer, by
// address; IKE_AUTH narrows them by identity.
func (hs *saInitResponder) findConnections() error {
	local := hs.bind.LocalAddr().Addr()
	for _, c := range hs.eng.Connections() {
		if c.Local.IsValid() && !local.IsUnspecified() && c.Local != local {
			continue
		}
		if c.Remote.Addr().IsValid() && !c.Remote.Addr().IsUnspecified() && c.Remote.Addr() != hs.from.Addr() {
			continue
		}
		hs.cands = append(hs.cands, c)
	}
	if len(hs.cands) == 0 {
		// §2.21.1 allows NO_PROPOSAL_CHOSEN for a peer we have no
		// configuration for; it tells a misconfigured peer why.
		return refuse(wire.NotifyNoProposalChosen, errors.New("no connection matches the peer")).counted("no_connection").
			logged(slog.LevelInfo, "IKE_SA_INIT from a peer no connection matches")
	}
	return nil
}

// readPayloads finds SA, KE and Ni (§1.2). A request without them cannot be
// answered: INVALID_SYNTAX may only be sent encrypted.
func (hs *saInitResponder) readPayloads() error {
	hs.sa, _ = wire.Find(hs.msg.Payloads, wire.PayloadSA).(*wire.SA)
	hs.ke, _ = wire.Find(hs.msg.Payloads, wire.PayloadKE).(*wire.KE)
	hs.nonce, _ = wire.Find(hs.msg.Payloads, wire.PayloadNonce).(*wire.Nonce)
	hs.intermediate = wire.FindNotify(hs.msg.Payloads, wire.NotifyIntermediateExchangeSupported) != nil
	if hs.sa == nil || hs.ke == nil || hs.nonce == nil {
		return dropRequest(DropMalformed, errors.New("IKE_SA_INIT without SA, KE and Nonce")).
			logged(slog.LevelInfo, "dropped IKE_SA_INIT without SA, KE and Nonce")
	}
	return nil
}

// checkCookie demands a cookie once too many SAs are half open (§2.6).
func (hs *saInitResponder) checkCookie() error {
	e := hs.eng
	threshold := e.cfg.CookieThreshold
	if threshold < 0 || e.halfOpenCount.Load() < int64(threshold) {
		return nil
	}
	// §2.6: the COOKIE notify is the first payload of the retried request.
	if len(hs.msg.Payloads) > 0 {
		if n, ok := hs.msg.Payloads[0].(*wire.Notify); ok && n.Code == wire.NotifyCookie {
			if e.cookies.valid(n.Data, hs.nonce.Data, hs.from.Addr(), hs.msg.Header.SPIi) {
				return nil
			}
		}
	}
	cookie := e.cookies.make(hs.nonce.Data, hs.from.Addr(), hs.msg.Header.SPIi)
	r := refuseWith(&wire.Notify{Code: wire.NotifyCookie, Data: cookie}, errors.New("a cookie is required"))
	r.drop = DropCookieRequired
	return r
}

// chooseProposal selects by our preference (§2.7), answering
// NO_PROPOSAL_CHOSEN when nothing fits.
//
// Additional key exchanges (RFC 9370) are chosen only when the initiator
// announced IKE_INTERMEDIATE, and a connection with RequirePQ takes only a
// suite with a post-quantum key exchange: the refusal's log line says
// which of the two made an otherwise acceptable offer unacceptable.
func (hs *saInitResponder) chooseProposal() error {
	c := hs.cands[0]
	rules := matchRules{withDH: true, noAddKE: !hs.intermediate, requirePQ: c.RequirePQ}
	hs.suite = selectProposalRules(c.IKEProposals, hs.sa.Proposals, wire.ProtoIKE, rules)
	hs.traceSelection()
	if hs.suite != nil {
		return nil
	}
	offered, configured := describeOffer(hs.sa.Proposals), describeConfigured(c.IKEProposals, true)
	if rules.requirePQ && selectProposalRules(c.IKEProposals, hs.sa.Proposals, wire.ProtoIKE, matchRules{withDH: true, noAddKE: rules.noAddKE}) != nil {
		return refuse(wire.NotifyNoProposalChosen, errors.New("the peer offers no post-quantum key exchange and require_pq is set")).counted(failurePQRequired).
			logged(slog.LevelWarn, "IKE_SA_INIT refused: the peer offers no post-quantum key exchange (ML-KEM) and require_pq is set", "connection", c.Name, "offered", offered, "configured", configured)
	}
	if rules.noAddKE && selectProposalRules(c.IKEProposals, hs.sa.Proposals, wire.ProtoIKE, matchRules{withDH: true, requirePQ: rules.requirePQ}) != nil {
		return refuse(wire.NotifyNoProposalChosen, errors.New("the peer proposes additional key exchanges without announcing IKE_INTERMEDIATE")).
			logged(slog.LevelInfo, "IKE_SA_INIT: the peer proposes additional key exchanges (RFC 9370) without announcing IKE_INTERMEDIATE", "connection", c.Name, "offered", offered, "configured", configured)
	}
	return refuse(wire.NotifyNoProposalChosen, noProposal("IKE", hs.sa.Proposals, c.IKEProposals, true)).
		logged(slog.LevelInfo, "IKE_SA_INIT: no acceptable proposal", "connection", c.Name, "offered", offered, "configured", configured)
}

// checkKE asks for the selected group when the initiator guessed another
// (§1.2, §3.4): INVALID_KE_PAYLOAD with the group number.
func (hs *saInitResponder) checkKE() error {
	if hs.ke.Group == hs.suite.group.ID() {
		return nil
	}
	return refuseWith(groupNotify(hs.suite.group), errors.New("another key exchange group")).
		logged(slog.LevelInfo, "IKE_SA_INIT: asking for another key exchange group", "received", hs.ke.Group, "requested", hs.suite.group.Name())
}

// createSA makes the half-open IKE SA, computes its keys and answers.
func (hs *saInitResponder) createSA() error {
	e := hs.eng
	spir, err := e.newSPI()
	if err != nil {
		return err
	}
	pub, shared, err := transform.Respond(hs.suite.group, e.cfg.Rand, hs.ke.Data)
	if err != nil {
		// RFC 6989: an invalid public value ends the exchange; the
		// message cannot be answered with INVALID_SYNTAX unencrypted.
		return dropRequest(DropMalformed, err).counted("invalid_ke").
			logged(slog.LevelInfo, "IKE_SA_INIT: invalid key exchange value", "err", err)
	}
	nr := make([]byte, nonceLen(hs.suite.prf))
	if _, err := e.cfg.Rand.Read(nr); err != nil {
		return err
	}
	sa := &ikeSA{
		eng: e, serial: e.nextID.Add(1), started: e.cfg.Now(),
		state: stateAuthenticating, conn: hs.cands[0],
		spii: hs.msg.Header.SPIi, spir: spir, bind: hs.bind,
		local: hs.bind.LocalAddr(), remote: hs.from, suite: e.internSuite(hs.suite),
		saHandshake: &saHandshake{
			candidates: hs.cands, ni: append([]byte(nil), hs.nonce.Data...), nr: nr,
			msgI:             append([]byte(nil), hs.pkt...),
			peerIntermediate: hs.intermediate,
		},
		responses: respCache{next: 1},
		initKey:   halfOpenKey{hs.from, hs.msg.Header.SPIi},
	}
	_, sa.encap = hs.bind.(transport.NATTBind)
	sa.natLocal, sa.natRemote = detectNAT(hs.msg.Payloads, sa.spii, 0, sa.local, sa.remote)
	if err := sa.deriveKeys(shared); err != nil {
		return err
	}
	params := &auth.Params{PRF: hs.suite.prf, SPIi: sa.spii, SPIr: sa.spir, LocalAddr: sa.local, PeerAddr: sa.remote}
	sa.authParams = params
	// The request's payloads alias the reader's buffer; the session gets
	// them parsed from the SA's own copy.
	if m, err := wire.Parse(sa.msgI); err == nil {
		params.PeerInit = m.Payloads
	}
	var extra []wire.Payload
	for _, c := range hs.cands {
		s, err := c.Auth.NewSession(params)
		if err != nil {
			sa.destroyLocked("auth setup failed")
			return fmt.Errorf("connection %s: %w", c.Name, err)
		}
		sa.sessions = append(sa.sessions, s)
		for _, p := range s.SAInitPayloads() {
			// Several candidate connections may use the same method: its
			// announcement goes once.
			if !containsPayload(extra, p) {
				extra = append(extra, p)
			}
		}
	}
	chosen := hs.suite.wire(nil)
	payloads := []wire.Payload{&chosen, &wire.KE{Group: hs.suite.group.ID(), Data: pub}, &wire.Nonce{Data: nr}}
	nat := natNotifies(sa.spii, sa.spir, sa.local, sa.remote)
	if hs.cands[0].ForceEncap || e.cfg.ForceEncap {
		fakeNATSource(nat, e.cfg.Rand)
	}
	payloads = append(payloads, nat...)
	// RFC 7383 §2.3: answer the announcement with our own.
	if !e.cfg.NoFragmentation && wire.FindNotify(hs.msg.Payloads, wire.NotifyIKEv2FragmentationSupported) != nil {
		sa.fragments = true
		payloads = append(payloads, fragmentNotify())
	}
	if announceChildless(hs.cands) {
		payloads = append(payloads, childlessNotify())
	}
	// RFC 9242 §3.1: answer the announcement with our own.
	if hs.intermediate {
		payloads = append(payloads, &wire.Notify{Code: wire.NotifyIntermediateExchangeSupported})
	}
	payloads = append(payloads, extra...)
	resp := wire.Message{
		Header:   wire.Header{SPIi: sa.spii, SPIr: sa.spir, Version: wire.Version, Exchange: wire.IKE_SA_INIT, Flags: wire.FlagResponse},
		Payloads: payloads,
	}
	sa.traceMessage(traceSent, wire.IKE_SA_INIT, true, 0, payloads)
	sa.msgR = resp.Marshal()

	// Every field is set before the SA is published: from then on other
	// goroutines (a Terminate, the next message) read it under its lock.
	e.halfOpenCount.Add(1)
	e.halfOpenAdded(sa.initKey.peer.Addr()) // authlimit hook
	sa.halfOpenTimer = time.AfterFunc(e.cfg.HalfOpenTimeout, func() { sa.expireHalfOpen() })
	msgR := sa.msgR
	// Logged before it is published: afterwards IKE_AUTH may change what
	// the log line reads (the connection) on another reader goroutine.
	sa.log(slog.LevelDebug, "IKE_SA_INIT answered", "algorithms", hs.suite.String(), "nat_local", sa.natLocal, "nat_remote", sa.natRemote)
	e.sas.put(sa)
	e.sas.putHalfOpen(sa)
	e.send(hs.bind, hs.from, msgR)
	return nil
}

// expireHalfOpen removes a responder SA whose IKE_AUTH never came.
func (sa *ikeSA) expireHalfOpen() {
	sa.mu.Lock()
	if sa.state != stateAuthenticating {
		sa.mu.Unlock()
		return
	}
	sa.eng.stats.failure("half_open_timeout")
	sa.log(slog.LevelInfo, "half-open IKE SA expired: no IKE_AUTH received")
	sa.destroyLocked("half-open timeout")
	sa.mu.Unlock()
	sa.eng.unregister(sa)
}

// nonceLen is the nonce size: at least half the PRF key size and 16
// octets (§2.10); a full PRF output is what strongSwan sends too.
func nonceLen(prf *transform.PRF) int { return max(32, prf.Size) }

// authResponder is the responder's state for the IKE_AUTH request. It
// runs with the SA's mutex held.
type authResponder struct {
	sa      *ikeSA
	inner   []wire.Payload
	idi     *wire.ID
	idr     *wire.ID
	authP   *wire.Auth
	conn    *Connection
	session auth.Session
	resp    []wire.Payload
}

// respondAuth answers IKE_AUTH (§1.2, §2.15) and returns the response
// packet. On failure the response carries the error and the SA is dead.
func (sa *ikeSA) respondAuth(msg *wire.Message, inner []wire.Payload) [][]byte {
	hs := &authResponder{sa: sa, inner: inner}
	err := hs.handshake()
	if err == nil {
		return hs.finish()
	}
	r := asRefusal(err, wire.NotifyAuthenticationFailed)
	if r.notify != nil && r.notify.Code == wire.NotifyAuthenticationFailed { // authlimit hook
		sa.eng.authFailed(sa.initKey.peer.Addr())
	}
	sa.eng.observeFailure(sa.remote.Addr(), false, r.failure)
	pkt := sa.answer(wire.IKE_AUTH, "IKE_AUTH failed", r)
	sa.destroyLocked("IKE_AUTH failed")
	return pkt
}

func (hs *authResponder) handshake() error {
	if err := hs.checkIntermediates(); err != nil {
		return err
	}
	if err := hs.readPayloads(); err != nil {
		return err
	}
	if err := hs.pickConnection(); err != nil {
		return err
	}
	if err := hs.verifyPeer(); err != nil {
		return err
	}
	if err := hs.checkChildless(); err != nil { // childless.go
		return err
	}
	if err := hs.prove(); err != nil {
		return err
	}
	hs.negotiateChild()
	if wire.FindNotify(hs.inner, wire.NotifyInitialContact) != nil {
		hs.sa.initialContact = true
	}
	return nil
}

// checkIntermediates refuses IKE_AUTH while additional key exchanges are
// due (RFC 9370 §2.2.2: IKE_AUTH comes after all of them), and notes its
// message ID for IntAuth (RFC 9242 §3.3.2).
func (hs *authResponder) checkIntermediates() error {
	sa := hs.sa
	if left := sa.addKEsLeft(); len(left) > 0 {
		return refuse(wire.NotifyInvalidSyntax, fmt.Errorf("IKE_AUTH before additional key exchange %s", left[0].Name())).counted("invalid_ke")
	}
	if sa.inter != nil {
		sa.inter.authMID = sa.respID
	}
	return nil
}

// authRefusal refuses IKE_AUTH with AUTHENTICATION_FAILED (§2.21.2),
// followed by the auth method's own notifies when it has any, counted as
// an authentication mismatch when no connection takes the peer's method.
func authRefusal(err error) *refusal {
	r := refuse(wire.NotifyAuthenticationFailed, err)
	var mismatch *authMismatchError
	if errors.As(err, &mismatch) {
		r.failure = "auth_mismatch"
	}
	var f *auth.Failure
	if errors.As(err, &f) {
		for _, n := range f.Notifies {
			r.extra = append(r.extra, n)
		}
	}
	return r
}

// readPayloads checks that IDi and AUTH are present (§1.2).
func (hs *authResponder) readPayloads() error {
	for _, p := range hs.inner {
		switch v := p.(type) {
		case *wire.ID:
			if v.Responder {
				hs.idr = v
			} else {
				hs.idi = v
			}
		case *wire.Auth:
			hs.authP = v
		}
	}
	if hs.idi == nil || hs.authP == nil {
		return refuse(wire.NotifyInvalidSyntax, errors.New("IKE_AUTH request without IDi or AUTH"))
	}
	return nil
}

// pickConnection chooses, among the connections that matched by address,
// the first whose remote identity matches IDi, whose local identity
// matches IDr when the initiator named one, and whose auth method takes
// the peer's AUTH method.
func (hs *authResponder) pickConnection() error {
	sa := hs.sa
	for i, c := range sa.candidates {
		if !c.RemoteID.Matches(hs.idi) || !c.Auth.Accepts(hs.authP.Method) {
			continue
		}
		if hs.idr != nil && !sa.eng.localIdentity(c, sa.local.Addr()).Matches(hs.idr) {
			continue
		}
		hs.conn, hs.session = c, sa.sessions[i]
		sa.conn = c
		sa.remoteID = IdentityFromPayload(hs.idi)
		sa.localID = sa.eng.localIdentity(c, sa.local.Addr())
		sa.authName = c.Auth.Name()
		return nil
	}
	// Tell a method mismatch apart from an unknown identity: the first is
	// two policies with no authentication method in common.
	var accepted []string
	anyID := false
	for _, c := range sa.candidates {
		if c.RemoteID.Matches(hs.idi) {
			anyID = true
			if !slices.Contains(accepted, c.Auth.Name()) {
				accepted = append(accepted, c.Auth.Name())
			}
		}
	}
	if anyID {
		return authRefusal(&authMismatchError{peer: authMethodName(hs.authP.Method), accepted: accepted})
	}
	return authRefusal(fmt.Errorf("no connection accepts peer identity %s with auth method %d", IdentityFromPayload(hs.idi), hs.authP.Method))
}

// authMethodName names an AUTH payload's method for logs: the iked method
// that speaks it, and the wire's name.
func authMethodName(m wire.AuthMethod) string {
	switch m {
	case wire.AuthSharedKeyMIC:
		return "psk (" + m.String() + ")"
	case wire.AuthRSASig, wire.AuthECDSA256, wire.AuthECDSA384, wire.AuthECDSA521, wire.AuthDigitalSig:
		return "cert (" + m.String() + ")"
	case 201: // kerberos' private-use method (auth/kerberos.AuthMethod)
		return "kerberos (" + m.String() + ")"
	}
	return m.String()
}

// verifyPeer checks the initiator's AUTH over InitiatorSignedOctets.
func (hs *authResponder) verifyPeer() error {
	octets := hs.sa.signedOctets(true, hs.idi)
	if err := hs.session.Verify(octets, hs.inner); err != nil {
		return authRefusal(err)
	}
	return nil
}

// prove builds IDr and AUTH over ResponderSignedOctets.
func (hs *authResponder) prove() error {
	idr := hs.sa.localID.Payload(true)
	hs.sa.authParams.LocalID = idr
	payloads, err := hs.session.Prove(hs.sa.signedOctets(false, idr), hs.inner)
	if err != nil {
		return authRefusal(err)
	}
	hs.resp = append(append([]wire.Payload{idr}, payloads...), windowNotify())
	hs.sa.setSendWindow(peerWindow(hs.inner))
	return nil
}

// negotiateChild creates the first Child SA from SAr1/TSi/TSr. A failure
// here does not fail the IKE SA (§1.2): the response carries the error
// notify instead of SA, TSi and TSr.
func (hs *authResponder) negotiateChild() {
	sa := hs.sa
	req := childRequestFrom(hs.inner)
	if req.sa == nil {
		return // childless (RFC 6023) or malformed; nothing to create
	}
	payloads, err := sa.acceptChild(hs.conn, req, keySeed{ni: sa.ni, nr: sa.nr, initiator: false}, nil)
	if err != nil {
		r := asRefusal(err, wire.NotifyTemporaryFailure)
		sa.eng.stats.notify(r.notify.Code.String())
		sa.log(slog.LevelWarn, "Child SA not created", "err", err, "notify", r.notify.Code.String())
		hs.resp = append(hs.resp, r.notify)
		return
	}
	hs.resp = append(hs.resp, payloads...)
}

// finish marks the SA established and seals the response.
func (hs *authResponder) finish() [][]byte {
	sa := hs.sa
	pkt, err := sa.sealMessage(wire.IKE_AUTH, sa.respID, true, hs.resp)
	if err != nil {
		sa.log(slog.LevelError, "cannot seal IKE_AUTH response", "err", err)
		sa.destroyLocked("internal error")
		return nil
	}
	sa.establish()
	sa.releaseHandshake()
	if sa.initialContact {
		// §2.4: the peer restarted; its older IKE SAs (same identities)
		// are stale and go now, without waiting for their timeouts.
		go sa.eng.dropStale(sa)
	}
	return pkt
}

// establish marks the SA established, counts and logs it. Caller holds mu.
func (sa *ikeSA) establish() {
	if !sa.initiator {
		sa.eng.halfOpenCount.Add(-1)
		sa.eng.halfOpenRemoved(sa.initKey.peer.Addr()) // authlimit hook
		if sa.halfOpenTimer != nil {
			sa.halfOpenTimer.Stop()
		}
		sa.eng.sas.removeHalfOpen(sa)
	}
	sa.state = stateEstablished
	sa.markUp()
	sa.established = sa.eng.cfg.Now()
	sa.eng.indexIdentity(sa)
	sa.candidates = nil
	sa.eng.stats.completedHandshake(sa.role(), sa.established.Sub(sa.started))
	sa.lastRecv = sa.established
	sa.startTimers()
	sa.eng.subs.ikeUp(sa)
	if sa.logs(slog.LevelInfo) {
		sa.log(slog.LevelInfo, "IKE SA established", "local_id", sa.localID.String(), "remote_id", sa.remoteID.String(),
			"auth", sa.authName, "algorithms", sa.suite.String())
	}
}

// localIdentity is the connection's local ID, or the local address.
//
// An auth method that proves a particular identity (a certificate's subject)
// supplies the default instead (auth.ProvenIdentity).
func (e *Engine) localIdentity(c *Connection, local netip.Addr) Identity {
	if !c.LocalID.IsZero() {
		return c.LocalID
	}
	if m, ok := c.Auth.(auth.ProvenIdentity); ok {
		if id := m.ProvenIdentity(); id != nil {
			return Identity{Type: id.IDType, Value: id.Data}
		}
	}
	return IdentityFromAddr(local)
}

// failureReason maps the notify a handshake failed with to a metric label.
func failureReason(code wire.NotifyType) string {
	switch code {
	case wire.NotifyAuthenticationFailed:
		return "authentication_failed"
	case wire.NotifyNoProposalChosen:
		return "no_proposal_chosen"
	case wire.NotifyInvalidSyntax:
		return "invalid_syntax"
	case wire.NotifyTSUnacceptable:
		return "ts_unacceptable"
	}
	return "other"
}

// containsPayload reports whether ps holds a payload encoding like p.
func containsPayload(ps []wire.Payload, p wire.Payload) bool {
	enc := wire.AppendPayloads(nil, []wire.Payload{p})
	for _, x := range ps {
		if x.Type() == p.Type() && string(wire.AppendPayloads(nil, []wire.Payload{x})) == string(enc) {
			return true
		}
	}
	return false
}
