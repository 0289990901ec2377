package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// maxSAInitRestarts bounds COOKIE and INVALID_KE_PAYLOAD restarts, so that a
// responder cannot loop the generator.
const maxSAInitRestarts = 4

// failure is a handshake that did not complete, with a stable reason used
// as the report's label ("timeout", "authentication_failed", ...).
type failure struct {
	reason string
	detail string
}

func (f *failure) Error() string {
	if f.detail == "" {
		return f.reason
	}
	return f.reason + ": " + f.detail
}

// errAborted ends a handshake cut short by the end of the run; it counts
// neither as completed nor as failed.
var errAborted = &failure{reason: "aborted"}

// abort makes the exchange in progress return errAborted.
func (c *client) abort() {
	c.stop.Store(true)
	_ = c.conn.SetReadDeadline(time.Unix(1, 0))
}

func fail(reason, format string, args ...any) error {
	return &failure{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// reasonOf returns the report label of a handshake error.
func reasonOf(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.reason
	}
	return "other"
}

// notifyReason is the label of an error notify the responder answered
// with: its IANA name in lower case, as iked's failure labels are.
func notifyReason(code wire.NotifyType) string { return strings.ToLower(code.String()) }

// shared is what every worker of a run reads: the offer, the auth method,
// and the Diffie-Hellman keys reused across handshakes.
type shared struct {
	opts      *Options
	offer     []wire.Proposal // the SA payload of IKE_SA_INIT
	espOffer  []transform.Proposal
	firstDH   transform.Group
	dhKeys    map[uint16]transform.PrivateKey // by group, when reusing keys
	remoteID  *wire.ID                        // IDr sent, when a remote ID is configured
	localIDs  idSource
	childless bool
	// addKE: some proposal has additional key exchanges (RFC 9370), so
	// IKE_SA_INIT announces IKE_INTERMEDIATE.
	addKE bool
}

// idSource makes the IDi of handshake n: fixed, or a template with %d.
type idSource struct {
	fixed    *ike.Identity
	template string
}

func (s idSource) id(n uint64, local netip.Addr) *wire.ID {
	if s.template != "" {
		id, err := ike.ParseIdentity(fmt.Sprintf(s.template, n))
		if err == nil {
			return id.Payload(false)
		}
	}
	if s.fixed != nil {
		return s.fixed.Payload(false)
	}
	return ike.IdentityFromAddr(local).Payload(false)
}

// chosen reads the responder's one proposal and checks it against our
// offer as the engine's initiator does (§2.7).
func chosen(offer []transform.Proposal, sa *wire.SA) (*ike.IKESuite, error) {
	if len(sa.Proposals) != 1 {
		return nil, fail("bad_response", "responder chose %d proposals", len(sa.Proposals))
	}
	s, ok := ike.AcceptIKESuite(offer, sa)
	if !ok {
		return nil, fail("bad_response", "responder chose a proposal we did not offer")
	}
	return &s, nil
}

// client is one worker's connection to the responder: a connected UDP
// socket from one source address, a receive buffer and a random source.
// It runs one handshake at a time.
type client struct {
	sh   *shared
	conn *net.UDPConn
	loc  netip.AddrPort
	rem  netip.AddrPort
	buf  []byte
	rnd  *rand.ChaCha8

	// stop is set when the run ends: an exchange in progress gives up
	// (errAborted) instead of waiting out its retransmissions.
	stop atomic.Bool

	// Counters of this worker, summed into the report.
	retransmits, cookies, invalidKE, deleted, deleteFailed, childSAs uint64
	notChildless                                                     uint64
}

func newClient(sh *shared, source netip.Addr) (*client, error) {
	var laddr *net.UDPAddr
	if source.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
	}
	c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(sh.opts.Target))
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(1 << 20)
	var seed [32]byte
	if _, err := cryptoRead(seed[:]); err != nil {
		_ = c.Close()
		return nil, err
	}
	loc := c.LocalAddr().(*net.UDPAddr).AddrPort()
	cl := &client{
		sh: sh, conn: c,
		loc: netip.AddrPortFrom(loc.Addr().Unmap(), loc.Port()),
		rem: sh.opts.Target,
		buf: make([]byte, 65536),
		rnd: rand.NewChaCha8(seed),
	}
	return cl, nil
}

func (c *client) close() { _ = c.conn.Close() }

// exchange sends req and waits for the response match accepts, resending
// req with exponential backoff. It returns the response's length in c.buf.
func (c *client) exchange(req []byte, match func([]byte) bool) (int, error) {
	rt := c.sh.opts.RetransmitTimeout
	for try := 0; ; try++ {
		if c.stop.Load() {
			return 0, errAborted
		}
		if _, err := c.conn.Write(req); err != nil && !isRefused(err) {
			return 0, fail("send_error", "%v", err)
		}
		deadline := time.Now().Add(rt)
		_ = c.conn.SetReadDeadline(deadline)
		if c.stop.Load() {
			return 0, errAborted
		}
		for {
			n, err := c.conn.Read(c.buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					if c.stop.Load() {
						return 0, errAborted
					}
					break
				}
				// ICMP port unreachable and the like: the responder is not
				// there (yet); wait out the timeout as for a loss.
				if isRefused(err) {
					time.Sleep(time.Until(deadline))
					break
				}
				return 0, fail("receive_error", "%v", err)
			}
			if match(c.buf[:n]) {
				return n, nil
			}
		}
		if try >= c.sh.opts.RetransmitTries {
			return 0, fail("timeout", "no answer after %d retransmissions", try)
		}
		c.retransmits++
		rt *= 2
	}
}

// hs is the state of one handshake.
type hs struct {
	c          *client
	spii, spir uint64
	ni, nr     []byte
	group      transform.Group
	dh         transform.PrivateKey
	cookie     []byte
	msgI, msgR []byte
	s          *ike.IKESuite
	// nextID is the message ID of the next request after IKE_SA_INIT:
	// 1, or more after IKE_INTERMEDIATE exchanges; inter their IntAuth
	// (intermediate.go).
	nextID  uint32
	inter   intAuth
	keys    *transform.IKEKeys
	out, in *transform.Protector
	params  auth.Params
	session auth.Session
	idi     *wire.ID
	espSPI  uint32
	// up is set once the responder answered IKE_AUTH with IDr and AUTH:
	// it holds an established IKE SA, which a later failure on our side
	// (its AUTH, its identity, the Child SA) must delete.
	up bool
}

// handshake runs IKE_SA_INIT and IKE_AUTH; seq numbers identities made
// from a template. On success the IKE SA is established at the responder;
// the caller deletes it (deleteSA) or keeps it.
func (c *client) handshake(seq uint64) (*hs, error) {
	h := &hs{c: c, group: c.sh.firstDH}
	h.spii = c.rnd.Uint64() | 1
	h.ni = make([]byte, 32)
	_, _ = c.rnd.Read(h.ni)
	if err := h.saInit(); err != nil {
		return h, err
	}
	if err := h.intermediates(); err != nil {
		return h, err
	}
	if err := h.auth(seq); err != nil {
		return h, err
	}
	return h, nil
}

// dhKey returns the key for group: the run's shared one, or a fresh one.
func (c *client) dhKey(g transform.Group) (transform.PrivateKey, error) {
	if k := c.sh.dhKeys[g.ID()]; k != nil {
		return k, nil
	}
	return g.GenerateKey(c.rnd)
}

func (h *hs) buildSAInit() []byte {
	var ps []wire.Payload
	if h.cookie != nil {
		ps = append(ps, &wire.Notify{Code: wire.NotifyCookie, Data: h.cookie})
	}
	ps = append(ps, &wire.SA{Proposals: h.c.sh.offer},
		&wire.KE{Group: h.group.ID(), Data: h.dh.Public()},
		&wire.Nonce{Data: h.ni})
	ps = append(ps, ike.NATDetectionNotifies(h.spii, 0, h.c.loc, h.c.rem)...)
	if h.c.sh.addKE {
		ps = append(ps, &wire.Notify{Code: wire.NotifyIntermediateExchangeSupported})
	}
	m := wire.Message{
		Header:   wire.Header{SPIi: h.spii, Version: wire.Version, Exchange: wire.IKE_SA_INIT, Flags: wire.FlagInitiator},
		Payloads: ps,
	}
	return m.Marshal()
}

// saInit exchanges IKE_SA_INIT, following COOKIE and INVALID_KE_PAYLOAD,
// and derives the IKE SA's keys.
func (h *hs) saInit() error {
	c := h.c
	var resp *wire.Message
	var respLen int
	for try := 0; ; try++ {
		if h.dh == nil {
			k, err := c.dhKey(h.group)
			if err != nil {
				return fail("other", "%v", err)
			}
			h.dh = k
		}
		h.msgI = h.buildSAInit()
		n, err := c.exchange(h.msgI, func(b []byte) bool {
			hdr, err := wire.ParseHeader(b)
			return err == nil && hdr.SPIi == h.spii && hdr.Exchange == wire.IKE_SA_INIT && hdr.IsResponse() && hdr.MessageID == 0
		})
		if err != nil {
			return err
		}
		respLen = n
		if resp, err = wire.Parse(c.buf[:n]); err != nil {
			return fail("bad_response", "IKE_SA_INIT response: %v", err)
		}
		if try >= maxSAInitRestarts {
			return fail("too_many_restarts", "IKE_SA_INIT restarted %d times", try)
		}
		if nt := wire.FindNotify(resp.Payloads, wire.NotifyCookie); nt != nil {
			h.cookie = slices.Clone(nt.Data)
			c.cookies++
			continue
		}
		if nt := wire.FindNotify(resp.Payloads, wire.NotifyInvalidKEPayload); nt != nil {
			if len(nt.Data) != 2 {
				return fail("bad_response", "INVALID_KE_PAYLOAD without a group")
			}
			want := binary.BigEndian.Uint16(nt.Data)
			g := transform.GroupByID(want)
			if g == nil || want == h.group.ID() || !c.sh.offersGroup(want) {
				return fail("invalid_ke_payload", "responder asks for group %d, not offered", want)
			}
			c.invalidKE++
			h.group, h.dh = g, nil
			continue
		}
		for _, p := range resp.Payloads {
			if nt, ok := p.(*wire.Notify); ok && nt.Code.IsError() {
				return fail(notifyReason(nt.Code), "IKE_SA_INIT answered with notify %d", nt.Code)
			}
		}
		break
	}
	saP, _ := wire.Find(resp.Payloads, wire.PayloadSA).(*wire.SA)
	ke, _ := wire.Find(resp.Payloads, wire.PayloadKE).(*wire.KE)
	nonce, _ := wire.Find(resp.Payloads, wire.PayloadNonce).(*wire.Nonce)
	if saP == nil || ke == nil || nonce == nil || resp.Header.SPIr == 0 {
		return fail("bad_response", "IKE_SA_INIT response without SA, KE, Nonce or SPIr")
	}
	s, err := chosen(c.sh.opts.IKEProposals, saP)
	if err != nil {
		return err
	}
	if s.Group.ID() != h.group.ID() || ke.Group != h.group.ID() {
		return fail("bad_response", "responder's KE group %d is not the one sent (%d)", ke.Group, h.group.ID())
	}
	if c.sh.childless && wire.FindNotify(resp.Payloads, wire.NotifyChildlessIKEv2Supported) == nil {
		c.notChildless++
	}
	sharedSecret, err := h.dh.SharedSecret(ke.Data)
	if err != nil {
		return fail("bad_response", "responder's KE: %v", err)
	}
	if len(s.AddKE) > 0 && wire.FindNotify(resp.Payloads, wire.NotifyIntermediateExchangeSupported) == nil {
		return fail("bad_response", "responder chose additional key exchanges without announcing IKE_INTERMEDIATE")
	}
	h.s, h.spir, h.nextID = s, resp.Header.SPIr, 1
	h.nr = slices.Clone(nonce.Data)
	h.msgR = slices.Clone(c.buf[:respLen])
	skeyseed := transform.SKEYSEED(s.PRF, h.ni, h.nr, sharedSecret)
	keys, err := transform.DeriveIKEKeys(s.PRF, skeyseed, h.ni, h.nr, h.spii, h.spir, s.Encr.KeyMaterialLen(s.KeyBits), s.Integ)
	if err != nil {
		return fail("other", "%v", err)
	}
	h.keys = keys
	if h.out, h.in, err = keys.Protectors(s.Encr, s.Integ, true); err != nil {
		return fail("other", "%v", err)
	}
	h.params = auth.Params{Initiator: true, PRF: s.PRF, SPIi: h.spii, SPIr: h.spir, LocalAddr: c.loc, PeerAddr: c.rem, PeerInit: nil}
	// The session may look at the responder's IKE_SA_INIT payloads
	// (CERTREQ); they must outlive c.buf, so parse the copy.
	if m, err := wire.Parse(h.msgR); err == nil {
		h.params.PeerInit = m.Payloads
	}
	return nil
}

func (sh *shared) offersGroup(id uint16) bool {
	for _, p := range sh.opts.IKEProposals {
		if slices.Contains(p.DH, id) {
			return true
		}
	}
	return false
}

// signedOctets are the octets the AUTH payload of the initiator or the
// responder covers (§2.15).
func (h *hs) signedOctets(initiator bool, id *wire.ID) []byte {
	out := transform.SignedOctets(h.s.PRF, h.msgR, h.ni, h.keys.SkPr, id.AppendBody(nil))
	if initiator {
		out = transform.SignedOctets(h.s.PRF, h.msgI, h.nr, h.keys.SkPi, id.AppendBody(nil))
	}
	return h.inter.octets(out) // RFC 9242 §3.3.2, after IKE_INTERMEDIATE
}

// seal builds an encrypted request of this IKE SA.
func (h *hs) seal(exch wire.ExchangeType, msgID uint32, inner []wire.Payload) ([]byte, error) {
	plain := wire.AppendPayloads(nil, inner)
	first := wire.PayloadNone
	if len(inner) > 0 {
		first = inner[0].Type()
	}
	bodyLen := h.out.SealedLen(len(plain))
	total := wire.HeaderLen + wire.GenericHeaderLen + bodyLen
	hdr := wire.Header{
		SPIi: h.spii, SPIr: h.spir, NextPayload: wire.PayloadSK, Version: wire.Version,
		Exchange: exch, Flags: wire.FlagInitiator, MessageID: msgID, Length: uint32(total),
	}
	buf := make([]byte, 0, total)
	buf = wire.AppendHeader(buf, &hdr)
	skLen := wire.GenericHeaderLen + bodyLen
	buf = append(buf, byte(first), 0, byte(skLen>>8), byte(skLen))
	return h.out.Seal(buf, plain, h.c.rnd)
}

// open authenticates and decrypts a response of this IKE SA.
func (h *hs) open(pkt []byte) ([]wire.Payload, error) {
	m, err := wire.Parse(pkt)
	if err != nil {
		return nil, err
	}
	if len(m.Payloads) == 0 {
		return nil, errors.New("no SK payload")
	}
	sk, ok := m.Payloads[len(m.Payloads)-1].(*wire.Encrypted)
	if !ok {
		return nil, errors.New("no SK payload (fragmented responses are not supported)")
	}
	plain, err := h.in.Open(pkt[:len(pkt)-len(sk.Body)], sk.Body)
	if err != nil {
		return nil, err
	}
	return wire.ParsePayloads(sk.First, plain)
}

// matchResponse accepts the response to request msgID of this IKE SA.
func (h *hs) matchResponse(exch wire.ExchangeType, msgID uint32) func([]byte) bool {
	return func(b []byte) bool {
		hdr, err := wire.ParseHeader(b)
		return err == nil && hdr.SPIi == h.spii && hdr.SPIr == h.spir && hdr.Exchange == exch &&
			hdr.IsResponse() && hdr.MessageID == msgID
	}
}

// auth exchanges IKE_AUTH: IDi, [IDr,] AUTH[, SA, TSi, TSr] (§1.2; without
// SA, TSi and TSr the IKE SA is childless, RFC 6023).
func (h *hs) auth(seq uint64) error {
	c := h.c
	sh := c.sh
	session, err := sh.opts.Auth.NewSession(&h.params)
	if err != nil {
		return fail("other", "auth session: %v", err)
	}
	h.session = session
	h.idi = sh.localIDs.id(seq, c.loc.Addr())
	h.params.LocalID = h.idi
	ps := []wire.Payload{h.idi}
	if sh.remoteID != nil {
		ps = append(ps, sh.remoteID)
	}
	proof, err := session.Prove(h.signedOctets(true, h.idi), h.params.PeerInit)
	if err != nil {
		return fail("other", "proving: %v", err)
	}
	ps = append(ps, proof...)
	if !sh.childless {
		h.espSPI = uint32(c.rnd.Uint64()) | 0x100
		var spi [4]byte
		binary.BigEndian.PutUint32(spi[:], h.espSPI)
		ps = append(ps, &wire.SA{Proposals: ike.ProposalsToWire(sh.espOffer, wire.ProtoESP, spi[:], false)},
			&wire.TS{Selectors: []wire.TrafficSelector{hostSelector(c.loc.Addr())}},
			&wire.TS{Responder: true, Selectors: []wire.TrafficSelector{hostSelector(c.rem.Addr())}})
	}
	req, err := h.seal(wire.IKE_AUTH, h.nextID, ps)
	if err != nil {
		return fail("other", "sealing: %v", err)
	}
	n, err := c.exchange(req, h.matchResponse(wire.IKE_AUTH, h.nextID))
	h.nextID++
	if err != nil {
		return err
	}
	inner, err := h.open(c.buf[:n])
	if err != nil {
		return fail("bad_response", "IKE_AUTH response: %v", err)
	}
	if nt := wire.FindNotify(inner, wire.NotifyAuthenticationFailed); nt != nil {
		return fail("authentication_failed", "responder refused our AUTH")
	}
	idr, _ := wire.Find(inner, wire.PayloadIDr).(*wire.ID)
	if idr == nil || wire.Find(inner, wire.PayloadAUTH) == nil {
		for _, p := range inner {
			if nt, ok := p.(*wire.Notify); ok && nt.Code.IsError() {
				return fail(notifyReason(nt.Code), "IKE_AUTH answered with notify %d", nt.Code)
			}
		}
		return fail("bad_response", "IKE_AUTH response without IDr or AUTH")
	}
	h.up = true
	if !sh.opts.RemoteID.IsZero() && !sh.opts.RemoteID.Matches(idr) {
		return fail("authentication_failed", "responder is %s, not %s", ike.IdentityFromPayload(idr), sh.opts.RemoteID)
	}
	if err := session.Verify(h.signedOctets(false, idr), inner); err != nil {
		return fail("authentication_failed", "verifying the responder: %v", err)
	}
	if !sh.childless {
		if wire.Find(inner, wire.PayloadSA) == nil {
			for _, p := range inner {
				if nt, ok := p.(*wire.Notify); ok && nt.Code.IsError() {
					return fail("child_"+notifyReason(nt.Code), "Child SA refused with notify %d", nt.Code)
				}
			}
			return fail("child_missing", "IKE_AUTH response without a Child SA")
		}
		c.childSAs++
	}
	return nil
}

func hostSelector(a netip.Addr) wire.TrafficSelector {
	t := wire.TSIPv4AddrRange
	if !a.Is4() {
		t = wire.TSIPv6AddrRange
	}
	return wire.TrafficSelector{Type: t, StartPort: 0, EndPort: 65535, StartAddr: a, EndAddr: a}
}

// deleteSA deletes the established IKE SA (and its Child SAs) with an
// INFORMATIONAL exchange (§1.4.1), waiting for the answer.
func (h *hs) deleteSA() error {
	req, err := h.seal(wire.INFORMATIONAL, h.nextID, []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}})
	if err != nil {
		return err
	}
	if _, err := h.c.exchange(req, h.matchResponse(wire.INFORMATIONAL, h.nextID)); err != nil {
		return err
	}
	return nil
}
