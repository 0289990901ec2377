package ike

import (
	"net/netip"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
)

// childPolicies are the data-plane policies that steer a Child SA's
// traffic (out) and require it to arrive protected (in, and fwd for a
// tunnel gateway): one per pair of local and remote selector.
func childPolicies(c *childSA, local, remote netip.Addr) []*sadb.Policy {
	var ps []*sadb.Policy
	for _, l := range c.localTS {
		for _, r := range c.remoteTS {
			for _, lp := range sadb.RangePrefixes(l.StartAddr, l.EndAddr) {
				for _, rp := range sadb.RangePrefixes(r.StartAddr, r.EndAddr) {
					out := sadb.Selector{Src: lp, Dst: rp, Proto: selectorProto(l, r), SrcPort: singlePort(l), DstPort: singlePort(r)}
					in := sadb.Selector{Src: rp, Dst: lp, Proto: out.Proto, SrcPort: out.DstPort, DstPort: out.SrcPort}
					base := sadb.Policy{Action: sadb.Protect, Level: sadb.Required, Protocol: sadb.ESP, Mode: c.mode, ReqID: c.reqID}
					po, pi := base, base
					po.Selector, po.Direction = out, sadb.Out
					pi.Selector, pi.Direction = in, sadb.In
					if c.mode == ModeTunnel {
						po.TunnelSrc, po.TunnelDst = local, remote
						pi.TunnelSrc, pi.TunnelDst = remote, local
					}
					ps = append(ps, &po, &pi)
					if c.mode == ModeTunnel {
						pf := pi
						pf.Direction = sadb.Fwd
						ps = append(ps, &pf)
					}
				}
			}
		}
	}
	return ps
}

// selectorProto is the protocol both selectors agree on (0 = any).
func selectorProto(a, b wire.TrafficSelector) uint8 {
	if a.IPProtocol != 0 {
		return a.IPProtocol
	}
	return b.IPProtocol
}

// singlePort is the selector's port when it names exactly one; data-plane
// selectors hold one port or any, so a wider range protects all ports.
func singlePort(ts wire.TrafficSelector) uint16 {
	if ts.StartPort == ts.EndPort {
		return ts.StartPort
	}
	return 0
}

// addPolicies installs (or replaces) policies and counts a reference to
// each: Child SAs with the same selectors (a rekey, a reauthentication)
// share them.
func (e *Engine) addPolicies(ps []*sadb.Policy) error {
	e.policyMu.Lock()
	defer e.policyMu.Unlock()
	if err := e.cfg.SADB.AddPolicies(ps...); err != nil {
		return err
	}
	for _, p := range ps {
		e.policyRefs[p.ID()]++
	}
	if o := e.cfg.Observer; o != nil {
		o.PoliciesAdded(ps)
	}
	return nil
}

// releasePolicies drops a reference to each policy and removes those no
// Child SA uses any more.
func (e *Engine) releasePolicies(ids []sadb.PolicyID) error {
	e.policyMu.Lock()
	defer e.policyMu.Unlock()
	var gone []sadb.PolicyID
	for _, id := range ids {
		if e.policyRefs[id]--; e.policyRefs[id] <= 0 {
			delete(e.policyRefs, id)
			gone = append(gone, id)
		}
	}
	if o := e.cfg.Observer; o != nil && len(gone) > 0 {
		o.PoliciesRemoved(gone)
	}
	return e.cfg.SADB.DeletePolicies(gone...)
}
