// Package xfrmpolicy enforces an assigned IPsec policy with the Linux
// kernel's XFRM policies, for the xfrm data plane: a block rule becomes a
// block policy, a permit rule an allow policy without template, a
// negotiate rule a policy whose ESP template the kernel must satisfy (it
// raises an acquire when no SA does), required outbound and, inbound,
// required or, with "accept unsecured", optional ("level use"). The
// exemptions are allow policies ahead of all of them; a fallback to clear
// is a pair of allow policies for the peer, removed when it ends.
//
// What XFRM cannot express, and the nftables enforcement of the userspace
// data plane can: connection types (rules apply on every interface),
// tunnel endpoints, and packet counters by outcome. Child SAs' own
// policies (priority 0) come before the policy's, so traffic an SA covers
// is secured even where a rule would permit or block it.
package xfrmpolicy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/iked/iked/policy"
	"github.com/iked/iked/sadb"
)

// Priorities: XFRM prefers the lowest number. Child SAs' policies have 0.
const (
	fallbackPriority = 100  // a peer in fallback to clear
	exemptPriority   = 1000 // the exemptions
	rulePriority     = 2000 // the rules, most specific filter first
)

// Enforcer installs a policy as XFRM policies through a backend.
type Enforcer struct {
	b sadb.PolicyBackend

	mu     sync.Mutex
	static map[sadb.PolicyID]bool
	clear  map[netip.Addr]*time.Timer
}

// New returns an enforcer over b (the xfrm backend).
func New(b sadb.PolicyBackend) *Enforcer {
	return &Enforcer{b: b, static: map[sadb.PolicyID]bool{}, clear: map[netip.Addr]*time.Timer{}}
}

// Compile turns a policy into XFRM policies, in priority order. Tunnel
// rules are refused: their outer source address is not known here.
func Compile(p *policy.Policy) ([]*sadb.Policy, error) {
	var out []*sadb.Policy
	seen := map[sadb.PolicyID]bool{}
	add := func(x *sadb.Policy) {
		if !seen[x.ID()] { // an equal selector earlier in the order wins
			seen[x.ID()] = true
			out = append(out, x)
		}
	}
	pass := func(dir sadb.Direction, sel sadb.Selector) {
		add(&sadb.Policy{Selector: sel, Direction: dir, Action: sadb.Pass, Priority: exemptPriority})
	}
	for _, fam := range []netip.Prefix{any4, any6} {
		mc := multicast4
		if fam == any6 {
			mc = multicast6
		}
		pass(sadb.Out, sadb.Selector{Src: fam, Dst: mc})
		pass(sadb.In, sadb.Selector{Src: fam, Dst: mc})
	}
	pass(sadb.Out, sadb.Selector{Src: any4, Dst: broadcast4})
	pass(sadb.In, sadb.Selector{Src: any4, Dst: broadcast4})
	for t := uint16(133); t <= 137; t++ { // neighbour discovery: the type sits in the source port
		pass(sadb.Out, sadb.Selector{Src: any6, Dst: any6, Proto: policy.ICMPv6, SrcPort: t})
		pass(sadb.In, sadb.Selector{Src: any6, Dst: any6, Proto: policy.ICMPv6, SrcPort: t})
	}
	for _, kdc := range p.KDCs {
		host, anyFam := netip.PrefixFrom(kdc, kdc.BitLen()), anyOf(kdc)
		for _, proto := range []uint8{policy.TCP, policy.UDP} {
			pass(sadb.Out, sadb.Selector{Src: anyFam, Dst: host, Proto: proto, DstPort: policy.KerberosPort})
			pass(sadb.In, sadb.Selector{Src: host, Dst: anyFam, Proto: proto, SrcPort: policy.KerberosPort})
			pass(sadb.Out, sadb.Selector{Src: host, Dst: anyFam, Proto: proto, SrcPort: policy.KerberosPort})
			pass(sadb.In, sadb.Selector{Src: anyFam, Dst: host, Proto: proto, DstPort: policy.KerberosPort})
		}
	}
	for _, e := range p.Exempt {
		anyFam := anyOf(e.Addr())
		pass(sadb.Out, sadb.Selector{Src: anyFam, Dst: e})
		pass(sadb.In, sadb.Selector{Src: e, Dst: anyFam})
	}
	for rank, d := range p.Ordered() {
		r, f := d.Rule, d.Filter
		if r.Tunnel.IsValid() {
			return nil, fmt.Errorf("rule %s: tunnel rules are not enforced by the xfrm data plane yet (use backend: userspace)", r.Name)
		}
		orient := []policy.Filter{*f}
		if f.Mirrored {
			orient = append(orient, policy.Filter{Src: f.Dst, Dst: f.Src, Protocol: f.Protocol, SrcPort: f.DstPort, DstPort: f.SrcPort})
		}
		prio := rulePriority + uint32(rank)
		for _, o := range orient {
			for _, dir := range []sadb.Direction{sadb.Out, sadb.In} {
				for _, sel := range selectors(o, dir) {
					x := &sadb.Policy{Selector: sel, Direction: dir, Priority: prio}
					switch r.Action {
					case policy.Block:
						x.Action = sadb.Drop
					case policy.Permit:
						x.Action = sadb.Pass
					default:
						x.Action, x.Protocol, x.Mode, x.Level = sadb.Protect, sadb.ESP, sadb.Transport, sadb.Required
						if dir == sadb.In && r.AcceptUnsecured {
							x.Level = sadb.Optional
						}
					}
					add(x)
				}
			}
		}
	}
	return out, nil
}

var (
	any4       = netip.MustParsePrefix("0.0.0.0/0")
	any6       = netip.MustParsePrefix("::/0")
	multicast4 = netip.MustParsePrefix("224.0.0.0/4")
	multicast6 = netip.MustParsePrefix("ff00::/8")
	broadcast4 = netip.MustParsePrefix("255.255.255.255/32")
)

func anyOf(a netip.Addr) netip.Prefix {
	if a.Unmap().Is4() {
		return any4
	}
	return any6
}

// selectors renders an oriented filter for one direction: outbound
// packets leave from this host ("me" on the source side is any of its
// addresses, on the destination side never), inbound ones arrive to it.
func selectors(f policy.Filter, dir sadb.Direction) []sadb.Selector {
	local, remote := f.Src, f.Dst
	if dir == sadb.In {
		local, remote = f.Dst, f.Src
	}
	if remote.Kind == policy.MyAddress {
		return nil
	}
	var out []sadb.Selector
	for _, fam := range []netip.Prefix{any4, any6} {
		ls, rs := prefixes(local, fam), prefixes(remote, fam)
		for _, l := range ls {
			for _, r := range rs {
				s := sadb.Selector{Src: l, Dst: r, Proto: f.Protocol, SrcPort: f.SrcPort, DstPort: f.DstPort}
				if dir == sadb.In {
					s = sadb.Selector{Src: r, Dst: l, Proto: f.Protocol, SrcPort: f.SrcPort, DstPort: f.DstPort}
				}
				out = append(out, s)
			}
		}
	}
	return out
}

// prefixes are an address's prefixes within one family; "any" and "me"
// are the whole family.
func prefixes(a policy.Address, fam netip.Prefix) []netip.Prefix {
	switch a.Kind {
	case policy.AnyAddress, policy.MyAddress:
		return []netip.Prefix{fam}
	}
	var out []netip.Prefix
	for _, p := range a.Prefixes() {
		if p.Addr().Is4() == fam.Addr().Is4() {
			out = append(out, p)
		}
	}
	return out
}

// Create implements agent.Enforcer. The backend removed a previous run's
// entries when it started.
func (e *Enforcer) Create(ctx context.Context, p *policy.Policy) error {
	return e.Replace(ctx, p)
}

// Replace implements agent.Enforcer: the new policies are installed (an
// existing selector updated in place), then the old ones no longer
// wanted are removed. XFRM has no transactions: for an instant both
// stand, the new ones first.
func (e *Enforcer) Replace(_ context.Context, p *policy.Policy) error {
	ps, err := Compile(p)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	next := map[sadb.PolicyID]bool{}
	for _, x := range ps {
		if err := e.b.AddPolicy(x); err != nil {
			return fmt.Errorf("xfrm policy %s %s: %w", x.Direction, x.Selector, err)
		}
		next[x.ID()] = true
	}
	var errs []error
	for id := range e.static {
		if !next[id] {
			if err := e.b.DeletePolicy(id); err != nil && !errors.Is(err, sadb.ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	e.static = next
	return errors.Join(errs...)
}

// Delete implements agent.Enforcer.
func (e *Enforcer) Delete(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for id := range e.static {
		if err := e.b.DeletePolicy(id); err != nil && !errors.Is(err, sadb.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	e.static = map[sadb.PolicyID]bool{}
	for peer, t := range e.clear {
		t.Stop()
		errs = append(errs, e.dropClear(peer))
	}
	return errors.Join(errs...)
}

// AddSecured implements agent.Enforcer: nothing to do, the kernel steers
// an SA's traffic by the Child SA's own policies.
func (e *Enforcer) AddSecured(context.Context, sadb.Selector) error { return nil }

// RemoveSecured implements agent.Enforcer.
func (e *Enforcer) RemoveSecured(context.Context, sadb.Selector) error { return nil }

func clearPolicies(peer netip.Addr) []*sadb.Policy {
	host, anyFam := netip.PrefixFrom(peer, peer.BitLen()), anyOf(peer)
	return []*sadb.Policy{
		{Selector: sadb.Selector{Src: anyFam, Dst: host}, Direction: sadb.Out, Action: sadb.Pass, Priority: fallbackPriority},
		{Selector: sadb.Selector{Src: host, Dst: anyFam}, Direction: sadb.In, Action: sadb.Pass, Priority: fallbackPriority},
	}
}

// AllowClear implements agent.Enforcer: allow policies for the peer, ahead
// of the rules, removed after ttl.
func (e *Enforcer) AllowClear(_ context.Context, peer netip.Addr, ttl time.Duration) error {
	peer = peer.Unmap()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range clearPolicies(peer) {
		if err := e.b.AddPolicy(x); err != nil {
			return err
		}
	}
	if t := e.clear[peer]; t != nil {
		t.Stop()
	}
	e.clear[peer] = time.AfterFunc(ttl, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.clear[peer]; ok {
			_ = e.dropClear(peer)
		}
	})
	return nil
}

// EndClear implements agent.Enforcer.
func (e *Enforcer) EndClear(_ context.Context, peer netip.Addr) error {
	peer = peer.Unmap()
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.clear[peer]
	if !ok {
		return nil
	}
	t.Stop()
	return e.dropClear(peer)
}

// dropClear removes a peer's allow policies; e.mu is held.
func (e *Enforcer) dropClear(peer netip.Addr) error {
	delete(e.clear, peer)
	var errs []error
	for _, x := range clearPolicies(peer) {
		if err := e.b.DeletePolicy(x.ID()); err != nil && !errors.Is(err, sadb.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CounterValues implements agent.Enforcer: XFRM keeps no counters by
// outcome, so there are none.
func (e *Enforcer) CounterValues(context.Context) (map[string]uint64, error) { return nil, nil }
