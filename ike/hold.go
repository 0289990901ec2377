package ike

import (
	"context"
	"log/slog"

	"github.com/iked/iked/sadb"
)

// dpd_action hold (strongSwan's "trap"): when dead peer detection gives up
// on a peer, the Child SAs go but their outbound policies stay in the data
// plane as trap policies, with no SA behind them. Traffic they match is
// not sent in the clear: the data plane holds or drops it and raises an
// acquire, and the engine initiates the connection again. Once a new IKE
// SA is up, the traps are released; the new Child SAs have installed the
// same policies (the references are counted), so there is no gap.

// hold is a connection whose policies wait for traffic.
type hold struct {
	conn     *Connection
	policies []sadb.PolicyID
	busy     bool // an initiation is running (guarded by Engine.policyMu)
}

// holdPolicies keeps the outbound policies of sa's Child SAs as traps for
// its connection, taking a reference on each so that the Child SAs'
// removal leaves them. A connection that cannot be initiated (no remote
// address: a responder-only connection) cannot be held; its SAs are
// cleared. Caller holds sa.mu.
func (sa *ikeSA) holdPolicies() {
	c := sa.conn
	if !c.Remote.Addr().IsValid() || c.Remote.Addr().IsUnspecified() {
		sa.log(slog.LevelWarn, "dpd_action hold needs a remote address to initiate to; clearing instead")
		return
	}
	var ids []sadb.PolicyID
	for _, ch := range sa.children {
		for _, id := range ch.policies {
			if id.Direction == sadb.Out {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return
	}
	e := sa.eng
	e.policyMu.Lock()
	h := &hold{conn: c}
	for _, id := range ids {
		if _, held := e.holds[id]; held || e.policyRefs[id] == 0 {
			continue
		}
		e.policyRefs[id]++
		e.holds[id] = h
		h.policies = append(h.policies, id)
	}
	e.policyMu.Unlock()
	sa.log(slog.LevelInfo, "holding the connection's policies: traffic to the peer will initiate it again", "policies", len(h.policies))
}

// heldFor returns the hold an acquire's policy belongs to, or nil.
func (e *Engine) heldFor(id sadb.PolicyID) *hold {
	e.policyMu.Lock()
	defer e.policyMu.Unlock()
	return e.holds[id]
}

// resume initiates a held connection, once at a time; on success the
// traps are released (the new Child SAs hold the policies now), on failure
// they stay and the next acquire tries again.
func (e *Engine) resume(h *hold, ev sadb.Event) {
	e.policyMu.Lock()
	if h.busy || e.holds[ev.Policy] != h {
		e.policyMu.Unlock()
		return
	}
	h.busy = true
	e.policyMu.Unlock()
	e.log.Info("traffic for a held connection: initiating", "connection", h.conn.Name, "packet", ev.Packet.String())
	ctx, cancel := context.WithTimeout(context.Background(), e.InitiateTimeout())
	defer cancel()
	var err error
	if sa, _ := e.upSA(h.conn.Name); sa == nil {
		_, err = e.initiate(ctx, h.conn, false)
	}
	e.policyMu.Lock()
	h.busy = false
	e.policyMu.Unlock()
	if err != nil {
		e.log.Warn("initiating a held connection failed; its policies stay", "connection", h.conn.Name, "err", err)
		return
	}
	e.release(h)
}

// release drops the traps of h: each policy loses the hold's reference
// and goes from the data plane if nothing else uses it.
func (e *Engine) release(h *hold) {
	e.policyMu.Lock()
	var ids []sadb.PolicyID
	for _, id := range h.policies {
		if e.holds[id] == h {
			delete(e.holds, id)
			ids = append(ids, id)
		}
	}
	e.policyMu.Unlock()
	if len(ids) > 0 {
		if err := e.releasePolicies(ids); err != nil {
			e.log.Warn("removing a held connection's traps", "connection", h.conn.Name, "err", err)
		}
	}
}

// releaseHolds drops every trap (Close): the policies go with the engine.
func (e *Engine) releaseHolds() {
	e.policyMu.Lock()
	seen := map[*hold]bool{}
	for _, h := range e.holds {
		seen[h] = true
	}
	e.policyMu.Unlock()
	for h := range seen {
		e.release(h)
	}
}
