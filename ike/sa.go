package ike

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// state is an IKE SA's place in its life.
type state uint8

const (
	stateConnecting     state = iota // IKE_SA_INIT in progress
	stateAuthenticating              // IKE_SA_INIT done, IKE_AUTH pending
	stateEstablished
	stateDeleting
	stateDead
)

func (s state) String() string {
	return [...]string{"connecting", "authenticating", "established", "deleting", "dead"}[s]
}

// ikeSA is one IKE SA. Its fields are grouped by concern, each group with
// what guards it; the rules for taking mu are in docs/design.md ("Locks").
// Handshake steps run with mu held, so that one SA's messages are
// processed in order while other SAs proceed in parallel. The order of the
// groups also packs the struct into the 576-byte size class (held SAs:
// docs/performance.md).
type ikeSA struct {
	// Set when the SA is made and never changed: read without a lock.
	eng       *Engine
	serial    uint64 // names the SA in logs and the control API: see id
	initiator bool
	started   time.Time

	// mu guards the groups below unless a group names another guard.
	mu sync.Mutex

	// Its place in its life and what was negotiated along the way. The
	// flags sit together after state, where each alone would leave seven
	// bytes of padding.
	state          state
	encap          bool // IKE is on the NAT-T port (non-ESP marker); see espInUDP
	natLocal       bool
	natRemote      bool
	fragments      bool // RFC 7383: both sides announced it
	initialContact bool // the peer's IKE_AUTH carried INITIAL_CONTACT
	identIndexed   bool // in the identity index (identHash)
	ikeRekeying    bool // this side's own IKE SA rekey is in flight
	countedUp      bool // in Engine.up: established (markUp, markDown)
	hasFollowups   bool // pending IKE_FOLLOWUP_KE exchanges in Engine.followups
	// childOps counts this side's CREATE_CHILD_SA and Child SA delete
	// exchanges in flight: an IKE SA rekey waits for them (§2.25.2).
	childOps uint8

	// Who the peer is and the path to it.
	conn     *Connection
	localID  Identity
	remoteID Identity
	authName string
	bind     transport.Bind
	local    netip.AddrPort
	remote   netip.AddrPort
	initKey  halfOpenKey // how the IKE_SA_INIT request found us (responder)

	// Keys. spii of an initiator and spir of a responder (localSPI) are
	// set before the SA is published and read without mu (timer shards).
	spii, spir uint64
	suite      *suite
	keys       *transform.IKEKeys
	out, in    *transform.Protector // protect our messages / open the peer's

	// The handshake's state (compact.go): nil once a responder's IKE SA
	// is established, so code that can run after that checks it.
	*saHandshake

	// Requests we send: up to the peer's window outstanding (§2.3), each
	// waiting for its response in pending; reqSlot holds one token per
	// request in flight.
	nextSendID uint32
	pending    map[uint32]*pendingRequest
	reqSlot    chan struct{}
	sendWindow int

	// Requests the peer sends: the responses within the window, resent on
	// retransmission (§2.1); respID is the message ID of the request being
	// answered.
	responses respCache
	respID    uint32

	// RFC 7383 fragmentation: the message being reassembled in each
	// direction (fragments says whether both sides announced it).
	reqFragments  *reassembly
	respFragments *reassembly

	// Child SAs, and rekeying: rekeyedBy is the IKE SA that took over
	// after a rekey; peerIKERekey is the new SA the peer's simultaneous
	// rekey made while ikeRekeying (§2.8.2).
	children     []*childSA
	rekeyedBy    *ikeSA
	peerIKERekey *ikeSA

	// Timers and liveness: the armed rekey, DPD and keepalive timers, when
	// the SA was established, and when the peer last sent an authentic
	// message (for DPD). All on the engine's one clock (Config.Now).
	timers      *saTimer // linked through saTimer.next
	established time.Time
	lastRecv    time.Time

	// The identity index (INITIAL_CONTACT), guarded by Engine.identMu:
	// identHash keys the SA once established (identIndexed, under mu);
	// identPrev and identNext link the SAs of one identHash.
	identHash            uint64
	identPrev, identNext *ikeSA

	// logCache holds the log attributes once built; no lock. Log lines
	// are also written without mu held, hence an atomic pointer; and a
	// pointer, so that an SA that never logs (at the daemon's default
	// level, most of them) carries one word for it rather than the
	// attributes' key.
	logCache atomic.Pointer[logAttrCache]
}

// logAttrCache is an SA's log attributes and what they were built from.
type logAttrCache struct {
	key   logKey
	attrs []slog.Attr
}

// pendingRequest is a request waiting for its response.
type pendingRequest struct {
	id   uint32
	resp chan *response
}

// response is a decrypted response handed to the waiting requester.
type response struct {
	hdr      wire.Header
	payloads []wire.Payload
	raw      []byte       // the whole message, for IKE_SA_INIT (signed by AUTH)
	plain    plainMessage // the inner payloads' octets (IKE_INTERMEDIATE's IntAuth)
}

// id is the SA's name, "ike-N": formatted when asked for rather than
// stored, one object less per held SA for the garbage collector to visit.
func (sa *ikeSA) id() string { return "ike-" + strconv.FormatUint(sa.serial, 10) }

func (sa *ikeSA) localSPI() uint64 {
	if sa.initiator {
		return sa.spii
	}
	return sa.spir
}

func (sa *ikeSA) role() string {
	if sa.initiator {
		return "initiator"
	}
	return "responder"
}

// logAttrs are the attributes of every log line about this SA. They are
// built once and rebuilt only when what they show changes, because SPIs
// and addresses are formatted into strings. The fields read here change
// only under mu, and lines written without mu come after the handshake;
// the race detector runs the tests to keep it so.
func (sa *ikeSA) logAttrs() []slog.Attr {
	key := logKey{spir: sa.spir, remote: sa.remote, conn: sa.conn}
	if c := sa.logCache.Load(); c != nil && c.key == key {
		return c.attrs
	}
	attrs := []slog.Attr{slog.String("sa", sa.id()), slog.String("spi_i", spiHex(sa.spii)), slog.String("spi_r", spiHex(sa.spir)),
		slog.String("peer", sa.remote.String()), slog.String("role", sa.role())}
	if sa.conn != nil {
		attrs = append(attrs, slog.String("connection", sa.conn.Name))
	}
	// Two goroutines may build the attributes at once; either result is
	// right, and the attributes are never modified once stored.
	sa.logCache.Store(&logAttrCache{key: key, attrs: attrs})
	return attrs
}

// logKey is what the cached log attributes depend on.
type logKey struct {
	spir   uint64
	remote netip.AddrPort
	conn   *Connection
}

// logs reports whether lines of level are written: callers whose
// attributes cost something to format check it first.
func (sa *ikeSA) logs(level slog.Level) bool { return sa.eng.log.Enabled(context.Background(), level) }

// log writes one line about this SA. The level is checked first so that
// disabled debug lines cost nothing on the handshake path.
func (sa *ikeSA) log(level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if !sa.eng.log.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(sa.eng.cfg.Now(), level, msg, 0)
	r.AddAttrs(sa.logAttrs()...)
	r.Add(args...)
	_ = sa.eng.log.Handler().Handle(ctx, r)
}

// flags returns the header flags for a message we send.
func (sa *ikeSA) flags(isResponse bool) wire.Flags {
	var f wire.Flags
	if sa.initiator {
		f |= wire.FlagInitiator
	}
	if isResponse {
		f |= wire.FlagResponse
	}
	return f
}

// sealMessage builds a complete encrypted message: header, SK payload with
// inner payloads (§3.14); or, when both sides support RFC 7383 and the
// message is larger than the fragment size, its fragments. Caller holds mu.
func (sa *ikeSA) sealMessage(exch wire.ExchangeType, msgID uint32, isResponse bool, inner []wire.Payload) ([][]byte, error) {
	sa.traceMessage(traceSent, exch, isResponse, msgID, inner)
	plain := wire.AppendPayloads(nil, inner)
	defer wipe(plain)
	first := wire.PayloadNone
	if len(inner) > 0 {
		first = inner[0].Type()
	}
	bodyLen := sa.out.SealedLen(len(plain))
	total := wire.HeaderLen + wire.GenericHeaderLen + bodyLen
	if sa.fragments && total > sa.eng.cfg.FragmentSize {
		return sa.sealFragments(exch, msgID, isResponse, first, plain)
	}
	hdr := wire.Header{
		SPIi: sa.spii, SPIr: sa.spir, NextPayload: wire.PayloadSK, Version: wire.Version,
		Exchange: exch, Flags: sa.flags(isResponse), MessageID: msgID, Length: uint32(total),
	}
	buf := make([]byte, 0, total)
	buf = wire.AppendHeader(buf, &hdr)
	skLen := wire.GenericHeaderLen + bodyLen
	buf = append(buf, byte(first), 0, byte(skLen>>8), byte(skLen))
	out, err := sa.out.Seal(buf, plain, sa.eng.cfg.Rand)
	if err != nil {
		return nil, err
	}
	return [][]byte{out}, nil
}

// openMessage authenticates and decrypts msg's SK payload. Caller holds mu.
func (sa *ikeSA) openMessage(pkt []byte, msg *wire.Message) ([]wire.Payload, error) {
	inner, _, err := sa.openMessagePlain(pkt, msg)
	return inner, err
}

// plainMessage is what an SK message (or its reassembled fragments)
// carried, decrypted: the first inner payload's type and the inner
// payloads' octets, which RFC 9242's IntAuth covers.
type plainMessage struct {
	first wire.PayloadType
	plain []byte
}

// openMessagePlain is openMessage that also returns the decrypted octets.
// Caller holds mu.
func (sa *ikeSA) openMessagePlain(pkt []byte, msg *wire.Message) ([]wire.Payload, plainMessage, error) {
	if sa.in == nil {
		return nil, plainMessage{}, errUnexpected
	}
	n := len(msg.Payloads)
	if n == 0 {
		return nil, plainMessage{}, errUnexpected
	}
	switch sk := msg.Payloads[n-1].(type) {
	case *wire.Encrypted:
		plain, err := sa.in.Open(pkt[:len(pkt)-len(sk.Body)], sk.Body)
		if err != nil {
			return nil, plainMessage{}, err
		}
		inner, err := wire.ParsePayloads(sk.First, plain)
		return inner, plainMessage{sk.First, plain}, err
	case *wire.EncryptedFragment:
		if !sa.fragments {
			return nil, plainMessage{}, errUnexpected
		}
		plain, err := sa.in.Open(pkt[:len(pkt)-len(sk.Body)], sk.Body)
		if err != nil {
			return nil, plainMessage{}, err
		}
		first, whole, err := sa.reassemble(&msg.Header, sk, plain)
		if err != nil {
			return nil, plainMessage{}, err
		}
		inner, err := wire.ParsePayloads(first, whole)
		return inner, plainMessage{first, whole}, err
	}
	return nil, plainMessage{}, errUnexpected
}

// isFirstFragmentOrWhole reports whether msg is an SK message or the first
// fragment of one: what a retransmission is answered on (RFC 7383 §2.6.1).
func isFirstFragmentOrWhole(msg *wire.Message) bool {
	if n := len(msg.Payloads); n > 0 {
		if f, ok := msg.Payloads[n-1].(*wire.EncryptedFragment); ok {
			return f.Number == 1
		}
	}
	return true
}

// checkOnly authenticates msg's SK or SKF payload without keeping anything.
func (sa *ikeSA) checkOnly(pkt []byte, msg *wire.Message) error {
	return checkWith(sa.in, pkt, msg)
}

// checkWith authenticates msg's SK or SKF payload with in.
func checkWith(in *transform.Protector, pkt []byte, msg *wire.Message) error {
	n := len(msg.Payloads)
	if in == nil || n == 0 {
		return errUnexpected
	}
	var body []byte
	switch sk := msg.Payloads[n-1].(type) {
	case *wire.Encrypted:
		body = sk.Body
	case *wire.EncryptedFragment:
		body = sk.Body
	default:
		return errUnexpected
	}
	plain, err := in.Open(pkt[:len(pkt)-len(body)], body)
	wipe(plain)
	return err
}

var (
	errUnexpected = errors.New("unexpected message")
	errTimeout    = errors.New("peer did not answer (retransmissions exhausted)")
	errClosed     = errors.New("IKE SA closed")
)

// receive handles one message for this SA.
func (sa *ikeSA) receive(b transport.Bind, from netip.AddrPort, pkt []byte, msg *wire.Message) {
	sa.mu.Lock()
	locked := true
	defer func() {
		if locked {
			sa.mu.Unlock()
		}
	}()
	if sa.state == stateDead {
		sa.eng.stats.drop(DropUnknownSPI)
		return
	}
	hdr := &msg.Header
	if hdr.IsResponse() {
		sa.receiveResponse(pkt, msg)
		return
	}
	// A request. §2.2, §2.3: within the window, a new ID is processed and
	// one already answered is answered again from the cache; anything else
	// is dropped.
	window := uint32(1)
	if sa.state >= stateEstablished {
		window = recvWindow
	}
	cached, process := sa.responses.classify(hdr.MessageID, window)
	switch {
	case cached != nil:
		// Verify it is genuine before answering, so a forged header cannot
		// make us reflect the cached response. A retransmitted
		// IKE_INTERMEDIATE request came under the keys in force before it
		// (intermediate.go).
		if err := sa.checkOnly(pkt, msg); err != nil && !sa.checkPrevious(pkt, msg) {
			sa.eng.stats.drop(DropIntegrity)
			return
		}
		if isFirstFragmentOrWhole(msg) {
			sa.eng.stats.retransmitsAnswered.Add(1)
			sa.eng.sendAll(b, from, cached)
		}
		return
	case !process:
		sa.eng.stats.drop(DropInvalidMsgID)
		return
	}
	sa.respID = hdr.MessageID
	inner, plain, err := sa.openMessagePlain(pkt, msg)
	if err == errIncomplete {
		return
	}
	var we *wire.Error
	if errors.As(err, &we) {
		// Authentic but malformed inside: answer it, protected (§2.5, §3.10.1).
		sa.notePath(b, from)
		sa.answerMalformed(hdr.Exchange, we)
		return
	}
	if err != nil {
		sa.dropUndecryptable(err)
		return
	}
	sa.traceMessage(traceReceived, hdr.Exchange, false, hdr.MessageID, inner)
	sa.notePath(b, from)
	sa.lastRecv = sa.eng.cfg.Now()
	sa.dropPrevIn() // a new request under the new keys: no retransmission of the old one is due
	var resp [][]byte
	var after func()
	switch hdr.Exchange {
	case wire.IKE_AUTH:
		if sa.initiator || sa.state != stateAuthenticating {
			sa.eng.stats.drop(DropUnexpected)
			return
		}
		resp = sa.respondAuth(msg, inner)
	case wire.IKE_INTERMEDIATE:
		if sa.initiator || sa.state != stateAuthenticating {
			sa.eng.stats.drop(DropUnexpected)
			return
		}
		resp = sa.respondIntermediate(hdr, inner, plain)
	case wire.IKE_FOLLOWUP_KE:
		resp, after = sa.respondFollowup(inner)
	case wire.INFORMATIONAL:
		resp, after = sa.respondInformational(inner)
	case wire.CREATE_CHILD_SA:
		resp, after = sa.respondCreateChild(inner)
	default:
		sa.eng.stats.drop(DropUnsupported)
		return
	}
	if resp == nil {
		return
	}
	sa.responses.store(hdr.MessageID, resp, recvWindow)
	dead := sa.state == stateDead
	sa.mu.Unlock()
	locked = false
	// What the exchange left for after the lock (a rekeyed SA taking over
	// the Child SAs) runs before the response goes out, so that the peer
	// cannot use a new SA before this side knows it.
	if after != nil {
		after()
	}
	// §2.11: a response goes back to the address and port the request came from.
	sa.eng.sendAll(b, from, resp)
	if dead {
		sa.eng.unregister(sa)
	}
}

// answerMalformed answers an authenticated request whose inner payloads do
// not parse: UNSUPPORTED_CRITICAL_PAYLOAD naming the payload type, else
// INVALID_SYNTAX. A malformed IKE_AUTH or IKE_INTERMEDIATE ends the SA,
// which cannot be authenticated any more. Caller holds mu.
func (sa *ikeSA) answerMalformed(exch wire.ExchangeType, we *wire.Error) {
	sa.eng.stats.drop(DropMalformed)
	n := &wire.Notify{Code: wire.NotifyInvalidSyntax}
	if we.Notify == wire.NotifyUnsupportedCriticalPayload {
		n = &wire.Notify{Code: wire.NotifyUnsupportedCriticalPayload, Data: []byte{byte(we.Payload)}}
	}
	r := refuseWith(n, we).logged(slog.LevelInfo, "malformed request", "exchange", exch.String())
	initial := (exch == wire.IKE_AUTH || exch == wire.IKE_INTERMEDIATE) && sa.state < stateEstablished
	if initial {
		r.failure = failureReason(n.Code)
	}
	resp := sa.answer(exch, "", r)
	if resp == nil {
		return
	}
	sa.responses.store(sa.respID, resp, recvWindow)
	sa.eng.sendAll(sa.bind, sa.remote, resp)
	if initial {
		sa.destroyLocked("malformed " + exch.String())
		sa.eng.unregister(sa)
	}
}

// notePath follows the peer to the address and port an authenticated
// request came from: the initiator's move to the NAT-T port after
// IKE_SA_INIT (§2.23), or a NAT mapping that changed. Caller holds mu.
func (sa *ikeSA) notePath(b transport.Bind, from netip.AddrPort) {
	if b == sa.bind && from == sa.remote {
		return
	}
	sa.log(slog.LevelInfo, "peer moved", "from", sa.remote.String(), "to", from.String(), "local", b.LocalAddr().String())
	sa.bind, sa.remote, sa.local = b, from, b.LocalAddr()
	_, sa.encap = b.(transport.NATTBind)
	if !sa.encap {
		return
	}
	// The Child SAs' ESP-in-UDP follows the peer to its new NAT mapping.
	db := sa.eng.cfg.SADB
	for _, c := range sa.children {
		if c.inbound.EncapSrcPort == 0 {
			continue // plain ESP: no ports to follow
		}
		lp, rp := sa.local.Port(), sa.remote.Port()
		if err := db.Move(c.inbound, sa.remote.Addr(), sa.local.Addr(), rp, lp); err != nil {
			sa.log(slog.LevelWarn, "moving the inbound Child SA failed", "err", err)
		}
		if c.outPending {
			// Installed later, where it goes then.
			c.outbound.Src, c.outbound.Dst, c.outbound.EncapSrcPort, c.outbound.EncapDstPort = sa.local.Addr(), sa.remote.Addr(), lp, rp
			continue
		}
		if err := db.Move(c.outbound, sa.local.Addr(), sa.remote.Addr(), lp, rp); err != nil {
			sa.log(slog.LevelWarn, "moving the outbound Child SA failed", "err", err)
		}
	}
}

// espInUDP reports whether Child SAs' ESP goes inside UDP (RFC 3948): IKE
// is on the NAT-T port and a NAT was detected on either side, or
// encapsulation is forced (a connection's force_encap, or a data plane
// that speaks only ESP in UDP). The port alone is not enough: a MOBIKE
// peer moves IKE to port 4500 without a NAT (RFC 4555 §3.5) and keeps ESP
// plain. Caller holds mu.
func (sa *ikeSA) espInUDP() bool {
	forced := sa.eng.cfg.ForceEncap || (sa.conn != nil && sa.conn.ForceEncap)
	return sa.encap && (sa.natLocal || sa.natRemote || forced)
}

// dropUndecryptable counts a message whose SK payload failed.
func (sa *ikeSA) dropUndecryptable(err error) {
	switch {
	case errors.Is(err, errOversize):
		sa.eng.stats.drop(DropOversize)
		sa.log(slog.LevelInfo, "dropped fragmented message: larger than the maximum message size", "max", sa.eng.cfg.MaxMessageSize)
	case errors.Is(err, transform.ErrIntegrity):
		sa.eng.stats.drop(DropIntegrity)
		sa.log(slog.LevelDebug, "dropped message failing the integrity check")
	default:
		sa.eng.stats.drop(DropMalformed)
		sa.log(slog.LevelDebug, "dropped undecryptable message", "err", err)
	}
}

// receiveResponse hands a response to the waiting requester. Caller holds mu.
func (sa *ikeSA) receiveResponse(pkt []byte, msg *wire.Message) {
	p := sa.pending[msg.Header.MessageID]
	if p == nil {
		sa.eng.stats.drop(DropInvalidMsgID)
		return
	}
	r := &response{hdr: msg.Header}
	if msg.Header.Exchange == wire.IKE_SA_INIT {
		// Detach from the reader's buffer: parse our own copy.
		r.raw = append([]byte(nil), pkt...)
		m, err := wire.Parse(r.raw)
		if err != nil {
			return
		}
		r.payloads = m.Payloads
		sa.traceMessage(traceReceived, wire.IKE_SA_INIT, true, msg.Header.MessageID, r.payloads)
	} else {
		inner, plain, err := sa.openMessagePlain(pkt, msg)
		if err == errIncomplete {
			return
		}
		if err != nil {
			sa.dropUndecryptable(err)
			return
		}
		r.payloads = inner // decrypted into a fresh slice: safe to keep
		r.plain = plain
		sa.traceMessage(traceReceived, msg.Header.Exchange, true, msg.Header.MessageID, inner)
		sa.lastRecv = sa.eng.cfg.Now()
	}
	delete(sa.pending, p.id)
	p.resp <- r
}

// request sends a request and waits for its response, retransmitting with
// exponential backoff (§2.1). build is called with mu held and the message
// ID to use; it returns the packet. request must be called without mu held.
func (sa *ikeSA) request(ctx context.Context, build func(msgID uint32) ([][]byte, error)) (*response, error) {
	// No more requests in flight than the peer's window (§2.3): later
	// ones wait here.
	slot := sa.slot()
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-sa.eng.closing:
		return nil, errClosed
	}
	defer func() { <-slot }()
	sa.mu.Lock()
	if sa.state == stateDead {
		sa.mu.Unlock()
		return nil, errClosed
	}
	// IDs go out in order; an ID is used up once sent (§2.2).
	id := sa.nextSendID
	pkt, err := build(id)
	if err != nil {
		sa.mu.Unlock()
		return nil, err
	}
	sa.nextSendID = id + 1
	p := &pendingRequest{id: id, resp: make(chan *response, 1)}
	if sa.pending == nil {
		sa.pending = map[uint32]*pendingRequest{}
	}
	sa.pending[id] = p
	bind, remote := sa.bind, sa.remote
	sa.mu.Unlock()

	cfg := &sa.eng.cfg
	timeout := cfg.RetransmitTimeout
	began := time.Now()
	for try := 0; ; try++ {
		sa.eng.sendAll(bind, remote, pkt)
		timer := time.NewTimer(timeout)
		select {
		case r := <-p.resp:
			timer.Stop()
			if r == nil {
				return nil, errClosed
			}
			return r, nil
		case <-ctx.Done():
			timer.Stop()
			sa.clearPending(p)
			return nil, ctx.Err()
		case <-sa.eng.closing:
			timer.Stop()
			sa.clearPending(p)
			return nil, errClosed
		case <-timer.C:
		}
		if try >= cfg.RetransmitTries {
			sa.clearPending(p)
			// §2.4: a peer that answers none of the retransmissions is
			// dead; an established SA goes (with the DPD action).
			sa.mu.Lock()
			established := sa.state == stateEstablished
			sa.mu.Unlock()
			if established {
				sa.peerDead()
			}
			return nil, &timeoutError{peer: remote, retransmissions: try, waited: time.Since(began)}
		}
		sa.eng.stats.retransmissions.Add(1)
		sa.log(slog.LevelDebug, "retransmitting request", "message_id", id, "try", try+1)
		timeout = nextRetransmit(timeout, cfg.RetransmitBase)
	}
}

// nextRetransmit is the timeout after one of d: exponential backoff,
// capped at five minutes.
func nextRetransmit(d time.Duration, base float64) time.Duration {
	return time.Duration(math.Min(float64(d)*base, float64(5*time.Minute)))
}

// RetransmitBudget is how long one exchange waits for a silent peer: the
// first timeout and every retransmission's, until the engine gives up.
func (e *Engine) RetransmitBudget() time.Duration {
	var total time.Duration
	d := e.cfg.RetransmitTimeout
	for range e.cfg.RetransmitTries + 1 {
		total += d
		d = nextRetransmit(d, e.cfg.RetransmitBase)
	}
	return total
}

// InitiateTimeout bounds an initiation to a silent peer: IKE_SA_INIT and
// IKE_AUTH each get the whole retransmission budget (COOKIE and
// INVALID_KE_PAYLOAD restarts are answered, so they add round trips, not
// budgets), plus a margin for the work in between. A caller waiting for
// Initiate (the control socket) waits this long, so that the engine, not
// the caller, says what happened.
func (e *Engine) InitiateTimeout() time.Duration {
	return 2*e.RetransmitBudget() + 10*time.Second
}

// timeoutError is an exchange the peer never answered. It is errTimeout
// (errors.Is), and says to whom and for how long.
type timeoutError struct {
	peer            netip.AddrPort
	retransmissions int
	waited          time.Duration
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("no answer from %s after %d retransmissions, %.0f s", e.peer, e.retransmissions, e.waited.Seconds())
}

func (e *timeoutError) Is(target error) bool { return target == errTimeout }

// slot returns the channel whose capacity is the send window: one token
// per request in flight. It is replaced when the peer announces a window;
// a request gives its token back to the channel it took it from.
func (sa *ikeSA) slot() chan struct{} {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if sa.reqSlot == nil {
		sa.reqSlot = make(chan struct{}, max(1, sa.sendWindow))
	}
	return sa.reqSlot
}

// setSendWindow takes the peer's announced window. Caller holds mu.
func (sa *ikeSA) setSendWindow(w int) {
	if w != sa.sendWindow {
		sa.sendWindow = w
		sa.reqSlot = nil
	}
}

func (sa *ikeSA) clearPending(p *pendingRequest) {
	sa.mu.Lock()
	if sa.pending[p.id] == p {
		delete(sa.pending, p.id)
	}
	sa.mu.Unlock()
}

// destroy removes the SA and its Child SAs from everywhere. Caller must
// not hold mu.
func (sa *ikeSA) destroy(reason string) {
	sa.mu.Lock()
	sa.destroyLocked(reason)
	sa.mu.Unlock()
	sa.eng.unregister(sa)
}

// destroyLocked tears down the SA's state; the caller unregisters it.
func (sa *ikeSA) destroyLocked(reason string) {
	if sa.state == stateDead {
		return
	}
	wasHalfOpen := !sa.initiator && sa.state < stateEstablished
	if wasHalfOpen {
		sa.eng.halfOpenCount.Add(-1)
		sa.eng.halfOpenRemoved(sa.initKey.peer.Addr()) // authlimit hook
	}
	if sa.saHandshake != nil && sa.halfOpenTimer != nil {
		sa.halfOpenTimer.Stop()
	}
	sa.stopTimers()
	for _, c := range sa.children {
		sa.removeChild(c)
	}
	sa.children = nil
	sa.eng.subs.ikeDown(sa)
	if sa.state >= stateEstablished || sa.state == stateDeleting {
		sa.log(slog.LevelInfo, "IKE SA deleted", "reason", reason)
	}
	sa.state = stateDead
	sa.markDown()
	if sa.saHandshake != nil {
		for _, s := range sa.sessions {
			s.Close()
		}
		sa.sessions = nil
	}
	sa.dropPrevIn()
	sa.dropFollowups()
	if sa.keys != nil {
		sa.keys.Wipe()
	}
	sa.wipeProtectors()
	// Requests waiting for a response learn at once that none will come.
	for _, p := range sa.pending {
		close(p.resp)
	}
	sa.pending = nil
	sa.reqFragments.wipe()
	sa.respFragments.wipe()
	sa.reqFragments, sa.respFragments = nil, nil
}

// removeChild removes a Child SA from the data plane. Caller holds mu.
func (sa *ikeSA) removeChild(c *childSA) {
	sa.concludePeerRekey(c)
	sa.eng.subs.childDown(sa, c)
	sa.childDown(c)
	if err := sa.eng.releasePolicies(c.policies); err != nil {
		sa.log(slog.LevelWarn, "removing Child SA policies from the data plane failed", "err", err)
	}
	ids := []sadb.ID{c.inbound.ID(), c.outbound.ID()}
	if c.outPending {
		// Never installed: only its keys to forget.
		ids = ids[:1]
		c.outbound.EncrKey.Wipe()
		c.outbound.IntegKey.Wipe()
	}
	if err := sa.eng.cfg.SADB.Remove(ids...); err != nil && !errors.Is(err, sadb.ErrNotFound) {
		sa.log(slog.LevelWarn, "removing Child SA from the data plane failed", "err", err)
	}
	if sa.logs(slog.LevelInfo) {
		sa.log(slog.LevelInfo, "CHILD SA removed", "spi_in", fmt.Sprintf("%08x", c.inbound.SPI), "spi_out", fmt.Sprintf("%08x", c.outbound.SPI))
	}
}

// info snapshots the SA for ikectl.
func (sa *ikeSA) info() SAInfo {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	in := SAInfo{
		ID: sa.id(), SPIi: spiHex(sa.spii), SPIr: spiHex(sa.spir), State: sa.state.String(), Role: sa.role(),
		LocalAddr: sa.local.String(), RemoteAddr: sa.remote.String(),
		LocalID: sa.localID.String(), RemoteID: sa.remoteID.String(), Auth: sa.authName,
		NATLocal: sa.natLocal, NATRemote: sa.natRemote, Established: sa.established,
		Children: []ChildInfo{},
	}
	if sa.conn != nil {
		in.Connection = sa.conn.Name
	}
	if sa.suite != nil {
		in.Algorithms, in.Proposal, in.PostQuantum = sa.suite.String(), sa.suite.keywords(), sa.suite.postQuantum()
	}
	for _, c := range sa.children {
		in.Children = append(in.Children, c.info(sa.eng.cfg.SADB))
	}
	return in
}
