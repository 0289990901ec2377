package ikev1

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transport"
)

// maxDatagram is the largest message accepted.
const maxDatagram = 65535

// natTPort is the NAT traversal port (RFC 3947).
const natTPort = 4500

// Engine runs ISAKMP SAs over a set of binds.
type Engine struct {
	cfg Config
	log *slog.Logger

	conns atomic.Pointer[[]*Connection]
	// authList are the Main Mode authentication methods, the built-in
	// ones first; a connection uses the first that takes its credentials.
	authList []MainModeAuth

	// Binds; guarded by bindMu.
	bindMu sync.RWMutex
	binds  []transport.Bind

	// The SA table, guarded by tableMu (a leaf lock): SAs by this side's
	// cookie, responder SAs in Main Mode by the peer and its cookie (so
	// that a retransmitted first message finds its SA).
	tableMu  sync.Mutex
	byCookie map[uint64]*isakmpSA
	halfOpen map[halfOpenKey]*isakmpSA
	// contacts counts, per peer address, the SAs that speak for this
	// side's state with the peer (contact.go); guarded by tableMu.
	contacts map[netip.Addr]int

	// policyRefs counts the IPsec SAs using each data-plane policy;
	// guarded by policyMu (a leaf lock).
	policyMu   sync.Mutex
	policyRefs map[sadb.PolicyID]int

	// peerDeletes are Deletes for IPsec SAs being handed over between
	// ISAKMP SAs (handover.go); its lock is a leaf.
	peerDeletes peerDeletes
	// inboxes order each ISAKMP SA's messages (dispatch.go); its lock is
	// a leaf.
	inboxes inboxes

	frags *reassembler

	nextSerial atomic.Uint64
	nextReqID  atomic.Uint32
	stats      *counters
	keyLog     *keyLogger

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// halfOpenKey finds a responder SA by its first message.
type halfOpenKey struct {
	peer    netip.AddrPort
	icookie uint64
}

// New returns an engine for cfg; it does nothing until binds are added.
func New(cfg Config) (*Engine, error) {
	cfg.applyDefaults()
	if cfg.SADB == nil {
		return nil, errors.New("ikev1: no SA database")
	}
	for _, c := range cfg.Connections {
		if err := ValidateConnection(c); err != nil {
			return nil, err
		}
	}
	e := &Engine{
		cfg:        cfg,
		log:        cfg.Logger,
		byCookie:   map[uint64]*isakmpSA{},
		halfOpen:   map[halfOpenKey]*isakmpSA{},
		contacts:   map[netip.Addr]int{},
		policyRefs: map[sadb.PolicyID]int{},
		frags:      newReassembler(),
		stats:      newCounters(),
		closing:    make(chan struct{}),
	}
	if e.cfg.Rand == nil {
		e.cfg.Rand = rand.Reader
	}
	e.nextReqID.Store(cfg.ReqIDBase)
	e.authList = append(e.authList, append(builtinAuths(), cfg.Auths...)...)
	if cfg.KeyLog != nil {
		e.keyLog = &keyLogger{w: cfg.KeyLog}
	}
	conns := append([]*Connection(nil), cfg.Connections...)
	e.conns.Store(&conns)
	return e, nil
}

// SetConnections replaces the configured connections. Established SAs
// keep running; new handshakes use the new set.
func (e *Engine) SetConnections(conns []*Connection) error {
	for _, c := range conns {
		if err := ValidateConnection(c); err != nil {
			return err
		}
	}
	cs := append([]*Connection(nil), conns...)
	e.conns.Store(&cs)
	return nil
}

// Connections returns the configured connections.
func (e *Engine) Connections() []*Connection { return *e.conns.Load() }

func (e *Engine) connection(name string) *Connection {
	for _, c := range e.Connections() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// AddBind starts serving b. The engine closes it on Close.
func (e *Engine) AddBind(b transport.Bind) {
	e.bindMu.Lock()
	e.binds = append(e.binds, b)
	e.bindMu.Unlock()
	turn := new(sync.Mutex) // the readers' turn to read b (dispatch.go)
	for range e.cfg.Readers {
		e.wg.Add(1)
		go e.readLoop(b, turn)
	}
}

// StartConnections initiates every connection configured to start, each
// in its own goroutine, retrying with backoff (1 s doubling to 2 min)
// until it succeeds or ctx ends.
func (e *Engine) StartConnections(ctx context.Context) {
	for _, c := range e.Connections() {
		if c.Initiate {
			go e.keepTrying(ctx, c)
		}
	}
}

func (e *Engine) keepTrying(ctx context.Context, c *Connection) {
	wait := time.Second
	for {
		_, err := e.Initiate(ctx, c.Name)
		if err == nil {
			return
		}
		e.log.Warn("start action failed, will retry", "version", "ikev1", "connection", c.Name, "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-e.closing:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Minute)
	}
}

// readLoop is one of a bind's readers: it reads in turn with the others,
// so that datagrams are queued in the order they arrived, and handles the
// queue of the ISAKMP SA it found idle (dispatch.go).
func (e *Engine) readLoop(b transport.Bind, turn *sync.Mutex) {
	defer e.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		turn.Lock()
		n, from, err := b.ReadFrom(buf)
		if err != nil {
			turn.Unlock()
			select {
			case <-e.closing:
				return
			default:
			}
			if errors.Is(err, transport.ErrClosed) || errors.Is(err, net.ErrClosed) {
				return
			}
			e.log.Warn("read failed", "version", "ikev1", "local", b.LocalAddr(), "err", err)
			continue
		}
		e.stats.received.Add(1)
		key, handle := e.dispatch(b, from, buf[:n])
		turn.Unlock()
		if handle {
			e.drain(key)
		}
	}
}

// send writes a datagram and counts it.
func (e *Engine) send(b transport.Bind, to netip.AddrPort, pkt []byte) {
	if err := b.WriteTo(pkt, to); err != nil {
		e.log.Debug("send failed", "version", "ikev1", "peer", to, "err", err)
		return
	}
	e.stats.sent.Add(1)
}

// handlePacket is the entry of every received datagram: parse the
// header, reassemble fragments, find the SA, dispatch. It never panics on
// bad input and never blocks on another SA.
func (e *Engine) handlePacket(b transport.Bind, from netip.AddrPort, pkt []byte) {
	hdr, err := isakmp.ParseHeader(pkt)
	if err != nil {
		e.stats.drop(DropMalformed)
		e.log.Debug("dropped malformed header", "version", "ikev1", "peer", from, "err", err)
		return
	}
	if hdr.Next == isakmp.PayloadFragment && !hdr.Encrypted() {
		whole, ok := e.frags.add(from, &hdr, pkt)
		if !ok {
			return
		}
		pkt = whole
		if hdr, err = isakmp.ParseHeader(pkt); err != nil {
			e.stats.drop(DropMalformed)
			e.log.Debug("dropped malformed reassembled message", "version", "ikev1", "peer", from, "err", err)
			return
		}
		if hdr.Next == isakmp.PayloadFragment {
			e.stats.drop(DropMalformed)
			return
		}
	}
	// Our cookie is the responder's for an SA the peer initiated.
	if hdr.RCookie != 0 {
		if sa := e.lookup(hdr.RCookie); sa != nil && !sa.initiator && sa.icookie == hdr.ICookie {
			sa.receive(b, from, &hdr, pkt)
			return
		}
	}
	if sa := e.lookup(hdr.ICookie); sa != nil && sa.initiator {
		sa.receive(b, from, &hdr, pkt)
		return
	}
	if hdr.RCookie == 0 && hdr.MessageID == 0 && !hdr.Encrypted() {
		switch hdr.Exchange {
		case isakmp.ExchangeMain:
			e.respondMainMode1(b, from, &hdr, pkt)
			return
		case isakmp.ExchangeAggressive:
			e.refuseAggressive(b, from, &hdr)
			return
		}
	}
	// RFC 2408 §5.2 allows INVALID-COOKIE, but an answer to an unknown
	// SA invites reflection: like strongSwan, only count it.
	e.stats.drop(DropUnknownSPI)
	e.log.Debug("dropped message for unknown ISAKMP SA", "version", "ikev1", "peer", from,
		"cookie_i", cookieHex(hdr.ICookie), "cookie_r", cookieHex(hdr.RCookie), "exchange", hdr.Exchange.String())
}

// refuseAggressive answers an Aggressive Mode request: iked never speaks
// it, since its second message carries a hash keyed with the PSK in the
// clear, to any initiator, for an offline dictionary attack.
func (e *Engine) refuseAggressive(b transport.Bind, from netip.AddrPort, hdr *isakmp.Header) {
	e.stats.drop(DropUnsupported)
	e.stats.failure("aggressive_mode_refused")
	e.log.Warn("Aggressive Mode refused: it exposes a PSK-keyed hash to offline guessing; configure the peer for Main Mode",
		"version", "ikev1", "peer", from, "cookie_i", cookieHex(hdr.ICookie))
	e.sendPlainNotify(b, from, hdr.ICookie, 0, isakmp.UnsupportedExchangeType, nil)
}

// sendPlainNotify answers a message that has no SA (yet) with an
// unencrypted Informational exchange carrying one notification (RFC 2408
// §5: errors before keys are sent in the clear).
func (e *Engine) sendPlainNotify(b transport.Bind, to netip.AddrPort, icookie, rcookie uint64, code isakmp.NotifyType, data []byte) {
	var mid [4]byte
	_, _ = e.cfg.Rand.Read(mid[:])
	m := isakmp.Message{
		Header: isakmp.Header{ICookie: icookie, RCookie: rcookie, Version: isakmp.Version,
			Exchange: isakmp.ExchangeInformational, MessageID: binary.BigEndian.Uint32(mid[:])},
		Payloads: []isakmp.Payload{&isakmp.Notify{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoISAKMP, Code: code,
			SPI: cookiePair(icookie, rcookie), Data: data}},
	}
	e.stats.notify(code.String())
	e.send(b, to, m.Marshal())
}

// cookiePair is the 16-octet SPI of an ISAKMP SA in notifications and
// deletes (RFC 2408 §3.14: the two cookies).
func cookiePair(i, r uint64) []byte {
	b := binary.BigEndian.AppendUint64(nil, i)
	return binary.BigEndian.AppendUint64(b, r)
}

func (e *Engine) lookup(cookie uint64) *isakmpSA {
	e.tableMu.Lock()
	defer e.tableMu.Unlock()
	return e.byCookie[cookie]
}

// newCookie returns a fresh nonzero cookie not in use. RFC 2408 §2.5.3
// asks for a hash of the addresses and a secret; a random 64-bit value is
// as unpredictable, and iked keeps no per-peer state before the first
// message anyway.
func (e *Engine) newCookie() (uint64, error) {
	var b [8]byte
	for range 16 {
		if _, err := e.cfg.Rand.Read(b[:]); err != nil {
			return 0, err
		}
		c := binary.BigEndian.Uint64(b[:])
		if c != 0 && e.lookup(c) == nil {
			return c, nil
		}
	}
	return 0, errors.New("ikev1: no free cookie")
}

// register adds sa to the table under its cookie (and, for a responder in
// Main Mode, its first message's key).
func (e *Engine) register(sa *isakmpSA, ho *halfOpenKey) {
	e.tableMu.Lock()
	e.byCookie[sa.localCookie()] = sa
	if ho != nil {
		e.halfOpen[*ho] = sa
	}
	if sa.initiator {
		e.countContactLocked(sa)
	}
	e.tableMu.Unlock()
}

// unregister removes sa from the table.
func (e *Engine) unregister(sa *isakmpSA) {
	e.tableMu.Lock()
	if e.byCookie[sa.localCookie()] == sa {
		delete(e.byCookie, sa.localCookie())
	}
	for k, v := range e.halfOpen {
		if v == sa {
			delete(e.halfOpen, k)
		}
	}
	e.uncountContactLocked(sa)
	e.tableMu.Unlock()
}

// leaveHalfOpen forgets a responder SA's first-message key once Main Mode
// moved past it.
func (e *Engine) leaveHalfOpen(key halfOpenKey) {
	e.tableMu.Lock()
	delete(e.halfOpen, key)
	e.tableMu.Unlock()
}

func (e *Engine) allSAs() []*isakmpSA {
	e.tableMu.Lock()
	defer e.tableMu.Unlock()
	out := make([]*isakmpSA, 0, len(e.byCookie))
	for _, sa := range e.byCookie {
		out = append(out, sa)
	}
	return out
}

// bindFor picks the bind to initiate from: one on the connection's local
// address (or any) in the remote's family, not the NAT-T one.
func (e *Engine) bindFor(c *Connection) (transport.Bind, error) {
	e.bindMu.RLock()
	defer e.bindMu.RUnlock()
	for _, b := range e.binds {
		if _, natt := b.(transport.NATTBind); natt {
			continue
		}
		la := b.LocalAddr().Addr()
		if la.Is4() != c.Remote.Addr().Is4() {
			continue
		}
		if c.Local.IsValid() && la != c.Local && !la.IsUnspecified() {
			continue
		}
		return b, nil
	}
	return nil, fmt.Errorf("no listen address to reach %s from", c.Remote)
}

// nattBindFor returns the NAT-T bind on address a (or on the unspecified
// address of a's family), or nil.
func (e *Engine) nattBindFor(a netip.Addr) transport.Bind {
	e.bindMu.RLock()
	defer e.bindMu.RUnlock()
	for _, b := range e.binds {
		if _, ok := b.(transport.NATTBind); !ok {
			continue
		}
		la := b.LocalAddr().Addr()
		if la == a || (la.IsUnspecified() && la.Is4() == a.Is4()) {
			return b
		}
	}
	return nil
}

// Close stops reading and forgets every SA, without sending anything
// (see Shutdown); the IPsec SAs are removed from the data plane.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		close(e.closing)
		e.bindMu.Lock()
		binds := e.binds
		e.bindMu.Unlock()
		for _, b := range binds {
			_ = b.Close()
		}
	})
	e.wg.Wait()
	for _, sa := range e.allSAs() {
		sa.destroy("engine closed", false)
	}
	return nil
}

// Shutdown deletes every SA, telling the peers, then stops the engine.
func (e *Engine) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, sa := range e.allSAs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sa.deleteAll("shutdown")
		}()
	}
	wg.Wait()
	return e.Close()
}

// Terminate deletes the ISAKMP SAs named by target, an SA ID ("isakmp-3")
// or a connection name, with their IPsec SAs, telling the peer. It
// returns how many it deleted.
func (e *Engine) Terminate(_ context.Context, target string) (int, error) {
	var victims []*isakmpSA
	for _, sa := range e.allSAs() {
		sa.mu.Lock()
		match := sa.id() == target || (sa.conn != nil && sa.conn.Name == target)
		sa.mu.Unlock()
		if match {
			victims = append(victims, sa)
		}
	}
	if len(victims) == 0 {
		if e.connection(target) != nil {
			return 0, nil
		}
		return 0, fmt.Errorf("no ISAKMP SA or IKEv1 connection named %q", target)
	}
	for _, sa := range victims {
		sa.deleteAll("terminated by operator")
	}
	return len(victims), nil
}

// Owns reports whether target names one of the engine's SAs or
// connections, for a daemon routing control commands between engines.
func (e *Engine) Owns(target string) bool {
	if e.connection(target) != nil {
		return true
	}
	for _, sa := range e.allSAs() {
		if sa.id() == target {
			return true
		}
	}
	return false
}

// saOf returns an established ISAKMP SA of the named connection, or nil.
func (e *Engine) saOf(name string) *isakmpSA {
	for _, sa := range e.allSAs() {
		sa.mu.Lock()
		ok := sa.conn != nil && sa.conn.Name == name && sa.state == stateEstablished
		sa.mu.Unlock()
		if ok {
			return sa
		}
	}
	return nil
}
