package ike

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// maxSAInitRetries bounds the IKE_SA_INIT restarts for COOKIE and
// INVALID_KE_PAYLOAD, so that a hostile responder cannot loop us.
const maxSAInitRetries = 4

// initiator is the state of one handshake this side starts. handshake()
// lists the steps of RFC 7296 §1.2 in order.
type initiator struct {
	eng          *Engine
	ctx          context.Context
	conn         *Connection
	sa           *ikeSA
	group        transform.Group
	dh           transform.PrivateKey
	cookie       []byte
	resp         *response
	params       *auth.Params
	session      auth.Session
	initPayloads []wire.Payload // what the session adds to IKE_SA_INIT
	espSPI       uint32
	idi          *wire.ID
	idr          *wire.ID // the IDr we asked for, if a remote ID is configured
	reauth       bool
	childless    bool   // RFC 6023: IKE_AUTH without a Child SA (childless.go)
	answered     func() // called on each answer to IKE_SA_INIT; may be nil
}

// Initiate brings the named connection up and returns its IKE SA's
// snapshot. A connection that is up already keeps its IKE SA, as swanctl
// --initiate does: Initiate reports it and, when it carries no Child SA
// (the peer refused it, or it was deleted), creates just that. Only a
// connection without an established IKE SA gets a new one; InitiateNew
// makes one regardless.
func (e *Engine) Initiate(ctx context.Context, name string) ([]SAInfo, error) {
	c := e.connection(name)
	if c == nil {
		return nil, fmt.Errorf("no connection named %q", name)
	}
	if sa, hasChild := e.upSA(name); sa != nil {
		if !hasChild {
			if err := sa.createChild(ctx, nil); err != nil {
				return []SAInfo{sa.info()}, fmt.Errorf("%s is up as %s, but creating its Child SA failed: %w", name, sa.id(), err)
			}
		}
		return []SAInfo{sa.info()}, nil
	}
	return e.InitiateNew(ctx, name)
}

// InitiateNew establishes a new IKE SA and its first Child SA for the
// named connection, beside any it has already, and returns the SA's
// snapshot. A connection with childless: prefer or force gets the IKE SA
// alone (RFC 6023; childless.go); Initiate then adds the Child SA.
func (e *Engine) InitiateNew(ctx context.Context, name string) ([]SAInfo, error) {
	c := e.connection(name)
	if c == nil {
		return nil, fmt.Errorf("no connection named %q", name)
	}
	sa, err := e.initiate(ctx, c, false)
	if err != nil {
		return nil, err
	}
	return []SAInfo{sa.info()}, nil
}

// upSA returns the newest established IKE SA of the named connection that
// no rekey replaced, and whether it has a Child SA; nil if there is none.
// It looks at one SA's state at a time.
func (e *Engine) upSA(name string) (sa *ikeSA, hasChild bool) {
	for _, x := range e.allSAs() {
		x.mu.Lock()
		up := x.state == stateEstablished && x.rekeyedBy == nil && x.conn != nil && x.conn.Name == name
		n := len(x.children)
		x.mu.Unlock()
		if up && (sa == nil || x.serial > sa.serial) {
			sa, hasChild = x, n > 0
		}
	}
	return sa, hasChild
}

// initiate establishes an IKE SA for c. A reauthentication (reauth) does not
// claim INITIAL_CONTACT: the old IKE SA still stands until the new one is up.
func (e *Engine) initiate(ctx context.Context, c *Connection, reauth bool) (*ikeSA, error) {
	return e.initiateNotify(ctx, c, reauth, nil)
}

// initiateNotify is initiate, calling answered (when not nil) on every
// answer to IKE_SA_INIT.
func (e *Engine) initiateNotify(ctx context.Context, c *Connection, reauth bool, answered func()) (*ikeSA, error) {
	if !c.Remote.Addr().IsValid() || c.Remote.Addr().IsUnspecified() {
		return nil, fmt.Errorf("connection %s has no remote address to initiate to", c.Name)
	}
	for attempt := 0; ; attempt++ {
		hs := &initiator{eng: e, ctx: ctx, conn: c, reauth: reauth, answered: answered}
		err := hs.handshake()
		// The session is this goroutine's alone (it proves and verifies
		// without the SA's lock): it closes it, never the SA's destroy.
		closeSession := func() {
			if hs.session != nil {
				hs.session.Close()
			}
		}
		if hs.sa == nil {
			closeSession()
			return nil, err
		}
		if err == nil {
			closeSession()
			return hs.sa, nil
		}
		e.stats.failure(hs.failureLabel(err))
		e.observeFailure(c.Remote.Addr(), true, hs.failureLabel(err))
		hs.sa.log(slog.LevelWarn, "initiation failed", "err", err)
		hs.sa.destroy("initiation failed")
		retry := attempt == 0 && hs.retryable(err)
		closeSession()
		if !retry {
			return nil, err
		}
		hs.sa.log(slog.LevelInfo, "retrying once with fresh credentials")
	}
}

// retryable reports whether the auth method asks for one more try after
// the responder refused our AUTH (auth.Retrier).
func (hs *initiator) retryable(err error) bool {
	var n *notifyError
	r, ok := hs.session.(auth.Retrier)
	if !ok || !errors.As(err, &n) || n.code != wire.NotifyAuthenticationFailed || hs.resp == nil {
		return false
	}
	var notifies []*wire.Notify
	for _, p := range hs.resp.payloads {
		if x, ok := p.(*wire.Notify); ok {
			notifies = append(notifies, x)
		}
	}
	return r.RetryAfter(notifies)
}

func (hs *initiator) failureLabel(err error) string {
	var n *notifyError
	var r *refusal
	switch {
	case errors.As(err, &r) && r.failure != "":
		return r.failure
	case errors.As(err, &n):
		return failureReason(n.code)
	case errors.Is(err, errTimeout):
		return "timeout"
	}
	var f *auth.Failure
	if errors.As(err, &f) {
		return "authentication_failed"
	}
	return "other"
}

// notifyError is a handshake ended by the peer's error notify.
type notifyError struct {
	code   wire.NotifyType
	when   string
	others []wire.NotifyType // further notifies of the answer, e.g. a method's error code
}

func (n *notifyError) Error() string {
	s := fmt.Sprintf("peer answered %s with %s", n.when, n.code.String())
	for _, o := range n.others {
		s += " and " + o.String()
	}
	return s
}

func (hs *initiator) handshake() error {
	if err := hs.newSA(); err != nil {
		return err
	}
	if err := hs.exchangeSAInit(); err != nil {
		return err
	}
	if err := hs.processSAInit(); err != nil {
		return err
	}
	if err := hs.exchangeIntermediates(); err != nil { // intermediate.go
		return err
	}
	if err := hs.exchangeAuth(); err != nil {
		return err
	}
	if err := hs.verifyResponder(); err != nil {
		hs.refuseAnswer(err)
		return err
	}
	hs.completeChild()
	return nil
}

// newSA creates and registers the SA with a fresh SPIi and Ni.
func (hs *initiator) newSA() error {
	e := hs.eng
	bind, err := e.bindFor(hs.conn)
	if err != nil {
		return err
	}
	spii, err := e.newSPI()
	if err != nil {
		return err
	}
	prf := transform.PRFByID(hs.conn.IKEProposals[0].PRF[0])
	ni := make([]byte, nonceLen(prf))
	if _, err := e.cfg.Rand.Read(ni); err != nil {
		return err
	}
	hs.sa = &ikeSA{
		eng: e, serial: e.nextID.Add(1), initiator: true, started: e.cfg.Now(),
		state: stateConnecting, conn: hs.conn, spii: spii, bind: bind,
		local: bind.LocalAddr(), remote: hs.conn.Remote, saHandshake: &saHandshake{ni: ni},
		localID: e.localIdentity(hs.conn, bind.LocalAddr().Addr()), remoteID: hs.conn.RemoteID,
		authName: hs.conn.Auth.Name(),
	}
	hs.group = transform.GroupByID(hs.conn.IKEProposals[0].DH[0])
	// The auth session exists before IKE_SA_INIT so that it can announce
	// itself there; what IKE_SA_INIT settles is filled in later.
	hs.params = &auth.Params{Initiator: true, SPIi: spii, LocalAddr: hs.sa.local, PeerAddr: hs.sa.remote, LocalID: hs.sa.localID.Payload(false)}
	session, err := hs.conn.Auth.NewSession(hs.params)
	if err != nil {
		return err
	}
	hs.session = session
	hs.initPayloads = session.SAInitPayloads()
	e.register(hs.sa)
	hs.sa.log(slog.LevelInfo, "initiating IKE SA")
	return nil
}

// exchangeSAInit sends IKE_SA_INIT until it gets an answer to proceed with,
// following COOKIE (§2.6) and INVALID_KE_PAYLOAD (§1.2) requests.
func (hs *initiator) exchangeSAInit() error {
	sa := hs.sa
	for try := 0; ; try++ {
		if hs.dh == nil {
			dh, err := hs.group.GenerateKey(hs.eng.cfg.Rand)
			if err != nil {
				return err
			}
			hs.dh = dh
		}
		sa.mu.Lock()
		sa.nextSendID = 0 // every IKE_SA_INIT attempt is message 0
		sa.mu.Unlock()
		resp, err := sa.request(hs.ctx, hs.buildSAInit)
		if err != nil {
			return err
		}
		if hs.answered != nil {
			hs.answered()
		}
		hs.resp = resp
		if try >= maxSAInitRetries {
			return errors.New("too many IKE_SA_INIT restarts")
		}
		if n := wire.FindNotify(resp.payloads, wire.NotifyCookie); n != nil {
			hs.cookie = append([]byte(nil), n.Data...)
			sa.log(slog.LevelDebug, "responder demands a cookie")
			continue
		}
		g, err := requestedGroup(resp.payloads, hs.conn.IKEProposals, hs.group)
		if err != nil {
			return err
		}
		if g != nil {
			sa.log(slog.LevelInfo, "responder asks for another key exchange group", "group", g.Name())
			hs.group = g
			hs.dh = nil
			continue
		}
		for _, p := range resp.payloads {
			if n, ok := p.(*wire.Notify); ok && n.Code.IsError() {
				return &notifyError{code: n.Code, when: "IKE_SA_INIT"}
			}
		}
		return nil
	}
}

// buildSAInit builds IKE_SA_INIT: [N(COOKIE),] SA, KE, Ni, N(NAT_DETECTION_*).
// Called with mu held.
func (hs *initiator) buildSAInit(msgID uint32) ([][]byte, error) {
	sa := hs.sa
	var ps []wire.Payload
	if hs.cookie != nil {
		ps = append(ps, &wire.Notify{Code: wire.NotifyCookie, Data: hs.cookie})
	}
	props := toWire(hs.conn.IKEProposals, wire.ProtoIKE, nil, true)
	ps = append(ps, &wire.SA{Proposals: props}, &wire.KE{Group: hs.group.ID(), Data: hs.dh.Public()}, &wire.Nonce{Data: sa.ni})
	nat := natNotifies(sa.spii, 0, sa.local, sa.remote)
	if hs.conn.ForceEncap || hs.eng.cfg.ForceEncap {
		fakeNATSource(nat, hs.eng.cfg.Rand)
	}
	ps = append(ps, nat...)
	if !hs.eng.cfg.NoFragmentation {
		ps = append(ps, fragmentNotify())
	}
	if offersAddKE(hs.conn.IKEProposals) {
		// RFC 9370 §2.2.1: additional key exchanges need IKE_INTERMEDIATE.
		ps = append(ps, &wire.Notify{Code: wire.NotifyIntermediateExchangeSupported})
	}
	ps = append(ps, hs.initPayloads...)
	m := wire.Message{
		Header:   wire.Header{SPIi: sa.spii, Version: wire.Version, Exchange: wire.IKE_SA_INIT, Flags: wire.FlagInitiator, MessageID: msgID},
		Payloads: ps,
	}
	sa.traceMessage(traceSent, wire.IKE_SA_INIT, false, msgID, ps)
	sa.msgI = m.Marshal()
	return [][]byte{sa.msgI}, nil
}

// processSAInit checks the responder's choice, KE and nonce, and derives
// the IKE SA's keys (§2.14).
func (hs *initiator) processSAInit() error {
	sa, resp := hs.sa, hs.resp
	saP, _ := wire.Find(resp.payloads, wire.PayloadSA).(*wire.SA)
	ke, _ := wire.Find(resp.payloads, wire.PayloadKE).(*wire.KE)
	nonce, _ := wire.Find(resp.payloads, wire.PayloadNonce).(*wire.Nonce)
	if saP == nil || ke == nil || nonce == nil || resp.hdr.SPIr == 0 {
		return errors.New("IKE_SA_INIT response without SA, KE, Nonce or SPIr")
	}
	s := acceptChosen(hs.conn.IKEProposals, saP, wire.ProtoIKE, true)
	if s == nil {
		return errors.New("responder chose a proposal we did not offer")
	}
	childless, err := initiatorChildless(hs.conn, resp.payloads)
	if err != nil {
		return err
	}
	hs.childless = childless
	if s.group.ID() != hs.group.ID() || ke.Group != hs.group.ID() {
		return fmt.Errorf("responder's KE group %d differs from the one sent (%d)", ke.Group, hs.group.ID())
	}
	peerIntermediate := wire.FindNotify(resp.payloads, wire.NotifyIntermediateExchangeSupported) != nil
	if s.hasAddKE() && !peerIntermediate {
		// RFC 9370 §2.2.1: the exchanges need IKE_INTERMEDIATE.
		return refuse(wire.NotifyInvalidSyntax, fmt.Errorf("responder chose additional key exchanges (%s) without announcing IKE_INTERMEDIATE", s)).
			counted("no_proposal_chosen")
	}
	if hs.conn.RequirePQ && !s.postQuantum() {
		return refuse(wire.NotifyNoProposalChosen, fmt.Errorf("responder chose %s, without a post-quantum key exchange, and require_pq is set", s)).
			counted(failurePQRequired)
	}
	shared, err := hs.dh.SharedSecret(ke.Data)
	if err != nil {
		return fmt.Errorf("responder's key exchange value: %w", err)
	}
	hs.dh = nil
	sa.mu.Lock()
	defer sa.mu.Unlock()
	sa.suite = s
	sa.spir = resp.hdr.SPIr
	sa.nr = append([]byte(nil), nonce.Data...)
	sa.msgR = resp.raw
	sa.natLocal, sa.natRemote = detectNAT(resp.payloads, sa.spii, sa.spir, sa.local, sa.remote)
	sa.fragments = !hs.eng.cfg.NoFragmentation && wire.FindNotify(resp.payloads, wire.NotifyIKEv2FragmentationSupported) != nil
	sa.peerIntermediate = peerIntermediate
	if sa.natLocal || sa.natRemote || hs.conn.ForceEncap || hs.eng.cfg.ForceEncap {
		hs.floatToNATT()
	}
	if err := sa.deriveKeys(shared); err != nil {
		return err
	}
	sa.state = stateAuthenticating
	hs.params.PRF, hs.params.SPIr, hs.params.PeerInit = s.prf, sa.spir, resp.payloads
	hs.params.LocalAddr, hs.params.PeerAddr = sa.local, sa.remote
	return nil
}

// floatToNATT moves the SA to the NAT-T port once a NAT is detected: §2.23
// says the initiator sends everything after IKE_SA_INIT from and to port
// 4500, with the non-ESP marker. Without a NAT-T bind on our address the
// SA stays where it is. Caller holds mu.
func (hs *initiator) floatToNATT() {
	sa := hs.sa
	b := hs.eng.nattBindFor(sa.local.Addr())
	if b == nil {
		sa.log(slog.LevelWarn, "NAT detected but no NAT-T (port 4500) listen address to move to")
		return
	}
	to := netip.AddrPortFrom(sa.remote.Addr(), natTPort)
	sa.log(slog.LevelInfo, "NAT detected, moving to the NAT-T port", "nat_local", sa.natLocal, "nat_remote", sa.natRemote,
		"local", b.LocalAddr().String(), "remote", to.String())
	sa.bind, sa.local, sa.remote, sa.encap = b, b.LocalAddr(), to, true
}

// exchangeAuth sends IKE_AUTH: IDi, [IDr,] AUTH, [N(USE_TRANSPORT_MODE),]
// SA, TSi, TSr (§1.2), and waits for the answer.
func (hs *initiator) exchangeAuth() error {
	sa := hs.sa
	var spi uint32 // none for a childless IKE_AUTH; releasing 0 is a no-op
	if !hs.childless {
		var err error
		if spi, err = hs.eng.cfg.SADB.AllocateSPI(); err != nil {
			return err
		}
	}
	hs.espSPI = spi
	ps, err := hs.authPayloads(spi)
	if err != nil {
		hs.eng.cfg.SADB.ReleaseSPI(spi)
		return err
	}
	resp, err := sa.request(hs.ctx, func(msgID uint32) ([][]byte, error) {
		return sa.sealMessage(wire.IKE_AUTH, msgID, false, ps)
	})
	if err != nil {
		hs.eng.cfg.SADB.ReleaseSPI(spi)
		return err
	}
	hs.resp = resp
	if n := wire.FindNotify(resp.payloads, wire.NotifyAuthenticationFailed); n != nil {
		hs.eng.cfg.SADB.ReleaseSPI(spi)
		ne := &notifyError{code: n.Code, when: "IKE_AUTH"}
		for _, p := range resp.payloads {
			if x, ok := p.(*wire.Notify); ok && x != n {
				ne.others = append(ne.others, x.Code)
			}
		}
		return ne
	}
	if wire.Find(resp.payloads, wire.PayloadAUTH) == nil {
		hs.eng.cfg.SADB.ReleaseSPI(spi)
		for _, p := range resp.payloads {
			if n, ok := p.(*wire.Notify); ok && n.Code.IsError() {
				return &notifyError{code: n.Code, when: "IKE_AUTH"}
			}
		}
		return errors.New("IKE_AUTH response without AUTH")
	}
	return nil
}

// authPayloads builds the IKE_AUTH request's payloads. The auth session
// proves without the SA's lock held (a method may take its own locks), and
// INITIAL_CONTACT is decided from the engine's count of established SAs,
// never by looking into other SAs.
func (hs *initiator) authPayloads(spi uint32) ([]wire.Payload, error) {
	sa := hs.sa
	hs.idi = sa.localID.Payload(false)
	sa.mu.Lock()
	if sa.inter != nil {
		sa.inter.authMID = sa.nextSendID // IKE_AUTH's, for IntAuth (RFC 9242 §3.3.2)
	}
	octets := sa.signedOctets(true, hs.idi)
	// §2.4: the first IKE SA with this peer tells it to drop state left
	// from before a restart; a reauthentication is not the first.
	initialContact := !hs.reauth && !hs.eng.hasOtherSA(sa)
	local, remote := sa.localSelectors(hs.conn), sa.remoteSelectors(hs.conn)
	sa.mu.Unlock()
	proof, err := hs.session.Prove(octets, hs.resp.payloads)
	if err != nil {
		return nil, err
	}
	ps := []wire.Payload{hs.idi}
	if !hs.conn.RemoteID.IsZero() {
		hs.idr = hs.conn.RemoteID.Payload(true)
		ps = append(ps, hs.idr)
	}
	ps = append(ps, proof...)
	if initialContact {
		ps = append(ps, &wire.Notify{Code: wire.NotifyInitialContact})
	}
	ps = append(ps, windowNotify())
	if hs.childless {
		return ps, nil // RFC 6023: no SA, TSi, TSr
	}
	if hs.conn.Mode == ModeTransport {
		ps = append(ps, &wire.Notify{Code: wire.NotifyUseTransportMode})
	}
	var spiB [4]byte
	binary.BigEndian.PutUint32(spiB[:], spi)
	return append(ps, &wire.SA{Proposals: toWire(hs.conn.ESPProposals, wire.ProtoESP, spiB[:], false)},
		&wire.TS{Selectors: local}, &wire.TS{Responder: true, Selectors: remote}), nil
}

// verifyResponder checks IDr against the configured remote identity and
// the responder's AUTH over ResponderSignedOctets (§2.15).
func (hs *initiator) verifyResponder() error {
	sa := hs.sa
	idr, _ := wire.Find(hs.resp.payloads, wire.PayloadIDr).(*wire.ID)
	if idr == nil {
		return authRefusal(auth.Failf("IKE_AUTH response without IDr"))
	}
	if !hs.conn.RemoteID.Matches(idr) {
		return authRefusal(auth.Failf("responder identity %s is not the configured %s", IdentityFromPayload(idr), hs.conn.RemoteID))
	}
	sa.mu.Lock()
	octets := sa.signedOctets(false, idr)
	sa.mu.Unlock()
	// The session verifies without the SA's lock held.
	if err := hs.session.Verify(octets, hs.resp.payloads); err != nil {
		return authRefusal(err)
	}
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if sa.state != stateAuthenticating {
		return errClosed // destroyed meanwhile (Close, a Delete)
	}
	sa.remoteID = IdentityFromPayload(idr)
	sa.setSendWindow(peerWindow(hs.resp.payloads))
	sa.establish()
	return nil
}

// refuseAnswer tells the responder, in a separate INFORMATIONAL, the
// notify of a refusal of its answer (§2.21.2: AUTHENTICATION_FAILED when
// its AUTH did not verify). Best effort: one try.
func (hs *initiator) refuseAnswer(err error) {
	var r *refusal
	sa := hs.sa
	if !errors.As(err, &r) || r.notify == nil || sa.out == nil {
		return
	}
	sa.mu.Lock()
	id := sa.nextSendID
	pkt, serr := sa.sealMessage(wire.INFORMATIONAL, id, false, []wire.Payload{r.notify})
	sa.mu.Unlock()
	if serr == nil {
		hs.eng.stats.notify(r.notify.Code.String())
		hs.eng.sendAll(sa.bind, sa.remote, pkt)
	}
}

// completeChild installs the first Child SA from the IKE_AUTH response,
// after the checks every Child SA answer gets (checkChildAnswer: what we
// offered, §2.7; selectors within ours, §2.9; the mode). A failed Child SA
// leaves the IKE SA up, as §1.2 says.
func (hs *initiator) completeChild() {
	sa := hs.sa
	if hs.childless {
		sa.log(slog.LevelInfo, "IKE SA established without a Child SA (childless, RFC 6023): Initiate on the established connection creates it",
			"childless", hs.conn.Childless.String())
		return
	}
	local, remote := sa.localSelectors(hs.conn), sa.remoteSelectors(hs.conn)
	ans, err := checkChildAnswer(hs.resp.payloads, "IKE_AUTH", hs.conn.ESPProposals, false, local, remote, hs.conn.Mode)
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if err == nil {
		_, err = sa.installChild(ans.suite, hs.conn.Mode, hs.espSPI, binary.BigEndian.Uint32(ans.suite.spi), ans.tsi, ans.tsr, keySeed{ni: sa.ni, nr: sa.nr, initiator: true}, nil)
	}
	if err != nil {
		hs.eng.cfg.SADB.ReleaseSPI(hs.espSPI)
		sa.log(slog.LevelWarn, "Child SA not created", "err", err)
	}
}

// dropStale removes the IKE SAs that fresh replaces after an INITIAL_CONTACT:
// same local and remote identities, begun before fresh was. (It runs after
// fresh is up; SAs made since, such as fresh's own rekeyed successor, are
// not stale.)
func (e *Engine) dropStale(fresh *ikeSA) {
	fresh.mu.Lock()
	same := e.sameIdentity(fresh)
	fresh.mu.Unlock()
	for _, x := range same {
		if x == fresh {
			continue
		}
		x.mu.Lock()
		stale := x.state == stateEstablished && x.started.Before(fresh.started)
		x.mu.Unlock()
		if stale {
			x.log(slog.LevelInfo, "removing IKE SA replaced after the peer's INITIAL_CONTACT", "new_sa", fresh.id())
			x.destroy("peer restarted (INITIAL_CONTACT)")
		}
	}
}
