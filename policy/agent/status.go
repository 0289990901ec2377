package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/iked/iked/policy"
)

// Verdicts of PeerStatus: what happens to the traffic.
const (
	VerdictSecured       = "secured"
	VerdictClearPermit   = "clear-permit"
	VerdictClearFallback = "clear-fallback"
	VerdictClearNoRule   = "clear-no-rule"
	VerdictBlocked       = "blocked"
	VerdictExempt        = "exempt"
	VerdictNegotiating   = "negotiating"
	VerdictNotSecured    = "not-secured" // must be secured, is not (yet): dropped
	VerdictOnDemand      = "secured-on-demand"
)

// PeerStatus answers "is my traffic to this host encrypted?".
type PeerStatus struct {
	Peer    string `json:"peer"`
	Traffic string `json:"traffic"`
	// Verdict is one of the Verdict constants.
	Verdict string `json:"verdict"`
	// Rule and Filter decided; empty for exempt or unmatched traffic.
	Rule   string `json:"rule,omitempty"`
	Filter string `json:"filter,omitempty"`
	// KeyModule is the deciding negotiate rule's key module ("ikev2",
	// "ikev1", "auto"), or the default response rule's for traffic no
	// rule covers; empty for permit, block and exempt traffic.
	KeyModule string `json:"key_module,omitempty"`
	// SAs are the IKE SAs (and ISAKMP SAs) with the peer that carry
	// Child (IPsec) SAs; Versions the IKE versions that made them, in
	// the same order: which version secured the peer.
	SAs      []string `json:"sas,omitempty"`
	Versions []string `json:"versions,omitempty"`
	// Negotiated is the IKE version the agent's last negotiation with
	// the peer ended in (or is trying), when it negotiated with it.
	Negotiated string `json:"negotiated,omitempty"`
	// Detail explains the verdict in a sentence.
	Detail string `json:"detail"`
	// Until is when a fallback or a failure's back-off ends.
	Until time.Time `json:"until,omitzero"`
}

// Peer tells what happens to traffic with addr (protocol and port 0 for
// any).
func (a *Agent) Peer(addr netip.Addr, proto uint8, port uint16) PeerStatus {
	addr = addr.Unmap()
	src := a.localFor(addr)
	pkt := policy.Packet{Src: src, Dst: addr, Protocol: proto, DstPort: port}
	st := PeerStatus{Peer: addr.String(), Traffic: pkt.String()}
	for _, sa := range a.allSAs() {
		if sa.remote == addr && sa.children > 0 {
			st.SAs = append(st.SAs, sa.id)
			st.Versions = append(st.Versions, sa.version)
		}
	}
	a.mu.Lock()
	pol := a.pol
	p := a.peers[addr]
	var rec peer
	if p != nil {
		rec = *p
	}
	a.mu.Unlock()
	d := pol.Decide(pkt, func(ip netip.Addr) bool { return ip == src || a.isLocal(ip) })
	if d.Rule != nil {
		st.Rule, st.Filter = d.Rule.Name, d.Filter.String()
	}
	switch {
	case d.Exempt != policy.NotExempt:
	case d.Rule != nil && d.Rule.Action == policy.Negotiate:
		st.KeyModule = string(pol.RuleKeyModule(d.Rule))
	case d.Rule == nil && pol.DefaultResponse.Active:
		st.KeyModule = string(pol.DefaultResponseKeyModule())
	}
	if p != nil {
		st.Negotiated = rec.version
	}
	now := a.cfg.Now()
	switch {
	case d.Exempt != policy.NotExempt:
		st.Verdict, st.Detail = VerdictExempt, fmt.Sprintf("exempt from the policy (%s): always in clear", d.Exempt)
	case d.Rule != nil && d.Rule.Action == policy.Block:
		st.Verdict, st.Detail = VerdictBlocked, "dropped by a block rule"
	case d.Rule != nil && d.Rule.Action == policy.Permit:
		st.Verdict, st.Detail = VerdictClearPermit, "passes in clear by a permit rule"
	case len(st.SAs) > 0:
		st.Verdict, st.Detail = VerdictSecured, "protected by an SA with the peer ("+strings.Join(uniq(st.Versions), ", ")+")"
	case d.Rule == nil:
		st.Verdict, st.Detail = VerdictClearNoRule, "no rule covers it: it passes in clear"
		if pol.DefaultResponse.Active {
			st.Detail += "; the default response rule secures it if the peer asks"
		}
	case p != nil && rec.state == ClearFallback && now.Before(rec.until):
		st.Verdict, st.Until = VerdictClearFallback, rec.until
		st.Detail = "the peer did not answer IKE: in clear until the fallback ends, then negotiated again"
	case p != nil && rec.state == Negotiating:
		st.Verdict, st.Detail = VerdictNegotiating, "negotiation under way"
	case p != nil && rec.state == Failed && now.Before(rec.until):
		st.Verdict, st.Until, st.Detail = VerdictNotSecured, rec.until, rec.reason+"; traffic is dropped until a negotiation succeeds"
	default:
		st.Verdict, st.Detail = VerdictOnDemand, "the first packet starts a negotiation"
	}
	return st
}

// localFor picks this host's address for traffic to addr: one of the
// same family, else the zero Addr.
func (a *Agent) localFor(addr netip.Addr) netip.Addr {
	for _, l := range a.cfg.LocalAddrs() {
		if l.Is4() == addr.Is4() && !l.IsLoopback() {
			return l
		}
	}
	return netip.Addr{}
}

// Peers returns the status of every peer the agent negotiated with, and
// of every peer with an SA, ordered by address.
func (a *Agent) Peers() []PeerStatus {
	set := map[netip.Addr]bool{}
	a.mu.Lock()
	for addr := range a.peers {
		set[addr] = true
	}
	a.mu.Unlock()
	for _, sa := range a.allSAs() {
		set[sa.remote] = true
	}
	addrs := make([]netip.Addr, 0, len(set))
	for x := range set {
		addrs = append(addrs, x)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	out := make([]PeerStatus, 0, len(addrs))
	for _, x := range addrs {
		out = append(out, a.Peer(x, 0, 0))
	}
	return out
}

// uniq returns ss without repeats, in order.
func uniq(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Stats are the agent's counters.
type Stats struct {
	// Flows counts negotiations by outcome (Flow constants), whatever
	// their IKE version.
	Flows map[string]uint64
	// FlowsByVersion counts them by IKE version ("ikev2", "ikev1": the
	// version a negotiation ended in, or was trying when it fell back to
	// clear) and outcome.
	FlowsByVersion map[string]map[string]uint64
	// Packets counts packets by the enforcement's outcome counters
	// (nft.Counters); empty without an enforcer.
	Packets map[string]uint64
}

// Stats returns the agent's counters; the packet counters are read from
// the data plane.
func (a *Agent) Stats(ctx context.Context) (Stats, error) {
	s := Stats{Flows: map[string]uint64{}, Packets: map[string]uint64{},
		FlowsByVersion: map[string]map[string]uint64{policy.VersionIKEv2: {}, policy.VersionIKEv1: {}}}
	a.mu.Lock()
	for k, v := range a.flows {
		s.Flows[k.outcome] += v
		if s.FlowsByVersion[k.version] == nil {
			s.FlowsByVersion[k.version] = map[string]uint64{}
		}
		s.FlowsByVersion[k.version][k.outcome] += v
	}
	a.mu.Unlock()
	if e := a.cfg.Enforcer; e != nil {
		m, err := e.CounterValues(ctx)
		if err != nil {
			return s, err
		}
		s.Packets = m
	}
	return s, nil
}

// RuleInfo describes one rule for ikectl policy.
type RuleInfo struct {
	Name            string   `json:"name"`
	Action          string   `json:"action"`
	Filters         []string `json:"filters"`
	Methods         []string `json:"security_methods,omitempty"`
	Auth            []string `json:"auth,omitempty"`
	AcceptUnsecured bool     `json:"accept_unsecured,omitempty"`
	Fallback        string   `json:"fallback,omitempty"`
	PFS             bool     `json:"pfs,omitempty"`
	RequirePQ       bool     `json:"require_pq,omitempty"`
	Connection      string   `json:"connection_type"`
	Tunnel          string   `json:"tunnel,omitempty"`
	// KeyModule is a negotiate rule's key module.
	KeyModule string `json:"key_module,omitempty"`
}

// KeyExchangeInfo describes the policy's key exchange settings (Windows'
// main mode).
type KeyExchangeInfo struct {
	KeyModule    string   `json:"key_module"`
	Methods      []string `json:"methods,omitempty"`
	Lifetime     string   `json:"lifetime,omitempty"`
	QuickModes   int      `json:"quick_modes,omitempty"`
	MasterKeyPFS bool     `json:"master_key_pfs,omitempty"`
	AllowLegacy  bool     `json:"allow_legacy,omitempty"`
}

// PolicyInfo describes the assigned policy for ikectl policy.
type PolicyInfo struct {
	Name            string          `json:"name"`
	Description     string          `json:"description,omitempty"`
	Rules           []RuleInfo      `json:"rules"`
	DefaultResponse *RuleInfo       `json:"default_response,omitempty"`
	Exempt          []string        `json:"exempt"`
	KeyExchange     KeyExchangeInfo `json:"key_exchange"`
}

// Describe returns the assigned policy, its rules most specific filter
// first.
func (a *Agent) Describe() PolicyInfo {
	p := a.Policy()
	kx := p.KeyExchange
	info := PolicyInfo{Name: p.Name, Description: p.Description,
		Exempt: []string{"IKE (UDP 500, 4500), ESP, AH", "multicast and broadcast", "IPv6 neighbour discovery"},
		KeyExchange: KeyExchangeInfo{KeyModule: string(p.DefaultResponseKeyModule()), Methods: kx.Methods,
			QuickModes: kx.QuickModes, MasterKeyPFS: kx.MasterKeyPFS, AllowLegacy: kx.AllowLegacy}}
	if kx.Lifetime > 0 {
		info.KeyExchange.Lifetime = kx.Lifetime.String()
	}
	for _, k := range p.KDCs {
		info.Exempt = append(info.Exempt, "Kerberos KDC "+k.String())
	}
	for _, e := range p.Exempt {
		info.Exempt = append(info.Exempt, e.String())
	}
	seen := map[*policy.Rule]bool{}
	for _, d := range p.Ordered() {
		r := d.Rule
		if seen[r] {
			continue
		}
		seen[r] = true
		ri := RuleInfo{Name: r.Name, Action: r.Action.String(), Auth: r.Auth, AcceptUnsecured: r.AcceptUnsecured, PFS: r.PFS, RequirePQ: r.RequirePQ, Connection: r.Connection.String()}
		if r.Action == policy.Negotiate {
			ri.KeyModule = string(p.RuleKeyModule(r))
		}
		for i := range r.Filters.Filters {
			ri.Filters = append(ri.Filters, r.Filters.Filters[i].String())
		}
		for _, m := range r.Methods {
			ri.Methods = append(ri.Methods, methodString(m))
		}
		if r.Fallback {
			ri.Fallback = r.FallbackDelayOrDefault().String()
		}
		if r.Tunnel.IsValid() {
			ri.Tunnel = r.Tunnel.String()
		}
		info.Rules = append(info.Rules, ri)
	}
	if d := p.DefaultResponse; d.Active {
		ri := RuleInfo{Name: "default-response", Action: "negotiate", Filters: []string{"dynamic"}, Auth: d.Auth, RequirePQ: d.RequirePQ, Connection: "all",
			KeyModule: string(p.DefaultResponseKeyModule())}
		for _, m := range d.Methods {
			ri.Methods = append(ri.Methods, methodString(m))
		}
		info.DefaultResponse = &ri
	}
	return info
}

func methodString(m policy.SecurityMethod) string {
	parts := []string{"esp " + m.Proposal}
	if m.Lifetime > 0 {
		parts = append(parts, "life "+m.Lifetime.String())
	}
	if m.LifetimeBytes > 0 {
		parts = append(parts, fmt.Sprintf("life %d bytes", m.LifetimeBytes))
	}
	return strings.Join(parts, ", ")
}
