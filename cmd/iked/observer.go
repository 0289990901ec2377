package main

import (
	"log/slog"
	"net/netip"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/metrics"
	"github.com/iked/iked/policy/agent"
	"github.com/iked/iked/sadb"
)

// observer is what the engine tells the daemon: the policy agent's part
// (acquires, Child SA policies, failed handshakes) and the updown
// scripts' (Child SAs up and down).
type observer struct {
	agent  *agent.Agent // nil without an assigned policy
	updown *updown
	log    *slog.Logger
	totals *metrics.Totals // the traffic of Child SAs gone
}

// Acquire implements ike.Observer.
func (o *observer) Acquire(ev sadb.Event) {
	if o.agent != nil {
		o.agent.Acquire(ev)
		return
	}
	o.log.Info("traffic without an SA", "policy", ev.Policy.Selector.String(), "packet", ev.Packet.String())
}

// PoliciesAdded implements ike.Observer.
func (o *observer) PoliciesAdded(ps []*sadb.Policy) {
	if o.agent != nil {
		o.agent.PoliciesAdded(ps)
	}
}

// PoliciesRemoved implements ike.Observer.
func (o *observer) PoliciesRemoved(ids []sadb.PolicyID) {
	if o.agent != nil {
		o.agent.PoliciesRemoved(ids)
	}
}

// HandshakeFailed implements ike.Observer.
func (o *observer) HandshakeFailed(peer netip.Addr, initiator bool, reason string) {
	if o.agent != nil {
		o.agent.HandshakeFailed(peer, initiator, reason)
	}
}

// ChildSAUp implements ike.ChildObserver.
func (o *observer) ChildSAUp(ev ike.ChildSAEvent) { o.updown.ChildSAUp(ev) }

// ChildSADown implements ike.ChildObserver.
func (o *observer) ChildSADown(ev ike.ChildSAEvent) {
	o.totals.ChildSADown(ev)
	o.updown.ChildSADown(ev)
}

var (
	_ ike.Observer      = (*observer)(nil)
	_ ike.ChildObserver = (*observer)(nil)
)
