//go:build linux

package userspace

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iked/iked/ipsec"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/userspace/esp"
	"github.com/iked/iked/transport"
	"golang.org/x/sys/unix"
)

// Backend is the userspace data plane; it implements sadb.PolicyBackend.
type Backend struct {
	cfg    Config
	log    Logger
	tun    *tun
	nl     *rtnl
	udp    *udpSock
	raw    *rawSocks // nil without Config.RawIPv4
	ike    *ikeBind
	events chan sadb.Event
	kick   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
	st     stats
	ipID   atomic.Uint32

	tables atomic.Pointer[tables]

	mu        sync.Mutex // guards what follows and table rebuilds
	closed    bool
	sas       map[sadb.ID]*sa
	policies  map[sadb.PolicyID]*policy
	routes    map[netip.Prefix]int // reference counts of routes into the TUN
	addresses []netip.Prefix
	steered   []byte // address families with a fwmark rule (Config.SteerMark)

	held held // packets waiting for an acquire's SA
}

// Logger is the subset of *slog.Logger the backend uses.
type Logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

// tables is an immutable snapshot of what the packet path looks up.
type tables struct {
	in  map[uint64]*sa // by protocol<<32 | SPI
	out []*sa          // outbound SAs, oldest first
	pol []*policy      // outbound policies by priority
}

func inKey(p sadb.Protocol, spi uint32) uint64 { return uint64(p)<<32 | uint64(spi) }

type policy struct {
	p      sadb.Policy
	routes []netip.Prefix

	acqMu   sync.Mutex
	lastAcq map[netip.Addr]time.Time // per destination: the last Acquire
}

// sa is one installed SA.
type sa struct {
	cfg       sadb.SA // without keys
	id        sadb.ID
	encap     bool
	peer      sockaddr // outbound destination
	routes    []netip.Prefix
	installed time.Time

	mu  sync.Mutex // serialises the transform
	esp *esp.SA
	ah  *esp.AH

	bytes, packets         atomic.Uint64
	replay, auth, polDrops atomic.Uint64
	dead                   atomic.Bool // hard limit reached: no more packets
	softRaised, hardRaised bool        // owned by the expiry goroutine
}

// New creates the TUN device, brings it up with cfg.Addresses, opens the
// UDP socket (and raw sockets) and starts the packet path. All of them are
// created in the network namespace of the calling thread.
func New(cfg Config) (*Backend, error) {
	cfg.setDefaults()
	b := &Backend{
		cfg: cfg, log: cfg.Logger,
		events: make(chan sadb.Event, 256), kick: make(chan struct{}, 1), done: make(chan struct{}),
		sas: map[sadb.ID]*sa{}, policies: map[sadb.PolicyID]*policy{}, routes: map[netip.Prefix]int{},
	}
	b.tables.Store(&tables{in: map[uint64]*sa{}})
	var err error
	fail := func(e error) (*Backend, error) {
		b.release()
		return nil, e
	}
	if b.nl, err = openRTNL(); err != nil {
		return fail(err)
	}
	if b.tun, err = openTUN(cfg.TUN, !cfg.NoOffload); err != nil {
		return fail(err)
	}
	if err := b.nl.prepareLink(b.tun.index); err != nil {
		return fail(fmt.Errorf("tun %s: %w", b.tun.name, err))
	}
	if err := b.nl.linkUp(b.tun.index, cfg.MTU); err != nil {
		return fail(fmt.Errorf("tun %s up, mtu %d: %w", b.tun.name, cfg.MTU, err))
	}
	for _, p := range cfg.Addresses {
		if err := b.AddAddress(p); err != nil {
			return fail(err)
		}
	}
	if err := b.steer(); err != nil {
		return fail(err)
	}
	if b.udp, err = listenUDP(cfg.Listen, !cfg.NoOffload); err != nil {
		return fail(err)
	}
	if cfg.RawIPv4 {
		if b.raw, err = openRaw(); err != nil {
			return fail(err)
		}
	}
	b.ike = newIKEBind(b)
	b.wg.Add(3)
	go b.outbound()
	go b.inboundUDP()
	go b.expiry()
	if b.raw != nil {
		b.wg.Add(2)
		go b.inboundRaw(b.raw.esp, sadb.ESP)
		go b.inboundRaw(b.raw.ah, sadb.AH)
	}
	return b, nil
}

// steer installs the fwmark rules and routes of Config.SteerMark.
func (b *Backend) steer() error {
	if b.cfg.SteerMark == 0 || b.cfg.SteerTable == 0 {
		return nil
	}
	for _, fam := range []byte{unix.AF_INET, unix.AF_INET6} {
		if err := b.nl.defaultRoute(true, fam, b.cfg.SteerTable, b.tun.index); err != nil {
			return fmt.Errorf("default route dev %s table %d: %w", b.tun.name, b.cfg.SteerTable, err)
		}
		// A rule left by a daemon that did not stop cleanly is replaced.
		_ = b.nl.steerRule(false, fam, b.cfg.SteerMark, b.cfg.SteerTable)
		if err := b.nl.steerRule(true, fam, b.cfg.SteerMark, b.cfg.SteerTable); err != nil {
			return fmt.Errorf("rule fwmark %#x lookup %d: %w", b.cfg.SteerMark, b.cfg.SteerTable, err)
		}
		b.steered = append(b.steered, fam)
	}
	return nil
}

func (b *Backend) release() {
	for _, fam := range b.steered {
		if err := b.nl.steerRule(false, fam, b.cfg.SteerMark, b.cfg.SteerTable); err != nil {
			b.log.Warn("removing fwmark rule", "mark", b.cfg.SteerMark, "err", err)
		}
	}
	b.steered = nil
	if b.raw != nil {
		b.raw.close()
	}
	if b.udp != nil {
		_ = b.udp.close()
	}
	if b.tun != nil {
		_ = b.tun.close() // the kernel removes the device, its addresses and routes
	}
	if b.nl != nil {
		_ = b.nl.close()
	}
}

// Name implements sadb.Backend.
func (*Backend) Name() string { return "userspace" }

// TUNName returns the name of the TUN device.
func (b *Backend) TUNName() string { return b.tun.name }

// Offloads names the offloads in use, for the log: "tso" (the TUN device
// hands over TCP super-segments, cut here; received TCP segments are
// joined before they are written to it), "udp-gso" and "udp-gro".
func (b *Backend) Offloads() []string {
	var o []string
	if b.tun.tso {
		o = append(o, "tso")
	}
	if b.udp.gso {
		o = append(o, "udp-gso")
	}
	if b.udp.gro {
		o = append(o, "udp-gro")
	}
	return o
}

// LocalAddr returns the address of the shared UDP socket.
func (b *Backend) LocalAddr() netip.AddrPort { return b.udp.local }

// IKEBind returns the bind through which the IKE engine receives the IKE
// messages arriving on the shared UDP socket, with the non-ESP marker
// stripped, and sends its own, with the marker added. Add it to the engine
// (Engine.AddBind) instead of listening on the NAT-T port; closing it does
// not close the socket. Every call returns the same bind.
func (b *Backend) IKEBind() transport.Bind { return b.ike }

// RequiresUDPEncap is true: without Config.RawIPv4 only ESP-in-UDP SAs can
// be installed, so the engine must float to the NAT-T port and encapsulate
// even without a NAT (strongSwan's kernel-libipsec does the same).
func (b *Backend) RequiresUDPEncap() bool { return b.raw == nil }

// Stats returns the backend's counters.
func (b *Backend) Stats() Stats { return b.st.snapshot() }

// DataPlaneStats implements sadb.StatsReporter.
func (b *Backend) DataPlaneStats() sadb.DataPlaneStats { return b.Stats().dataPlaneStats() }

// SAStats returns an SA's counters, drops included.
func (b *Backend) SAStats(id sadb.ID) (SAStats, error) {
	b.mu.Lock()
	s, ok := b.sas[id]
	b.mu.Unlock()
	if !ok {
		return SAStats{}, fmt.Errorf("userspace: %s %08x: %w", id.Protocol, id.SPI, sadb.ErrNotFound)
	}
	return SAStats{Bytes: s.bytes.Load(), Packets: s.packets.Load(), Replay: s.replay.Load(), Auth: s.auth.Load(), PolicyDrops: s.polDrops.Load()}, nil
}

// Events implements sadb.PolicyBackend. The channel is closed by Close.
func (b *Backend) Events() <-chan sadb.Event { return b.events }

// AddAddress assigns an address (an inner address, a virtual IP) to the TUN device.
func (b *Backend) AddAddress(p netip.Prefix) error {
	if err := b.nl.addr(true, p, b.tun.index); err != nil {
		return fmt.Errorf("userspace: address %s on %s: %w", p, b.tun.name, err)
	}
	b.mu.Lock()
	b.addresses = append(b.addresses, p)
	b.mu.Unlock()
	return nil
}

// DeleteAddress removes an address from the TUN device.
func (b *Backend) DeleteAddress(p netip.Prefix) error {
	if err := b.nl.addr(false, p, b.tun.index); err != nil {
		return fmt.Errorf("userspace: address %s on %s: %w", p, b.tun.name, err)
	}
	return nil
}

// AddSA implements sadb.Backend. Outbound SAs add routes into the TUN for
// their remote traffic selectors, less the peer's address.
func (b *Backend) AddSA(in *sadb.SA) error {
	s, err := b.newSA(in)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("userspace: backend closed")
	}
	if _, dup := b.sas[s.id]; dup {
		return fmt.Errorf("userspace: SA %s %08x to %s exists", in.Protocol, in.SPI, in.Dst)
	}
	if in.Inbound {
		if _, dup := b.tables.Load().in[inKey(in.Protocol, in.SPI)]; dup {
			return fmt.Errorf("userspace: inbound %s SPI %08x is in use", in.Protocol, in.SPI)
		}
	} else {
		if s.routes, err = routesFor(in.RemoteTS, in.Dst); err != nil {
			return fmt.Errorf("userspace: SA %08x: %w", in.SPI, err)
		}
		if err := b.addRoutes(s.routes); err != nil {
			return fmt.Errorf("userspace: SA %08x: %w", in.SPI, err)
		}
		if n := len(s.routes); len(in.RemoteTS) > 0 && routesCover(in.RemoteTS, in.Dst) {
			b.log.Info("remote traffic selector covers the peer; its address keeps its route outside the tunnel",
				"spi", fmt.Sprintf("%08x", in.SPI), "peer", in.Dst, "routes", n)
		}
	}
	b.sas[s.id] = s
	b.rebuild()
	if !in.Inbound {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.releaseHeld()
		}()
	}
	return nil
}

func routesCover(ts []ipsec.TrafficSelector, x netip.Addr) bool {
	x = x.Unmap()
	for _, s := range ts {
		if s.StartAddr.Unmap().Is4() == x.Is4() && !x.Less(s.StartAddr.Unmap()) && !s.EndAddr.Unmap().Less(x) {
			return true
		}
	}
	return false
}

func (b *Backend) newSA(in *sadb.SA) (*sa, error) {
	if in.Mode != sadb.Tunnel {
		return nil, fmt.Errorf("userspace: SA %08x: %s mode is not supported, only tunnel mode", in.SPI, in.Mode)
	}
	s := &sa{cfg: *in, id: in.ID(), installed: in.Installed}
	s.cfg.EncrKey, s.cfg.IntegKey = nil, nil
	s.cfg.LocalTS, s.cfg.RemoteTS = unmapTS(in.LocalTS), unmapTS(in.RemoteTS)
	if s.installed.IsZero() {
		s.installed = time.Now()
	}
	s.encap = in.EncapSrcPort != 0 || in.EncapDstPort != 0
	window := in.ReplayWindow
	if window == 0 {
		window = b.cfg.ReplayWindow
	}
	ec := esp.Config{SPI: in.SPI, EncrID: in.EncrID, EncrKeyBits: in.EncrKeyBits, EncrKey: in.EncrKey,
		IntegID: in.IntegID, IntegKey: in.IntegKey, ESN: in.ESN, ReplayWindow: window}
	var err error
	switch in.Protocol {
	case sadb.ESP:
		s.esp, err = esp.New(ec)
	case sadb.AH:
		if s.encap {
			return nil, fmt.Errorf("userspace: SA %08x: AH cannot be UDP-encapsulated", in.SPI)
		}
		s.ah, err = esp.NewAH(ec)
	default:
		return nil, fmt.Errorf("userspace: SA %08x: protocol %s", in.SPI, in.Protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("userspace: SA %08x: %w", in.SPI, err)
	}
	if !s.encap {
		if b.raw == nil {
			return nil, fmt.Errorf("userspace: SA %08x: %s without UDP encapsulation needs raw sockets (Config.RawIPv4); force NAT-T encapsulation", in.SPI, in.Protocol)
		}
		if !in.Src.Unmap().Is4() || !in.Dst.Unmap().Is4() {
			return nil, fmt.Errorf("userspace: SA %08x: %s without UDP encapsulation is IPv4 only", in.SPI, in.Protocol)
		}
	}
	if !in.Inbound {
		port := in.EncapDstPort
		if !s.encap {
			port = 0
		}
		if s.peer, err = b.udp.sockaddrFor(netip.AddrPortFrom(in.Dst.Unmap(), port), s.encap); err != nil {
			return nil, fmt.Errorf("userspace: SA %08x: %w", in.SPI, err)
		}
	}
	return s, nil
}

func unmapTS(ts []ipsec.TrafficSelector) []ipsec.TrafficSelector {
	out := slices.Clone(ts)
	for i := range out {
		out[i].StartAddr, out[i].EndAddr = out[i].StartAddr.Unmap(), out[i].EndAddr.Unmap()
	}
	return out
}

// DeleteSA implements sadb.Backend.
func (b *Backend) DeleteSA(id sadb.ID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deleteLocked(id)
}

func (b *Backend) deleteLocked(id sadb.ID) error {
	s, ok := b.sas[id]
	if !ok {
		return fmt.Errorf("userspace: %s %08x: %w", id.Protocol, id.SPI, sadb.ErrNotFound)
	}
	s.dead.Store(true)
	delete(b.sas, id)
	b.rebuild()
	b.dropRoutes(s.routes)
	return nil
}

// Counters implements sadb.Backend: inner octets and packets.
func (b *Backend) Counters(id sadb.ID) (sadb.Counters, error) {
	st, err := b.SAStats(id)
	return sadb.Counters{Bytes: st.Bytes, Packets: st.Packets}, err
}

// AddPolicy implements sadb.PolicyBackend. Outbound Protect policies route
// their destination into the TUN device, less the tunnel's peer; inbound
// and forward policies are recorded, the SA's selectors being what inbound
// packets are checked against.
func (b *Backend) AddPolicy(p *sadb.Policy) error {
	np := &policy{p: *p}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("userspace: backend closed")
	}
	// A trap policy (ReqID 0: no Child SA yet) routes nothing: the policy
	// layer steers its traffic here by mark (Config.SteerMark), so that a
	// catch-all selector does not capture IKE or clear traffic.
	if p.Direction == sadb.Out && p.Action == sadb.Protect && p.ReqID != 0 {
		dst := p.Selector.Dst.Masked()
		ts := []ipsec.TrafficSelector{{StartAddr: dst.Addr(), EndAddr: lastAddr(dst), EndPort: 0xffff}}
		var err error
		if np.routes, err = routesFor(ts, p.TunnelDst); err != nil {
			return fmt.Errorf("userspace: policy %s: %w", p.Selector, err)
		}
		if err := b.addRoutes(np.routes); err != nil {
			return fmt.Errorf("userspace: policy %s: %w", p.Selector, err)
		}
	}
	if old, ok := b.policies[p.ID()]; ok {
		b.dropRoutes(old.routes)
	}
	b.policies[p.ID()] = np
	b.rebuild()
	return nil
}

// DeletePolicy implements sadb.PolicyBackend.
func (b *Backend) DeletePolicy(id sadb.PolicyID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.policies[id]
	if !ok {
		return fmt.Errorf("userspace: policy %s %s: %w", id.Direction, id.Selector, sadb.ErrNotFound)
	}
	delete(b.policies, id)
	b.rebuild()
	b.dropRoutes(p.routes)
	return nil
}

// addRoutes takes a reference on each route, adding those that are new;
// on failure it releases what it took.
func (b *Backend) addRoutes(ps []netip.Prefix) error {
	for i, p := range ps {
		if b.routes[p] == 0 {
			if err := b.nl.route(true, p, b.tun.index); err != nil {
				b.dropRoutes(ps[:i])
				return fmt.Errorf("route %s dev %s: %w", p, b.tun.name, err)
			}
		}
		b.routes[p]++
	}
	return nil
}

func (b *Backend) dropRoutes(ps []netip.Prefix) {
	for _, p := range ps {
		if b.routes[p]--; b.routes[p] <= 0 {
			delete(b.routes, p)
			if err := b.nl.route(false, p, b.tun.index); err != nil && !b.closed {
				b.log.Warn("removing route", "prefix", p, "dev", b.tun.name, "err", err)
			}
		}
	}
}

// rebuild publishes a new snapshot of the tables; b.mu is held.
func (b *Backend) rebuild() {
	t := &tables{in: make(map[uint64]*sa, len(b.sas))}
	for _, s := range b.sas {
		if s.cfg.Inbound {
			t.in[inKey(s.cfg.Protocol, s.cfg.SPI)] = s
		} else {
			t.out = append(t.out, s)
		}
	}
	slices.SortStableFunc(t.out, func(x, y *sa) int { return x.installed.Compare(y.installed) })
	for _, p := range b.policies {
		if p.p.Direction == sadb.Out {
			t.pol = append(t.pol, p)
		}
	}
	slices.SortStableFunc(t.pol, func(x, y *policy) int {
		if x.p.Priority != y.p.Priority {
			return int(int64(x.p.Priority) - int64(y.p.Priority))
		}
		// Equal priority: the more specific selector first.
		return (y.p.Selector.Src.Bits() + y.p.Selector.Dst.Bits()) - (x.p.Selector.Src.Bits() + x.p.Selector.Dst.Bits())
	})
	b.tables.Store(t)
}

// Close implements sadb.Backend: it stops the packet path, removes the TUN
// device (and with it its routes and addresses), closes the sockets and
// the Events channel.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for id, s := range b.sas {
		s.dead.Store(true)
		delete(b.sas, id)
	}
	b.policies = map[sadb.PolicyID]*policy{}
	b.routes = map[netip.Prefix]int{}
	b.rebuild()
	b.mu.Unlock()
	close(b.done)
	_ = b.ike.Close()
	b.release()
	b.wg.Wait()
	close(b.events)
	return nil
}

// emit delivers an event without blocking the packet path.
func (b *Backend) emit(ev sadb.Event) {
	select {
	case b.events <- ev:
	default:
		b.st.eventsDropped.Add(1)
	}
}

func (b *Backend) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// expiry raises soft and hard expire events, by time and by octets.
func (b *Backend) expiry() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.ExpireCheck)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		case <-b.kick:
		}
		now := time.Now()
		var evs []sadb.Event
		b.mu.Lock()
		for id, s := range b.sas {
			lt := s.cfg.Lifetime
			age := now.Sub(s.installed)
			n := s.bytes.Load()
			if !s.hardRaised && ((lt.HardBytes != 0 && n >= lt.HardBytes) || (lt.HardTime != 0 && age >= lt.HardTime)) {
				s.hardRaised = true
				_ = b.deleteLocked(id)
				evs = append(evs, sadb.Event{Kind: sadb.HardExpire, SA: id, ReqID: s.cfg.ReqID})
				continue
			}
			if !s.softRaised && ((lt.SoftBytes != 0 && n >= lt.SoftBytes) || (lt.SoftTime != 0 && age >= lt.SoftTime)) {
				s.softRaised = true
				evs = append(evs, sadb.Event{Kind: sadb.SoftExpire, SA: id, ReqID: s.cfg.ReqID})
			}
		}
		b.mu.Unlock()
		for _, ev := range evs {
			select {
			case b.events <- ev:
			case <-b.done:
				return
			}
		}
	}
}

// count adds a packet of n inner octets to s, and enforces byte lifetimes.
func (b *Backend) count(s *sa, n int) {
	s.packets.Add(1)
	total := s.bytes.Add(uint64(n))
	prev := total - uint64(n)
	lt := &s.cfg.Lifetime
	if lt.HardBytes != 0 && total >= lt.HardBytes {
		s.dead.Store(true)
		if prev < lt.HardBytes {
			b.poke()
		}
	} else if lt.SoftBytes != 0 && prev < lt.SoftBytes && total >= lt.SoftBytes {
		b.poke()
	}
}

// lookupOut picks the outbound SA for a flow: the first matching outbound
// policy decides (Protect: its ReqID's newest SA whose selectors match);
// without a policy, the newest SA whose selectors match. A nil SA with a
// non-nil policy means a drop by that policy.
func (t *tables) lookupOut(f *flow) (*sa, *policy) {
	for _, p := range t.pol {
		if !selMatch(&p.p.Selector, f) {
			continue
		}
		if p.p.Action != sadb.Protect {
			return nil, p
		}
		var best *sa
		for _, s := range t.out {
			if s.cfg.ReqID == p.p.ReqID && !s.dead.Load() && (len(s.cfg.RemoteTS) == 0 || flowInSA(s, f)) {
				best = s
			}
		}
		return best, p
	}
	var best *sa
	for _, s := range t.out {
		if !s.dead.Load() && flowInSA(s, f) {
			best = s
		}
	}
	return best, nil
}

// flowInSA: an outbound packet goes from the local to the remote selectors.
func flowInSA(s *sa, f *flow) bool {
	return tsMatch(s.cfg.LocalTS, f.src, f.proto, f.srcPort, f.opaque) &&
		tsMatch(s.cfg.RemoteTS, f.dst, f.proto, f.dstPort, f.opaque)
}

// acquire raises an Acquire for p, at most once per AcquireInterval and
// destination: one trap policy may cover many peers, and each must get
// its negotiation. This is the slow path (a packet without an SA), so a
// mutex is fine.
func (b *Backend) acquire(p *policy, f *flow) {
	now := time.Now()
	p.acqMu.Lock()
	if p.lastAcq == nil {
		p.lastAcq = map[netip.Addr]time.Time{}
	}
	if last, ok := p.lastAcq[f.dst]; ok && now.Sub(last) < b.cfg.AcquireInterval {
		p.acqMu.Unlock()
		return
	}
	if len(p.lastAcq) > maxAcquireMemory {
		for a, t := range p.lastAcq {
			if now.Sub(t) >= b.cfg.AcquireInterval {
				delete(p.lastAcq, a)
			}
		}
	}
	p.lastAcq[f.dst] = now
	p.acqMu.Unlock()
	b.st.acquires.Add(1)
	bits := f.src.BitLen()
	b.emit(sadb.Event{
		Kind: sadb.Acquire, Policy: p.p.ID(), ReqID: p.p.ReqID,
		Packet: sadb.Selector{Src: netip.PrefixFrom(f.src, bits), Dst: netip.PrefixFrom(f.dst, bits), Proto: f.proto, SrcPort: f.srcPort, DstPort: f.dstPort},
	})
}

// maxAcquireMemory bounds the destinations a policy remembers before the
// expired ones are swept.
const maxAcquireMemory = 4096

var _ sadb.PolicyBackend = (*Backend)(nil)

// ikeBind hands IKE messages from the shared socket to the engine.
type ikeBind struct {
	b    *Backend
	q    chan ikeMsg
	once sync.Once
	done chan struct{}
}

type ikeMsg struct {
	b    []byte
	from netip.AddrPort
}

func newIKEBind(b *Backend) *ikeBind {
	return &ikeBind{b: b, q: make(chan ikeMsg, 256), done: make(chan struct{})}
}

// deliver queues an IKE message (marker stripped), copying it.
func (k *ikeBind) deliver(msg []byte, from netip.AddrPort) {
	select {
	case k.q <- ikeMsg{b: slices.Clone(msg), from: from}:
		k.b.st.ikeReceived.Add(1)
	default:
		k.b.st.ikeDropped.Add(1)
	}
}

// ReadFrom implements transport.Bind.
func (k *ikeBind) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	select {
	case m := <-k.q:
		return copy(p, m.b), m.from, nil
	case <-k.done:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

// WriteTo implements transport.Bind, prefixing the non-ESP marker.
func (k *ikeBind) WriteTo(p []byte, addr netip.AddrPort) error {
	select {
	case <-k.done:
		return net.ErrClosed
	default:
	}
	buf := make([]byte, 4, 4+len(p))
	return k.b.udp.writeTo(append(buf, p...), addr)
}

// LocalAddr implements transport.Bind.
func (k *ikeBind) LocalAddr() netip.AddrPort { return k.b.udp.local }

// Close implements transport.Bind; the socket stays open for the data plane.
func (k *ikeBind) Close() error {
	k.once.Do(func() { close(k.done) })
	return nil
}

// SendKeepalive implements transport.NATTBind: the one-octet NAT
// keepalive of RFC 3948 §2.3, without the marker.
func (k *ikeBind) SendKeepalive(addr netip.AddrPort) error {
	return k.b.udp.writeTo([]byte{0xff}, addr)
}
