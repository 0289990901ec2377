// Package agent runs the assigned IPsec policy, as Windows' IPsec Policy
// Agent does: it turns traffic that a negotiate rule covers into IKE
// negotiations with the peer, falls back to clear with peers that never
// answer IKE (when the rule allows), keeps the data plane's nftables rules
// in step with the policy and the SAs, answers "is my traffic to this host
// encrypted?", and on a reload keeps the SAs the new policy still allows.
//
// Each negotiate rule negotiates with its key module: IKEv2 (the ike
// engine), IKEv1 (the ikev1 engine: main mode and quick mode from the
// policy's key exchange settings and the rule's security methods) or auto
// (IKEv2 first, IKEv1 when the peer does not speak it: package ikeauto,
// as configured auto connections do), and answers as responder with the
// same versions.
//
// The agent is an ike.Observer: the IKEv2 engine tells it of acquires (it
// reads the data plane's events for both), of Child SA policies and of
// failed handshakes; IKEv1Observer is its ikev1.Observer, for the IPsec
// SAs' policies and failed Main Modes of the IKEv1 engine.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/ikeauto"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/policy"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// Engine is what the agent needs of the IKEv2 engine.
type Engine interface {
	InitiateWith(ctx context.Context, c *ike.Connection, o ike.InitiateOptions) (ike.SAInfo, error)
	SAs() []ike.SAInfo
	Terminate(ctx context.Context, target string) (int, error)
}

// EngineV1 is what the agent needs of the IKEv1 engine.
type EngineV1 interface {
	InitiateWith(ctx context.Context, c *ikev1.Connection, o ikev1.InitiateOptions) (ikev1.SAInfo, error)
	SAs() []ikev1.SAInfo
	Terminate(ctx context.Context, target string) (int, error)
}

// Enforcer is the data plane's policy enforcement: nftables with the
// userspace data plane (*nft.Table), XFRM policies with the kernel's
// (*xfrmpolicy.Enforcer). nil means none (the memory backend: decisions
// are made, nothing is enforced).
type Enforcer interface {
	// Create enforces p, replacing whatever a previous run left.
	Create(ctx context.Context, p *policy.Policy) error
	// Replace swaps the enforced policy for p (a reload).
	Replace(ctx context.Context, p *policy.Policy) error
	// Delete removes the enforcement.
	Delete(ctx context.Context) error
	// AddSecured and RemoveSecured steer an established SA's outbound
	// selector into the data plane, where the data plane needs it.
	AddSecured(ctx context.Context, sel sadb.Selector) error
	RemoveSecured(ctx context.Context, sel sadb.Selector) error
	// AllowClear lets traffic with peer flow in clear for ttl (a fallback);
	// EndClear ends that early.
	AllowClear(ctx context.Context, peer netip.Addr, ttl time.Duration) error
	EndClear(ctx context.Context, peer netip.Addr) error
	// CounterValues reads the outcome counters (nft.Counters names), if
	// the enforcement counts packets.
	CounterValues(ctx context.Context) (map[string]uint64, error)
}

// Config configures an Agent.
type Config struct {
	// Policy is the assigned policy (validated).
	Policy *policy.Policy
	// Auth are the authentication methods the policy's rules name.
	Auth map[string]auth.Method
	// Template holds the settings of the IKEv2 connections the agent
	// makes (proposals for IKE, rekey and DPD times, mode); its name,
	// addresses, auth, ESP proposals and selectors are the agent's, and
	// the policy's key exchange settings (main mode methods, lifetime)
	// replace its IKE proposals and lifetime when they are set.
	Template ike.Connection
	// TemplateV1 is the same for IKEv1 connections (main mode proposals,
	// lifetimes, DPD, mode).
	TemplateV1 ikev1.Connection
	// AutoWait is how long an auto rule waits for an IKEv2 answer before
	// it tries IKEv1 (ikeauto.Wait of the engine's retransmission
	// settings); default ikeauto.Wait(2s, 1.8).
	AutoWait time.Duration
	// Enforcer enforces the policy in the data plane.
	Enforcer Enforcer
	// Traps are installed so that marked traffic without an SA raises an
	// acquire; nil with no data plane.
	Traps sadb.PolicyBackend
	// ClearTTL is how long a fallback to clear lasts before the next
	// packet negotiates again; default 5 minutes (Windows' soft SA).
	ClearTTL time.Duration
	// RetryAfter is how long a peer whose negotiation failed (it answered
	// but, e.g., has no authentication method in common) is left alone;
	// default 30s. Its traffic stays unsecured meanwhile: dropped where
	// security is required.
	RetryAfter time.Duration
	// LocalAddrs lists this host's addresses (for "me").
	LocalAddrs func() []netip.Addr
	// Logger receives the agent's log lines.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// State is where the traffic with one peer stands.
type State string

// Peer states.
const (
	Negotiating   State = "negotiating"
	Secured       State = "secured"
	ClearFallback State = "clear-fallback"
	Failed        State = "failed"
)

// peer is the agent's record of a peer it negotiated with.
type peer struct {
	addr   netip.Addr
	rule   string
	state  State
	since  time.Time
	until  time.Time // ClearFallback and Failed: when it ends
	reason string    // Failed: why
	// version is the IKE version the last negotiation ended in (or is
	// trying): "ikev2" or "ikev1".
	version string
}

// Agent runs the assigned policy.
type Agent struct {
	cfg Config
	log *slog.Logger
	ctx context.Context
	end context.CancelFunc
	eng Engine      // set by Start
	v1  EngineV1    // set by SetIKEv1 before Start; nil without an IKEv1 engine
	ops chan func() // enforcement changes, in order, off the engine's goroutines
	wg  sync.WaitGroup

	mu    sync.Mutex
	pol   *policy.Policy
	auth  map[string]auth.Method
	peers map[netip.Addr]*peer
	flows map[flowKey]uint64
}

// flowKey counts negotiations by outcome and the IKE version they ended
// in.
type flowKey struct{ outcome, version string }

// Flow outcomes counted by Stats.
const (
	FlowSecured       = "secured"
	FlowClearFallback = "clear_fallback"
	FlowAuthMismatch  = "auth_mismatch"
	// FlowPQRequired is a negotiation refused by require_pq: the peer has
	// no post-quantum key exchange (docs/postquantum.md).
	FlowPQRequired = "pq_required"
	FlowFailed     = "failed"
)

// New returns an agent; Start applies the policy.
func New(cfg Config) (*Agent, error) {
	if cfg.Policy == nil {
		return nil, errors.New("agent: no policy")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.ClearTTL == 0 {
		cfg.ClearTTL = 5 * time.Minute
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LocalAddrs == nil {
		cfg.LocalAddrs = func() []netip.Addr { return nil }
	}
	if cfg.AutoWait == 0 {
		cfg.AutoWait = ikeauto.Wait(2*time.Second, 1.8)
	}
	ctx, end := context.WithCancel(context.Background())
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "policy"), ctx: ctx, end: end,
		ops: make(chan func(), 1024), pol: cfg.Policy, auth: cfg.Auth, peers: map[netip.Addr]*peer{},
		flows: map[flowKey]uint64{}}
	return a, nil
}

// trapSelectors cover everything: only traffic the enforcer marked
// reaches the data plane, and all of it without an SA needs an acquire.
var trapSelectors = []sadb.Selector{
	{Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("0.0.0.0/0")},
	{Src: netip.MustParsePrefix("::/0"), Dst: netip.MustParsePrefix("::/0")},
}

// trapPriority puts the traps after every Child SA's policies (priority 0).
const trapPriority = 1 << 20

// SetIKEv1 gives the agent the IKEv1 engine, for rules whose key module
// is ikev1 or auto. It must be called before Start; without it such rules
// negotiate nothing and say why.
func (a *Agent) SetIKEv1(e EngineV1) { a.v1 = e }

// Start enforces the policy and starts serving acquires with eng, the
// IKEv2 engine (and the IKEv1 engine given to SetIKEv1).
func (a *Agent) Start(eng Engine) error {
	a.eng = eng
	if e := a.cfg.Enforcer; e != nil {
		if err := e.Create(a.ctx, a.pol); err != nil {
			return fmt.Errorf("policy %s: %w", a.pol.Name, err)
		}
	}
	if a.cfg.Traps != nil {
		for _, sel := range trapSelectors {
			p := &sadb.Policy{Selector: sel, Direction: sadb.Out, Action: sadb.Protect, Level: sadb.Required, Priority: trapPriority, Protocol: sadb.ESP, Mode: a.cfg.Template.Mode}
			if err := a.cfg.Traps.AddPolicy(p); err != nil {
				return fmt.Errorf("policy %s: trap policy %s: %w", a.pol.Name, sel, err)
			}
		}
	}
	a.wg.Add(1)
	go a.run()
	a.log.Info("policy assigned", "policy", a.pol.Name, "rules", len(a.pol.Rules), "default_response", a.pol.DefaultResponse.Active)
	return nil
}

func (a *Agent) run() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case op := <-a.ops:
			op()
		}
	}
}

// enqueue runs op on the agent's goroutine, in order. Ops use their own
// contexts (nft calls are bounded), so that Stop does not cut one short
// halfway.
func (a *Agent) enqueue(op func()) {
	select {
	case a.ops <- op:
	default:
		a.log.Warn("policy agent queue full: a data-plane change is lost")
	}
}

// Stop removes the enforcement (the table) and the traps.
func (a *Agent) Stop(ctx context.Context) error {
	a.end()
	a.wg.Wait()
	var errs []error
	if a.cfg.Traps != nil {
		for _, sel := range trapSelectors {
			if err := a.cfg.Traps.DeletePolicy(sadb.PolicyID{Selector: sel, Direction: sadb.Out}); err != nil && !errors.Is(err, sadb.ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	if e := a.cfg.Enforcer; e != nil {
		errs = append(errs, e.Delete(ctx))
	}
	return errors.Join(errs...)
}

// Policy returns the assigned policy.
func (a *Agent) Policy() *policy.Policy {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pol
}

func (a *Agent) isLocal(ip netip.Addr) bool {
	return slices.Contains(a.cfg.LocalAddrs(), ip.Unmap())
}

// Connections returns the IKEv2 responder's connections for the policy:
// one per negotiate rule whose key module speaks IKEv2 and authentication
// method, most specific rule first, then the default response rule's (if
// the policy's key module speaks IKEv2); any peer may use them. The daemon
// puts them next to its configured connections.
func (a *Agent) Connections() []*ike.Connection {
	var out []*ike.Connection
	a.responders(policy.VersionIKEv2, func(p *policy.Policy, r *policy.Rule, name string, m auth.Method, s ruleSettings) {
		c := a.connection(p, name, s)
		c.Auth, c.LocalID = m, localIdentity(m)
		if r != nil && r.Tunnel.IsValid() {
			// A tunnel rule answers only its tunnel endpoint, for the
			// filters' addresses.
			c.Remote = netip.AddrPortFrom(r.Tunnel, policy.IKEPort)
			c.LocalTS, c.RemoteTS = tunnelSelectors(r)
			c.Mode = ike.ModeTunnel
		}
		out = append(out, c)
	})
	return out
}

// ruleSettings are what a rule (or the default response rule) says of
// the SAs it negotiates.
type ruleSettings struct {
	methods   []policy.SecurityMethod
	pfs       bool
	requirePQ bool // IKEv2 only: IKEv1 has no post-quantum key exchange
}

// responders calls fn for each responder connection of the assigned
// policy that speaks version: per negotiate rule (most specific first)
// and authentication method this host has, then the default response
// rule's (r nil). name is the connection's name. A rule with require_pq
// has no IKEv1 responder: IKEv1 has no post-quantum key exchange.
func (a *Agent) responders(version string, fn func(p *policy.Policy, r *policy.Rule, name string, m auth.Method, s ruleSettings)) {
	a.mu.Lock()
	p, have := a.pol, a.auth
	a.mu.Unlock()
	each := func(r *policy.Rule, rule string, auths []string, s ruleSettings) {
		if s.requirePQ && version == policy.VersionIKEv1 {
			return
		}
		for _, n := range auths {
			if m, ok := have[n]; ok {
				fn(p, r, fmt.Sprintf("policy/%s/%s", rule, n), m, s)
			}
		}
	}
	seen := map[*policy.Rule]bool{}
	for _, d := range p.Ordered() {
		r := d.Rule
		if r.Action != policy.Negotiate || seen[r] || !p.RuleKeyModule(r).Speaks(version) {
			continue
		}
		seen[r] = true
		each(r, r.Name, r.Auth, ruleSettings{methods: r.Methods, pfs: r.PFS, requirePQ: r.RequirePQ})
	}
	if d := p.DefaultResponse; d.Active && p.DefaultResponseKeyModule().Speaks(version) {
		each(nil, "default-response", d.Auth, ruleSettings{methods: d.Methods, requirePQ: d.RequirePQ})
	}
}

// PQIKEProposals are the IKE proposals a rule with require_pq offers
// before the others: X25519 with ML-KEM-768, and ECP-384 with
// ML-KEM-1024 (draft-ietf-ipsecme-ikev2-mlkem's hybrid pairings at two
// security levels).
var PQIKEProposals = []string{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024"}

// connection makes an IKEv2 connection from the template with the
// policy's main mode settings and the rule's security methods; with
// require_pq it offers PQIKEProposals first and accepts only a
// post-quantum IKE SA.
func (a *Agent) connection(p *policy.Policy, name string, s ruleSettings) *ike.Connection {
	c := a.cfg.Template
	c.Name = name
	c.Initiate = false
	if props := parseEach(p.KeyExchange.Methods, transform.ParseIKEProposal); len(props) > 0 {
		c.IKEProposals = props
	}
	if s.requirePQ {
		c.IKEProposals = append(parseEach(PQIKEProposals, transform.ParseIKEProposal), c.IKEProposals...)
		c.RequirePQ = true
	}
	if p.KeyExchange.Lifetime > 0 {
		c.IKERekeyTime = p.KeyExchange.Lifetime
	}
	c.ESPProposals = espProposals(s.methods, s.pfs, c.IKEProposals, transform.ParseESPProposal)
	if m, ok := firstFit(s.methods, transform.ParseESPProposal); ok {
		if m.Lifetime > 0 {
			c.RekeyTime = m.Lifetime
		}
		if m.LifetimeBytes > 0 {
			c.RekeyBytes = m.LifetimeBytes
		}
	}
	return &c
}

// firstFit is the first security method parse accepts: its lifetimes
// apply to the SAs of that version, whichever method the peer picks.
func firstFit(methods []policy.SecurityMethod, parse func(string) (transform.Proposal, error)) (policy.SecurityMethod, bool) {
	for _, m := range methods {
		if _, err := parse(m.Proposal); err == nil {
			return m, true
		}
	}
	return policy.SecurityMethod{}, false
}

// parseEach parses the proposals parse accepts and leaves out the others
// (a main mode method of the other IKE version).
func parseEach(ss []string, parse func(string) (transform.Proposal, error)) []transform.Proposal {
	var out []transform.Proposal
	for _, s := range ss {
		if p, err := parse(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// espProposals parses the security methods with parse (IKEv2's or
// IKEv1's): those of the other version are left out (config checked that
// each version of a rule has one). With PFS each gets the first IKE
// proposal's key exchanges: its DH group, and its additional key
// exchanges (IKEv2's, run in IKE_FOLLOWUP_KE).
func espProposals(methods []policy.SecurityMethod, pfs bool, ikeProps []transform.Proposal, parse func(string) (transform.Proposal, error)) []transform.Proposal {
	var out []transform.Proposal
	for _, m := range methods {
		p, err := parse(m.Proposal)
		if err != nil {
			continue
		}
		if pfs && len(p.DH) == 0 && len(ikeProps) > 0 && len(ikeProps[0].DH) > 0 {
			p.DH = []uint16{ikeProps[0].DH[0]}
			p.AddKE = ikeProps[0].AddKE
		}
		out = append(out, p)
	}
	return out
}

// chooseAuth picks the first of the rule's methods this host has
// credentials for; a.mu is held.
func (a *Agent) chooseAuth(names []string) (string, auth.Method, error) {
	var why []string
	for _, n := range names {
		m, ok := a.auth[n]
		if !ok {
			why = append(why, n+": not configured")
			continue
		}
		if ci, ok := m.(interface{ CanInitiate() error }); ok {
			if err := ci.CanInitiate(); err != nil {
				why = append(why, n+": "+err.Error())
				continue
			}
		}
		return n, m, nil
	}
	return "", nil, fmt.Errorf("no authentication method to initiate with (%s)", strings.Join(why, "; "))
}

// localIdentity is the identity a method needs this side to send (a
// Kerberos principal's); the zero Identity, i.e. the IP address, otherwise.
func localIdentity(m auth.Method) ike.Identity {
	li, ok := m.(auth.PrincipalIdentity)
	if !ok {
		return ike.Identity{}
	}
	id, err := ike.ParseIdentity(li.PrincipalIdentity())
	if err != nil {
		return ike.Identity{}
	}
	return id
}

// tunnelSelectors are the traffic selectors a tunnel rule protects: for
// each filter, its source (this side; "me" leaves the local selectors to
// the IKE address) and its destination (the far side of the tunnel).
func tunnelSelectors(r *policy.Rule) (local, remote []wire.TrafficSelector) {
	add := func(list []wire.TrafficSelector, a policy.Address, proto uint8, port uint16) []wire.TrafficSelector {
		for _, p := range a.Prefixes() {
			ts := hostTS(p.Addr(), proto, port)
			ts.EndAddr = sadb.LastAddr(p)
			list = append(list, ts)
		}
		return list
	}
	for _, f := range r.Filters.Filters {
		local = add(local, f.Src, f.Protocol, f.SrcPort)
		remote = add(remote, f.Dst, f.Protocol, f.DstPort)
	}
	return local, remote
}

// hostTS is a one-address selector with the filter's protocol and port.
func hostTS(a netip.Addr, proto uint8, port uint16) wire.TrafficSelector {
	ts := ike.HostSelector(a)
	ts.IPProtocol = proto
	if port != 0 {
		ts.StartPort, ts.EndPort = port, port
	}
	return ts
}
