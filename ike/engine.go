package ike

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transport"
)

// maxDatagram is the largest IKE message accepted; RFC 7296 §2 requires
// 1280 octets at least and UDP allows 65507.
const maxDatagram = 65535

// Engine runs IKE SAs over a set of binds.
type Engine struct {
	cfg Config
	log *slog.Logger

	conns atomic.Pointer[[]*Connection]

	// sas finds the IKE SAs by local SPI and the half-open ones by their
	// IKE_SA_INIT request (satable.go).
	sas saTable

	mu    sync.RWMutex // guards binds
	binds []transport.Bind

	// policyMu guards policyRefs and holds (hold.go). A leaf lock but for
	// the data plane and the Observer's policy callbacks, which it is held
	// across so that policies change in order.
	policyMu   sync.Mutex
	policyRefs map[sadb.PolicyID]int
	holds      map[sadb.PolicyID]*hold

	// byIdentity finds the established IKE SAs of a local and remote
	// identity pair without a scan of all SAs (INITIAL_CONTACT): the first
	// SA of a list linked through identPrev/identNext. A list in the SAs
	// rather than a set per identity, since with one identity per peer
	// each set would be a map of one entry. Keyed by a hash of the
	// identities rather than a string of them: a string per held SA is
	// one more object for the garbage collector to visit in each cycle.
	identMu    sync.Mutex
	identSeed  maphash.Seed
	byIdentity map[uint64]*ikeSA

	// upMu guards up: how many established IKE SAs each connection (by
	// name) has. It decides INITIAL_CONTACT without looking into other
	// SAs, whose locks an SA must never take while holding its own. A
	// leaf lock: nothing is called with it held.
	upMu sync.Mutex
	up   map[string]int

	// timers drives the established SAs' timers (timerheap.go).
	timers timerHeaps
	// suites are the IKE SAs' shared suites (suitecache.go).
	suites sync.Map
	// followups are the responder's pending IKE_FOLLOWUP_KE exchanges
	// (followup.go); its lock is a leaf.
	followups followupTable

	halfOpenCount atomic.Int64
	limits        peerLimits // per-address limits (authlimit.go)
	nextID        atomic.Uint64
	nextReqID     atomic.Uint32
	stats         *counters
	cookies       *cookieJar
	keyLog        *keyLogger
	subs          subscribers // SA event subscribers (events_sub.go)

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// halfOpenKey finds a responder SA by what an IKE_SA_INIT request carries,
// so that its retransmission is answered from the cached response.
type halfOpenKey struct {
	peer netip.AddrPort
	spii uint64
}

// New returns an engine for cfg; it does nothing until binds are added.
func New(cfg Config) (*Engine, error) {
	cfg.applyDefaults()
	if cfg.SADB == nil {
		return nil, errors.New("ike: no SA database")
	}
	for _, c := range cfg.Connections {
		if err := validateConnection(c); err != nil {
			return nil, err
		}
	}
	e := &Engine{
		cfg:        cfg,
		log:        cfg.Logger,
		policyRefs: map[sadb.PolicyID]int{},
		holds:      map[sadb.PolicyID]*hold{},
		byIdentity: map[uint64]*ikeSA{},
		up:         map[string]int{},
		identSeed:  maphash.MakeSeed(),
		stats:      newCounters(),
		closing:    make(chan struct{}),
	}
	if e.cfg.Rand == nil {
		e.cfg.Rand = rand.Reader
	}
	e.timers.clock = e.cfg.Now
	jar, err := newCookieJar(e.cfg.Rand, e.cfg.Now)
	if err != nil {
		return nil, err
	}
	e.cookies = jar
	if cfg.KeyLog != nil {
		e.keyLog = &keyLogger{w: cfg.KeyLog}
	}
	conns := append([]*Connection(nil), cfg.Connections...)
	e.conns.Store(&conns)
	if events := cfg.SADB.Events(); events != nil {
		e.wg.Add(1)
		go e.handleEvents(events)
	}
	return e, nil
}

// SetConnections replaces the configured connections. Established SAs
// keep running; new handshakes use the new set.
func (e *Engine) SetConnections(conns []*Connection) error {
	for _, c := range conns {
		if err := validateConnection(c); err != nil {
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

// natTPort is the NAT traversal port (RFC 3948); binds on it are wrapped in
// transport.NATTBind.
const natTPort = 4500

// nattBindFor returns the NAT-T bind on address a (or on the unspecified
// address of a's family), or nil.
func (e *Engine) nattBindFor(a netip.Addr) transport.Bind {
	e.mu.RLock()
	defer e.mu.RUnlock()
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

// AddBind starts serving b. The engine closes it on Close.
func (e *Engine) AddBind(b transport.Bind) {
	e.mu.Lock()
	e.binds = append(e.binds, b)
	e.mu.Unlock()
	readers := e.cfg.Readers
	if readers <= 0 {
		readers = runtime.GOMAXPROCS(0)
	}
	for range readers {
		e.wg.Add(1)
		go e.readLoop(b)
	}
}

// StartConnections initiates every connection configured to start, each
// in its own goroutine. A failure is logged and retried with exponential
// backoff (1 s doubling to 2 min) until it succeeds or ctx ends: a peer
// that is down when the daemon starts is reached once it is up.
func (e *Engine) StartConnections(ctx context.Context) {
	for _, c := range e.Connections() {
		if !c.Initiate {
			continue
		}
		go func() {
			wait := time.Second
			for {
				_, err := e.Initiate(ctx, c.Name)
				if err == nil {
					return
				}
				e.log.Warn("start action failed, will retry", "connection", c.Name, "err", err, "retry_in", wait.String())
				select {
				case <-ctx.Done():
					return
				case <-e.closing:
					return
				case <-time.After(wait):
				}
				wait = min(2*wait, 2*time.Minute)
			}
		}()
	}
}

func (e *Engine) readLoop(b transport.Bind) {
	defer e.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := b.ReadFrom(buf)
		if err != nil {
			select {
			case <-e.closing:
				return
			default:
			}
			if errors.Is(err, transport.ErrClosed) || isClosedErr(err) {
				return
			}
			e.log.Warn("read failed", "local", b.LocalAddr(), "err", err)
			continue
		}
		e.stats.received.Add(1)
		if n > e.cfg.MaxMessageSize {
			// Bounded before parsing: nothing in a message this large is
			// looked at (charon and pluto drop them too).
			e.stats.drop(DropOversize)
			e.log.Debug("dropped oversize datagram", "peer", from, "size", n, "max", e.cfg.MaxMessageSize)
			continue
		}
		e.handlePacket(b, from, buf[:n])
	}
}

func isClosedErr(err error) bool { return errors.Is(err, net.ErrClosed) }

// send writes a datagram and counts it.
func (e *Engine) send(b transport.Bind, to netip.AddrPort, pkt []byte) {
	if err := b.WriteTo(pkt, to); err != nil {
		e.log.Debug("send failed", "peer", to, "err", err)
		return
	}
	e.stats.sent.Add(1)
}

// sendAll writes the datagrams of one message (several when fragmented).
func (e *Engine) sendAll(b transport.Bind, to netip.AddrPort, pkts [][]byte) {
	for _, p := range pkts {
		e.send(b, to, p)
	}
}

// handlePacket is the entry point of every received datagram: parse,
// find the SA, dispatch. It never panics on bad input and never blocks on
// another SA.
func (e *Engine) handlePacket(b transport.Bind, from netip.AddrPort, pkt []byte) {
	hdr, err := wire.ParseHeader(pkt)
	if err != nil {
		e.stats.drop(DropMalformed)
		e.log.Debug("dropped malformed header", "peer", from, "err", err)
		return
	}
	msg, perr := wire.Parse(pkt)
	if perr != nil {
		e.handleParseError(b, from, &hdr, perr)
		return
	}
	if hdr.Exchange == wire.IKE_SA_INIT && !hdr.IsResponse() {
		// §3.1: the initiator's SPI MUST NOT be zero; a request with SPIr
		// or a message ID set is not an IKE_SA_INIT request either.
		if hdr.SPIi == 0 || hdr.SPIr != 0 || hdr.MessageID != 0 {
			e.stats.drop(DropMalformed)
			e.log.Debug("dropped malformed IKE_SA_INIT request", "peer", from, "spi_i", spiHex(hdr.SPIi), "spi_r", spiHex(hdr.SPIr), "message_id", hdr.MessageID)
			return
		}
		e.traceMessage(from, traceReceived, wire.IKE_SA_INIT, false, 0, msg.Payloads)
		e.respondSAInit(b, from, pkt, msg)
		return
	}
	// Our SPI is the responder's when the sender is the original initiator.
	local := hdr.SPIi
	if hdr.FromInitiator() {
		local = hdr.SPIr
	}
	sa := e.sas.get(local)
	if sa == nil || (hdr.FromInitiator() && sa.spii != hdr.SPIi) || (!hdr.FromInitiator() && hdr.Exchange != wire.IKE_SA_INIT && sa.spir != hdr.SPIr) {
		// §2.21.4: a request for an unknown SA may be answered with
		// INVALID_IKE_SPI, but that invites reflection; like strongSwan we
		// only count it.
		e.stats.drop(DropUnknownSPI)
		e.log.Debug("dropped message for unknown IKE SA", "peer", from, "spi_i", spiHex(hdr.SPIi), "spi_r", spiHex(hdr.SPIr))
		return
	}
	sa.receive(b, from, pkt, msg)
}

// handleParseError answers a message that failed to parse, as §2.21 says.
// Only an IKE_SA_INIT request can be answered without protection; an
// encrypted message that did not parse cannot be authenticated and is
// dropped.
func (e *Engine) handleParseError(b transport.Bind, from netip.AddrPort, hdr *wire.Header, err error) {
	var we *wire.Error
	errors.As(err, &we)
	e.stats.drop(DropMalformed)
	e.log.Info("dropped malformed message", "peer", from, "exchange", hdr.Exchange.String(), "err", err)
	if we == nil || hdr.IsResponse() || hdr.Exchange != wire.IKE_SA_INIT || hdr.SPIr != 0 {
		return
	}
	switch we.Notify {
	case wire.NotifyUnsupportedCriticalPayload:
		// §2.5: the response MUST carry UNSUPPORTED_CRITICAL_PAYLOAD with the type.
		e.sendInitError(b, from, hdr, wire.NotifyUnsupportedCriticalPayload, []byte{byte(we.Payload)})
	case wire.NotifyInvalidMajorVersion:
		// §2.5: answer with the highest version we support.
		e.sendInitError(b, from, hdr, wire.NotifyInvalidMajorVersion, []byte{wire.Version})
	}
	// INVALID_SYNTAX may only be sent in an encrypted packet (§3.10.1).
}

// sendInitError answers an IKE_SA_INIT request with one unprotected
// error notify (§2.21.1).
func (e *Engine) sendInitError(b transport.Bind, to netip.AddrPort, req *wire.Header, code wire.NotifyType, data []byte) {
	m := wire.Message{
		Header:   wire.Header{SPIi: req.SPIi, Version: wire.Version, Exchange: wire.IKE_SA_INIT, Flags: wire.FlagResponse},
		Payloads: []wire.Payload{&wire.Notify{Code: code, Data: data}},
	}
	e.stats.notify(code.String())
	e.traceMessage(to, traceSent, wire.IKE_SA_INIT, true, 0, m.Payloads)
	e.send(b, to, m.Marshal())
}

// newSPI returns a fresh nonzero IKE SPI not in use.
func (e *Engine) newSPI() (uint64, error) {
	var b [8]byte
	for range 16 {
		if _, err := e.cfg.Rand.Read(b[:]); err != nil {
			return 0, err
		}
		spi := binary.BigEndian.Uint64(b[:])
		if spi == 0 {
			continue
		}
		if e.sas.get(spi) == nil {
			return spi, nil
		}
	}
	return 0, errors.New("ike: no free SPI")
}

func (e *Engine) register(sa *ikeSA) {
	e.sas.put(sa)
}

// unregister removes sa from every index.
func (e *Engine) unregister(sa *ikeSA) {
	e.sas.remove(sa)
	if sa.identIndexed {
		e.identMu.Lock()
		e.unlinkIdentity(sa)
		e.identMu.Unlock()
	}
}

// unlinkIdentity takes sa out of its identity list, if it is in it.
// Caller holds identMu.
func (e *Engine) unlinkIdentity(sa *ikeSA) {
	switch {
	case sa.identPrev != nil:
		sa.identPrev.identNext = sa.identNext
	case e.byIdentity[sa.identHash] == sa:
		if sa.identNext != nil {
			e.byIdentity[sa.identHash] = sa.identNext
		} else {
			delete(e.byIdentity, sa.identHash)
		}
	default:
		return // not linked
	}
	if sa.identNext != nil {
		sa.identNext.identPrev = sa.identPrev
	}
	sa.identPrev, sa.identNext = nil, nil
}

// identityHash hashes an SA's local and remote identities for the index.
func (e *Engine) identityHash(sa *ikeSA) uint64 {
	var h maphash.Hash
	h.SetSeed(e.identSeed)
	for _, id := range [2]Identity{sa.localID, sa.remoteID} {
		v := id.Value
		if id.Type == wire.IDDERASN1DN {
			v = []byte(id.String()) // equal DNs, one string (identity.go)
		}
		var hdr [5]byte
		hdr[0] = byte(id.Type)
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(v)))
		h.Write(hdr[:])
		h.Write(v)
	}
	return h.Sum64()
}

// indexIdentity records an established SA under its identities. Caller
// holds sa.mu.
func (e *Engine) indexIdentity(sa *ikeSA) {
	e.indexIdentityHash(sa, e.identityHash(sa))
}

// indexIdentityHash links sa into the list of hash h; SAs of different
// identities may share a list (sameIdentity tells them apart).
func (e *Engine) indexIdentityHash(sa *ikeSA, h uint64) {
	e.identMu.Lock()
	e.unlinkIdentity(sa) // once only, should it be indexed again
	sa.identHash, sa.identIndexed = h, true
	if head := e.byIdentity[h]; head != nil {
		head.identPrev = sa
		sa.identNext = head
	}
	e.byIdentity[h] = sa
	e.identMu.Unlock()
}

// sameIdentity returns the indexed SAs with the local and remote
// identities of sa (sa among them when it is indexed). Caller holds
// sa.mu; the identities of indexed SAs are set before they are indexed
// and never change, so identMu orders their reads.
func (e *Engine) sameIdentity(sa *ikeSA) []*ikeSA {
	if !sa.identIndexed {
		return nil
	}
	e.identMu.Lock()
	defer e.identMu.Unlock()
	var out []*ikeSA
	for x := e.byIdentity[sa.identHash]; x != nil; x = x.identNext {
		if x == sa || x.localID.equal(sa.localID) && x.remoteID.equal(sa.remoteID) {
			out = append(out, x)
		}
	}
	return out
}

// markUp counts sa among its connection's established IKE SAs, once.
// Caller holds sa.mu, or sa is not yet published.
func (sa *ikeSA) markUp() {
	if sa.countedUp || sa.conn == nil {
		return
	}
	sa.countedUp = true
	e := sa.eng
	e.upMu.Lock()
	e.up[sa.conn.Name]++
	e.upMu.Unlock()
}

// markDown takes sa out of that count when it stops being established.
// Caller holds sa.mu.
func (sa *ikeSA) markDown() {
	if !sa.countedUp {
		return
	}
	sa.countedUp = false
	e := sa.eng
	e.upMu.Lock()
	if e.up[sa.conn.Name]--; e.up[sa.conn.Name] <= 0 {
		delete(e.up, sa.conn.Name)
	}
	e.upMu.Unlock()
}

// hasOtherSA reports whether another established IKE SA of sa's connection
// exists: then this one is not the initial contact (§2.4). It reads the
// engine's count, never another SA. Caller holds sa.mu.
func (e *Engine) hasOtherSA(sa *ikeSA) bool {
	if sa.conn == nil {
		return false
	}
	e.upMu.Lock()
	n := e.up[sa.conn.Name]
	e.upMu.Unlock()
	if sa.countedUp {
		n--
	}
	return n > 0
}

// bindFor picks the bind to initiate from: one on the connection's local
// address (or any) in the remote's address family.
func (e *Engine) bindFor(c *Connection) (transport.Bind, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
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

// snapshotSAs returns all SAs in a stable order.
func (e *Engine) allSAs() []*ikeSA {
	return e.sas.all()
}

// Close stops reading, without sending anything; see Shutdown.
func (e *Engine) Close() error { return e.close("engine closed") }

// close stops the engine and destroys every SA, logging reason.
func (e *Engine) close(reason string) error {
	e.closeOnce.Do(func() {
		close(e.closing)
		e.mu.Lock()
		binds := e.binds
		e.mu.Unlock()
		for _, b := range binds {
			_ = b.Close()
		}
	})
	e.wg.Wait()
	for _, sa := range e.allSAs() {
		sa.destroy(reason)
	}
	e.releaseHolds()
	return nil
}

func spiHex(spi uint64) string { return fmt.Sprintf("%016x", spi) }
