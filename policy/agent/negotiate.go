package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/ikeauto"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/policy"
	"github.com/iked/iked/sadb"
)

var _ ike.Observer = (*Agent)(nil)

// Acquire implements ike.Observer: outbound traffic reached the data plane
// without an SA. If a negotiate rule covers it, negotiate with its peer.
func (a *Agent) Acquire(ev sadb.Event) {
	pkt := policy.Packet{Src: ev.Packet.Src.Addr(), Dst: ev.Packet.Dst.Addr(), Protocol: ev.Packet.Proto,
		SrcPort: ev.Packet.SrcPort, DstPort: ev.Packet.DstPort}
	a.mu.Lock()
	pol := a.pol
	a.mu.Unlock()
	d := pol.Decide(pkt, func(ip netip.Addr) bool { return ip == pkt.Src || a.isLocal(ip) })
	if d.Rule == nil || d.Rule.Action != policy.Negotiate {
		a.log.Debug("acquire for traffic no negotiate rule covers", "packet", pkt.String())
		return
	}
	a.negotiate(pkt, d)
}

// negotiate starts IKE with the peer of pkt under rule d, with the rule's
// key module, unless a negotiation with it runs, its fallback to clear
// lasts, or it failed recently.
func (a *Agent) negotiate(pkt policy.Packet, d policy.Decision) {
	r := d.Rule
	dst := pkt.Dst
	if r.Tunnel.IsValid() {
		dst = r.Tunnel
	}
	now := a.cfg.Now()
	a.mu.Lock()
	pol := a.pol
	km := pol.RuleKeyModule(r)
	first := km.Versions()[0]
	if p, ok := a.peers[dst]; ok {
		switch {
		case p.state == Negotiating,
			p.state == ClearFallback && now.Before(p.until),
			p.state == Failed && now.Before(p.until):
			a.mu.Unlock()
			return
		}
	}
	authName, method, err := a.chooseAuth(r.Auth)
	if err == nil && r.RequirePQ && !km.Speaks(policy.VersionIKEv2) {
		// Config refuses this; a policy from elsewhere might not.
		err = fmt.Errorf("the rule requires a post-quantum key exchange (require_pq) and its key module %s has none", km)
	}
	if err == nil && km.Speaks(policy.VersionIKEv1) && a.v1 == nil && !r.RequirePQ {
		err = fmt.Errorf("the rule's key module is %s and this daemon runs no IKEv1 engine", km)
	}
	if err != nil {
		a.peers[dst] = &peer{addr: dst, rule: r.Name, state: Failed, since: now, until: now.Add(a.cfg.RetryAfter), reason: err.Error(), version: first}
		a.flows[flowKey{FlowFailed, first}]++
		a.mu.Unlock()
		a.log.Warn("cannot negotiate", "peer", dst, "rule", r.Name, "key_module", string(km), "err", err)
		return
	}
	a.peers[dst] = &peer{addr: dst, rule: r.Name, state: Negotiating, since: now, version: first}
	a.mu.Unlock()

	n := &negotiation{dst: dst, rule: r, module: km, authName: authName, auth: method}
	name := fmt.Sprintf("policy/%s/%s", r.Name, dst)
	local, remote := selectors(pkt, d)
	s := ruleSettings{methods: r.Methods, pfs: r.PFS, requirePQ: r.RequirePQ}
	if km.Speaks(policy.VersionIKEv2) {
		c := a.connection(pol, name, s)
		c.Auth, c.LocalID = method, localIdentity(method)
		if !r.Tunnel.IsValid() {
			c.Local = pkt.Src // host to host: IKE between the packet's own addresses
		}
		c.Remote = netip.AddrPortFrom(dst, policy.IKEPort)
		c.LocalTS, c.RemoteTS = local, remote
		if r.Tunnel.IsValid() {
			c.Mode = ike.ModeTunnel
		}
		n.v2 = c
	}
	if km.Speaks(policy.VersionIKEv1) && !r.RequirePQ { // auto with require_pq: IKEv2 only, no fallback to IKEv1
		c := a.connectionV1(pol, name, s)
		c.Auth = method
		if !r.Tunnel.IsValid() {
			c.Local = pkt.Src
		}
		c.Remote = netip.AddrPortFrom(dst, policy.IKEPort)
		c.LocalTS, c.RemoteTS = local, remote
		if r.Tunnel.IsValid() {
			c.Mode = sadb.Tunnel
		}
		n.v1 = c
	}
	a.log.Info("negotiating security", "peer", dst, "rule", r.Name, "key_module", string(km), "auth", authName, "packet", pkt.String())
	a.wg.Add(1)
	go a.initiate(n)
}

// negotiation is one negotiation the agent runs with a peer: the
// connections of the versions its rule's key module speaks.
type negotiation struct {
	dst      netip.Addr
	rule     *policy.Rule
	module   policy.KeyModule
	authName string
	auth     auth.Method
	v2       *ike.Connection   // nil unless the key module speaks IKEv2
	v1       *ikev1.Connection // nil unless it speaks IKEv1
}

// selectors are the traffic selectors for the filter that matched pkt:
// the two hosts (or, through a tunnel, the filter's remote addresses),
// with the filter's protocol and ports oriented as the packet travels.
func selectors(pkt policy.Packet, d policy.Decision) (local, remote []wire.TrafficSelector) {
	f := *d.Filter
	direct := policy.Filter{Src: f.Src, Dst: f.Dst, Protocol: f.Protocol, SrcPort: f.SrcPort, DstPort: f.DstPort}
	if !direct.Matches(pkt, func(ip netip.Addr) bool { return ip == pkt.Src }) {
		f.Src, f.Dst, f.SrcPort, f.DstPort = f.Dst, f.Src, f.DstPort, f.SrcPort
	}
	local = []wire.TrafficSelector{hostTS(pkt.Src, f.Protocol, f.SrcPort)}
	if d.Rule.Tunnel.IsValid() {
		for _, p := range f.Dst.Prefixes() {
			ts := hostTS(p.Addr(), f.Protocol, f.DstPort)
			ts.EndAddr = sadb.LastAddr(p)
			remote = append(remote, ts)
		}
		if len(remote) > 0 {
			return local, remote
		}
	}
	return local, []wire.TrafficSelector{hostTS(pkt.Dst, f.Protocol, f.DstPort)}
}

// initiate runs one negotiation: with the key module's version, or for
// auto IKEv2 and then, when the peer does not speak it, IKEv1 (ikeauto). A
// peer that does not answer IKE at all within the rule's fallback delay
// gets clear traffic (fallback rules only); one that answers and fails
// never does.
func (a *Agent) initiate(n *negotiation) {
	defer a.wg.Done()
	dst, r := n.dst, n.rule
	answered := make(chan struct{})
	var once sync.Once
	onAnswer := func() { once.Do(func() { close(answered) }) }
	var timer *time.Timer
	if r.Fallback {
		timer = time.AfterFunc(r.FallbackDelayOrDefault(), func() {
			select {
			case <-answered:
			default:
				a.fallBack(dst, r)
			}
		})
	}
	var version string
	v2 := func(ctx context.Context) (string, error) {
		version = policy.VersionIKEv2
		a.setVersion(dst, version)
		info, err := a.eng.InitiateWith(ctx, n.v2, ike.InitiateOptions{OnAnswer: onAnswer})
		return info.ID, err
	}
	v1 := func(ctx context.Context) (string, error) {
		version = policy.VersionIKEv1
		a.setVersion(dst, version)
		info, err := a.v1.InitiateWith(ctx, n.v1, ikev1.InitiateOptions{OnAnswer: onAnswer})
		return info.ID, err
	}
	var id string
	var err error
	switch {
	case n.v2 != nil && n.v1 != nil:
		id, err = ikeauto.Initiate(a.ctx, a.cfg.AutoWait, v2, v1, func(reason string, err error) {
			a.log.Info("the peer does not speak IKEv2: negotiating with IKEv1", "peer", dst, "rule", r.Name, "reason", reason, "err", err.Error())
		})
	case n.v1 != nil:
		id, err = v1(a.ctx)
	default:
		id, err = v2(a.ctx)
	}
	if timer != nil {
		timer.Stop()
	}
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.peers[dst]
	if p == nil {
		p = &peer{addr: dst, rule: r.Name}
		a.peers[dst] = p
	}
	if err == nil {
		wasClear := p.state == ClearFallback
		*p = peer{addr: dst, rule: r.Name, state: Secured, since: now, version: version}
		a.flows[flowKey{FlowSecured, version}]++
		a.log.Info("traffic secured", "peer", dst, "rule", r.Name, "version", version, "sa", id, "auth", n.authName)
		if wasClear {
			a.endClear(dst)
		}
		return
	}
	if a.ctx.Err() != nil {
		return
	}
	if p.state == ClearFallback {
		a.log.Info("peer still does not answer IKE; traffic stays in clear", "peer", dst, "until", p.until.Format(time.RFC3339))
		return
	}
	reason := failureReason(version, err)
	select {
	case <-answered:
	default:
		if reason == "timeout" {
			reason = "no_answer"
		}
	}
	*p = peer{addr: dst, rule: r.Name, state: Failed, since: now, until: now.Add(a.cfg.RetryAfter),
		reason: describe(reason, n.auth.Name(), err), version: version}
	if reason == "authentication_failed" || reason == "auth_mismatch" {
		a.flows[flowKey{FlowAuthMismatch, version}]++
		a.log.Warn("authentication mismatch: the peer refused our authentication; traffic to it is not secured",
			"peer", dst, "rule", r.Name, "version", version, "auth", n.auth.Name(), "err", err)
		return
	}
	if reason == FlowPQRequired {
		a.flows[flowKey{FlowPQRequired, version}]++
		a.log.Warn("the peer has no post-quantum key exchange and the rule requires one; traffic to it is not secured",
			"peer", dst, "rule", r.Name, "version", version, "err", err)
		return
	}
	a.flows[flowKey{FlowFailed, version}]++
	a.log.Warn("negotiation failed; traffic to the peer is not secured", "peer", dst, "rule", r.Name, "version", version, "reason", reason, "err", err)
}

// setVersion notes which IKE version the negotiation with dst tries now.
func (a *Agent) setVersion(dst netip.Addr, version string) {
	a.mu.Lock()
	if p := a.peers[dst]; p != nil && p.state == Negotiating {
		p.version = version
	}
	a.mu.Unlock()
}

// failureReason classifies an initiation's error with its engine's
// labels.
func failureReason(version string, err error) string {
	if version == policy.VersionIKEv1 {
		return ikev1.FailureReason(err)
	}
	return ike.FailureReason(err)
}

func describe(reason, authName string, err error) string {
	switch reason {
	case "authentication_failed", "auth_mismatch":
		return fmt.Sprintf("authentication mismatch: the peer refused %s authentication (%v)", authName, err)
	case "no_answer":
		return "the peer did not answer IKE"
	case "peer_no_proposal_chosen":
		// IKEv1 offers the authentication method inside the main mode
		// proposals: the peer cannot say which part it refused.
		return fmt.Sprintf("the peer accepted none of our main mode proposals with %s authentication: no authentication method or algorithms in common (%v)", authName, err)
	}
	return err.Error()
}

// fallBack lets the peer's traffic flow in clear for ClearTTL: it did not
// answer IKE within the fallback delay.
func (a *Agent) fallBack(dst netip.Addr, r *policy.Rule) {
	now := a.cfg.Now()
	a.mu.Lock()
	p := a.peers[dst]
	if p == nil || p.state != Negotiating {
		a.mu.Unlock()
		return
	}
	p.state, p.since, p.until = ClearFallback, now, now.Add(a.cfg.ClearTTL)
	a.flows[flowKey{FlowClearFallback, p.version}]++
	a.mu.Unlock()
	a.log.Warn("peer did not answer IKE: falling back to clear", "peer", dst, "rule", r.Name,
		"waited", r.FallbackDelayOrDefault().String(), "for", a.cfg.ClearTTL.String())
	if e := a.cfg.Enforcer; e != nil {
		ttl := a.cfg.ClearTTL
		a.enqueue(func() {
			if err := e.AllowClear(context.Background(), dst, ttl); err != nil {
				a.log.Error("allowing clear traffic", "peer", dst, "err", err)
			}
		})
	}
}

// endClear ends a fallback (a.mu held).
func (a *Agent) endClear(dst netip.Addr) {
	if e := a.cfg.Enforcer; e != nil {
		a.enqueue(func() {
			if err := e.EndClear(context.Background(), dst); err != nil {
				a.log.Error("ending clear fallback", "peer", dst, "err", err)
			}
		})
	}
}

// enforceTimeout bounds a data-plane change made on the engine's path.
const enforceTimeout = 3 * time.Second

// PoliciesAdded implements ike.Observer: a Child SA's outbound policies
// get a marking rule, so that its traffic enters the data plane whatever
// the static rules say nothing about (the default response rule's SAs);
// a fallback to clear with its peer ends.
func (a *Agent) PoliciesAdded(ps []*sadb.Policy) {
	e := a.cfg.Enforcer
	for _, p := range ps {
		if p.Direction != sadb.Out || p.Action != sadb.Protect || p.ReqID == 0 {
			continue
		}
		if dst := p.Selector.Dst; dst.IsSingleIP() {
			a.mu.Lock()
			if st := a.peers[dst.Addr()]; st != nil && st.state == ClearFallback {
				st.state, st.since = Secured, a.cfg.Now()
				a.endClear(dst.Addr())
			}
			a.mu.Unlock()
		}
		if e == nil {
			continue
		}
		// Synchronously: the engine answers the peer only after this, and
		// the peer may send at once (a held packet released by its new SA),
		// so the replies must already be steered into the SA.
		ctx, cancel := context.WithTimeout(context.Background(), enforceTimeout)
		if err := e.AddSecured(ctx, p.Selector); err != nil {
			a.log.Error("steering an SA's traffic", "selector", p.Selector.String(), "err", err)
		}
		cancel()
	}
}

// PoliciesRemoved implements ike.Observer.
func (a *Agent) PoliciesRemoved(ids []sadb.PolicyID) {
	e := a.cfg.Enforcer
	if e == nil {
		return
	}
	for _, id := range ids {
		if id.Direction != sadb.Out {
			continue
		}
		// Synchronously too, so that a removal cannot overtake a later
		// addition of the same selector.
		ctx, cancel := context.WithTimeout(context.Background(), enforceTimeout)
		if err := e.RemoveSecured(ctx, id.Selector); err != nil {
			a.log.Error("releasing an SA's traffic", "selector", id.Selector.String(), "err", err)
		}
		cancel()
	}
}

// HandshakeFailed implements ike.Observer: a peer whose authentication
// method this host does not accept is an authentication mismatch, and one
// refused by require_pq a pq_required flow, logged and counted on this
// side too.
func (a *Agent) HandshakeFailed(peerAddr netip.Addr, initiator bool, reason string) {
	a.handshakeFailed(peerAddr, initiator, reason, policy.VersionIKEv2)
}

func (a *Agent) handshakeFailed(peerAddr netip.Addr, initiator bool, reason, version string) {
	if !initiator && reason == FlowPQRequired {
		a.mu.Lock()
		a.flows[flowKey{FlowPQRequired, version}]++
		a.mu.Unlock()
		a.log.Warn("the peer offered no post-quantum key exchange and the policy requires one", "peer", peerAddr, "version", version)
		return
	}
	if initiator || reason != "auth_mismatch" {
		return
	}
	a.mu.Lock()
	a.flows[flowKey{FlowAuthMismatch, version}]++
	a.mu.Unlock()
	a.log.Warn("authentication mismatch: the peer offered an authentication method the policy does not accept", "peer", peerAddr, "version", version)
}
