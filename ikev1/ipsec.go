package ikev1

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/ipsec"
	"github.com/iked/iked/sadb"
)

// ipsecSA is a negotiated pair of IPsec SAs. Its fields are guarded by
// the owning ISAKMP SA's mu; it moves to a new ISAKMP SA when a phase 1
// rekey adopts it.
type ipsecSA struct {
	suite             *phase2Suite
	inbound, outbound *sadb.SA
	localTS, remoteTS ipsec.TrafficSelector
	reqID             uint32
	policies          []sadb.PolicyID
	initiator         bool   // this side started the Quick Mode
	mid               uint32 // of that Quick Mode
	rekeying          bool
	replacedBy        *ipsecSA
	deleting          bool
	// deleteOnAdopt: deleted while its ISAKMP SA could no longer tell
	// the peer (the peer had deleted it); the SA that adopts it does.
	deleteOnAdopt string
	timers        []*time.Timer
}

func (c *ipsecSA) stopTimers() {
	for _, t := range c.timers {
		t.Stop()
	}
	c.timers = nil
}

// ipsecPolicies are the data-plane policies that steer an SA pair's
// traffic (out) and require it protected (in, and fwd for a tunnel).
func ipsecPolicies(c *ipsecSA, local, remote netip.Addr) []*sadb.Policy {
	l, r := c.localTS, c.remoteTS
	proto := l.IPProtocol
	if proto == 0 {
		proto = r.IPProtocol
	}
	port := func(ts ipsec.TrafficSelector) uint16 {
		if ts.StartPort == ts.EndPort {
			return ts.StartPort
		}
		return 0
	}
	var ps []*sadb.Policy
	for _, lp := range sadb.RangePrefixes(l.StartAddr, l.EndAddr) {
		for _, rp := range sadb.RangePrefixes(r.StartAddr, r.EndAddr) {
			base := sadb.Policy{Action: sadb.Protect, Level: sadb.Required, Protocol: sadb.ESP, Mode: c.suite.mode, ReqID: c.reqID}
			out, in := base, base
			out.Selector = sadb.Selector{Src: lp, Dst: rp, Proto: proto, SrcPort: port(l), DstPort: port(r)}
			out.Direction = sadb.Out
			in.Selector = sadb.Selector{Src: rp, Dst: lp, Proto: proto, SrcPort: port(r), DstPort: port(l)}
			in.Direction = sadb.In
			if c.suite.mode == sadb.Tunnel {
				out.TunnelSrc, out.TunnelDst = local, remote
				in.TunnelSrc, in.TunnelDst = remote, local
				fwd := in
				fwd.Direction = sadb.Fwd
				ps = append(ps, &out, &in, &fwd)
				continue
			}
			ps = append(ps, &out, &in)
		}
	}
	return ps
}

// installIPsec hands an SA pair and its policies to the data plane. It
// is a call-out: no SA lock is held.
func (e *Engine) installIPsec(c *ipsecSA) error {
	if err := e.cfg.SADB.Install(c.inbound, c.outbound); err != nil {
		return err
	}
	ps := ipsecPolicies(c, c.outbound.Src, c.outbound.Dst)
	if err := e.addPolicies(ps); err != nil {
		_ = e.cfg.SADB.Remove(c.inbound.ID(), c.outbound.ID())
		return err
	}
	for _, p := range ps {
		c.policies = append(c.policies, p.ID())
	}
	return nil
}

// removeIPsecs takes SA pairs out of the data plane. No SA lock is held.
func (e *Engine) removeIPsecs(cs []*ipsecSA) {
	for _, c := range cs {
		if err := e.cfg.SADB.Remove(c.inbound.ID(), c.outbound.ID()); err != nil {
			e.log.Debug("removing IPsec SA", "version", "ikev1", "spi_in", fmt.Sprintf("%08x", c.inbound.SPI), "err", err)
		}
		if err := e.releasePolicies(c.policies); err != nil {
			e.log.Debug("removing IPsec policies", "version", "ikev1", "err", err)
		}
	}
}

// addPolicies installs policies and counts a reference to each: SA pairs
// with the same selectors (a rekey) share them. policyMu is taken without
// any SA lock; it serialises the reference counts with the backend and
// keeps the Observer's calls in order. The Observer hears of them even
// when the data plane keeps no policies: the policy layer follows SAs,
// not the backend.
func (e *Engine) addPolicies(ps []*sadb.Policy) error {
	e.policyMu.Lock()
	defer e.policyMu.Unlock()
	if e.cfg.SADB.Policies() {
		if err := e.cfg.SADB.AddPolicies(ps...); err != nil {
			return err
		}
	}
	for _, p := range ps {
		e.policyRefs[p.ID()]++
	}
	if o := e.cfg.Observer; o != nil {
		o.PoliciesAdded(ps)
	}
	return nil
}

func (e *Engine) releasePolicies(ids []sadb.PolicyID) error {
	if len(ids) == 0 {
		return nil
	}
	e.policyMu.Lock()
	defer e.policyMu.Unlock()
	var gone []sadb.PolicyID
	for _, id := range ids {
		if e.policyRefs[id]--; e.policyRefs[id] <= 0 {
			delete(e.policyRefs, id)
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if o := e.cfg.Observer; o != nil {
		o.PoliciesRemoved(gone)
	}
	if !e.cfg.SADB.Policies() {
		return nil
	}
	return e.cfg.SADB.DeletePolicies(gone...)
}

// startIPsecTimers arms an SA pair's rekey and expiry. The side that made
// it rekeys first; the other side waits a little longer, so that both do
// not rekey at once. Caller holds mu.
func (sa *isakmpSA) startIPsecTimers(c *ipsecSA) {
	life := c.suite.life
	soft := sa.conn.lifetime()
	if soft >= life {
		soft = life * 9 / 10
	}
	soft -= time.Duration(rand.Int64N(int64(soft/10) + 1)) // #nosec G404 -- jitter so that SAs made together do not rekey in lockstep; nothing secret
	if !c.initiator {
		soft += min(life-soft, 2*sa.eng.cfg.RetransmitTimeout) / 2
	}
	elapsed := sa.eng.cfg.Now().Sub(c.inbound.Installed)
	c.timers = append(c.timers,
		sa.after(max(soft-elapsed, 0), func() { sa.rekeyIPsec(c) }),
		sa.after(max(life-elapsed, 0), func() { sa.deleteIPsec(c, "expired") }))
}

// rekeyIPsec starts a Quick Mode that replaces c. Caller holds mu.
func (sa *isakmpSA) rekeyIPsec(c *ipsecSA) {
	if c.rekeying || c.replacedBy != nil || c.deleting || sa.state != stateEstablished {
		return
	}
	// A newer pair with the same selectors (the peer rekeyed first) makes
	// this one redundant: the peer deletes it, or it expires.
	for _, o := range sa.ipsecs {
		if o != c && o.localTS == c.localTS && o.remoteTS == c.remoteTS && o.inbound.Installed.After(c.inbound.Installed) {
			c.replacedBy = o
			return
		}
	}
	c.rekeying = true
	if err := sa.startQuickMode(c, nil); err != nil {
		c.rekeying = false
		sa.log(levelWarn, "rekeying IPsec SA failed", "spi_in", fmt.Sprintf("%08x", c.inbound.SPI), "err", err.Error())
	}
}

// deleteIPsec deletes an SA pair: tells the peer (an Informational with a
// Delete naming our inbound SPI, RFC 2408 §3.15) and removes it from the
// data plane once the lock is released. Caller holds mu.
func (sa *isakmpSA) deleteIPsec(c *ipsecSA, reason string) {
	if c.deleting {
		return
	}
	if sa.peerGone {
		// The Delete would be lost: the pair waits for the ISAKMP SA that
		// takes it over (or goes with this one).
		c.deleteOnAdopt = reason
		return
	}
	c.deleting = true
	c.stopTimers()
	sa.removeChild(c)
	if sa.state == stateEstablished || sa.state == stateDeleting {
		sa.sendInformational([]isakmp.Payload{&isakmp.Delete{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoESP, SPISize: 4,
			SPIs: [][]byte{binary.BigEndian.AppendUint32(nil, c.inbound.SPI)}}})
	}
	sa.log(levelInfo, "IPsec SA deleted", "spi_in", fmt.Sprintf("%08x", c.inbound.SPI), "spi_out", fmt.Sprintf("%08x", c.outbound.SPI), "reason", reason)
	sa.later(func() { sa.eng.removeIPsecs([]*ipsecSA{c}) })
}

// removeChild takes c out of the SA's list. Caller holds mu.
func (sa *isakmpSA) removeChild(c *ipsecSA) {
	for i, o := range sa.ipsecs {
		if o == c {
			sa.ipsecs = append(sa.ipsecs[:i], sa.ipsecs[i+1:]...)
			return
		}
	}
}

// childByPeerSPI finds the pair whose outbound SPI the peer names in a
// Delete (its inbound one). Caller holds mu.
func (sa *isakmpSA) childByPeerSPI(spi uint32) *ipsecSA {
	for _, c := range sa.ipsecs {
		if c.outbound.SPI == spi {
			return c
		}
	}
	return nil
}

// childByOwnSPI finds the pair whose inbound SPI is spi. Caller holds mu.
func (sa *isakmpSA) childByOwnSPI(spi uint32) *ipsecSA {
	for _, c := range sa.ipsecs {
		if c.inbound.SPI == spi {
			return c
		}
	}
	return nil
}
