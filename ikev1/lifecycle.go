package ikev1

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/transport"
)

// heard notes an authenticated message from the peer: the liveness clock,
// and the peer's address when a NAT changed its mapping (RFC 3947 lets
// the NAT-T port follow it). Caller holds mu.
func (sa *isakmpSA) heard(b transport.Bind, from netip.AddrPort) {
	sa.lastHeard = sa.eng.cfg.Now()
	sa.dpdPending, sa.dpdTries = 0, 0
	if from != sa.remote && sa.encap {
		sa.log(levelInfo, "peer's address changed", "from", sa.remote.String(), "to", from.String())
		sa.remote, sa.bind = from, b
	}
}

// startTimers arms an established SA's timers: phase 1 rekey and expiry,
// dead peer detection, NAT keepalives. Caller holds mu.
func (sa *isakmpSA) startTimers() {
	c := sa.conn
	life := sa.suite.life
	soft := c.ikeLifetime()
	if soft >= life {
		soft = life * 9 / 10
	}
	soft -= time.Duration(rand.Int64N(int64(soft/10) + 1)) // #nosec G404 -- jitter so that SAs made together do not rekey in lockstep; nothing secret
	if !sa.initiator {
		// The initiator rekeys first; the responder only if it did not.
		soft += (life - soft) / 2
	}
	sa.after(soft, sa.rekeyISAKMP)
	sa.after(life, func() { sa.later(func() { sa.retire("expired", nil, true) }) })
	if c.DPDDelay > 0 && sa.peerDPD {
		sa.after(c.DPDDelay, sa.dpdTick)
	}
	if sa.natLocal && sa.encap {
		sa.after(sa.eng.cfg.NATKeepalive, sa.keepalive)
	}
}

// dpdTick checks liveness (RFC 3706): after DPDDelay without word from
// the peer an R-U-THERE goes out, repeated on the retransmission
// schedule; when they all go unanswered the peer is dead. Caller holds mu.
func (sa *isakmpSA) dpdTick() {
	if sa.state != stateEstablished {
		return
	}
	c := sa.conn
	cfg := &sa.eng.cfg
	idle := cfg.Now().Sub(sa.lastHeard)
	if sa.dpdPending == 0 && idle < c.DPDDelay {
		sa.after(c.DPDDelay-idle, sa.dpdTick)
		return
	}
	if sa.dpdPending != 0 && sa.dpdTries >= cfg.RetransmitTries {
		sa.log(levelWarn, "peer is dead: no answer to R-U-THERE", "action", c.DPDAction.String())
		sa.eng.stats.failure("dpd_timeout")
		conn := c
		sa.destroyLocked("dead peer")
		if c.DPDAction == DPDRestart {
			sa.later(func() { go sa.eng.keepTrying(context.Background(), conn) })
		}
		return
	}
	if sa.dpdPending != 0 {
		sa.dpdTries++
		sa.eng.stats.retransmissions.Add(1)
	}
	sa.sendDPD()
	d := cfg.RetransmitTimeout
	for range sa.dpdTries {
		d = time.Duration(float64(d) * cfg.RetransmitBase)
	}
	sa.after(d, sa.dpdTick)
}

// keepalive sends a NAT keepalive (RFC 3948 §2.3) from behind a NAT.
// Caller holds mu.
func (sa *isakmpSA) keepalive() {
	if n, ok := sa.bind.(transport.NATTBind); ok && sa.state == stateEstablished {
		_ = n.SendKeepalive(sa.remote)
	}
	sa.after(sa.eng.cfg.NATKeepalive, sa.keepalive)
}

// rekeyISAKMP replaces the SA with a new Main Mode (IKEv1 has no phase 1
// rekey exchange): the new SA adopts the IPsec SAs, then the old one is
// deleted. Caller holds mu.
func (sa *isakmpSA) rekeyISAKMP() {
	if sa.state != stateEstablished || sa.rekeying {
		return
	}
	c := sa.conn
	if !c.Remote.Addr().IsValid() || c.Remote.Addr().IsUnspecified() {
		return // a responder for any peer cannot initiate; its peer rekeys or it expires
	}
	// The peer may have rekeyed already: a newer SA with it exists.
	sa.rekeying = true
	established := sa.established
	sa.later(func() {
		for _, o := range sa.eng.peersOf(sa) {
			o.mu.Lock()
			newer := o.established.After(established)
			o.unlock()
			if newer {
				sa.retire("replaced by the peer's rekey", o, true)
				return
			}
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), sa.eng.cfg.HalfOpenTimeout)
			defer cancel()
			n, err := sa.eng.mainMode(ctx, c)
			if err != nil {
				sa.mu.Lock()
				sa.rekeying = false
				sa.log(levelWarn, "phase 1 rekey failed", "err", err.Error())
				sa.unlock()
				return
			}
			sa.eng.stats.rekeys("isakmp")
			sa.retire("rekeyed by "+n.id(), n, true)
		}()
	})
}

// retire ends the ISAKMP SA when it expires or a phase 1 rekey replaced
// it: its IPsec SAs, which do not depend on it (RFC 2409 §5.5), move to
// successor, or to the newest other established ISAKMP SA with the peer,
// when there is one (as charon's IKEv1 adopts them); else they are
// deleted with it. tell sends the Deletes. Called without locks: finding a
// successor takes other SAs' locks.
//
// A Quick Mode still running on the SA is let finish first (see
// linger): the peer may have completed it already and keep its IPsec
// SA, which must then be among those handed over.
func (sa *isakmpSA) retire(reason string, successor *isakmpSA, tell bool) {
	sa.mu.Lock()
	if sa.dead {
		sa.unlock()
		return
	}
	if sa.linger(func() { sa.retire(reason, successor, tell) }) {
		sa.unlock()
		return
	}
	sa.unlock()
	if successor == nil {
		successor = sa.eng.newestPeerOf(sa)
	}
	sa.mu.Lock()
	if sa.dead {
		sa.unlock()
		return
	}
	if sa.quickModesPending() {
		// A Quick Mode began while no lock was held: start again.
		sa.unlock()
		sa.retire(reason, successor, tell)
		return
	}
	if successor == nil {
		if tell {
			sa.deleteISAKMPLocked(reason)
		} else {
			sa.destroyLocked(reason)
		}
		sa.unlock()
		return
	}
	children := sa.ipsecs
	sa.ipsecs = nil
	for _, c := range children {
		c.stopTimers()
	}
	if tell && (sa.state == stateEstablished || sa.state == stateDeleting) && sa.keys != nil {
		sa.sendInformational([]isakmp.Payload{&isakmp.Delete{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoISAKMP, SPISize: 16,
			SPIs: [][]byte{cookiePair(sa.icookie, sa.rcookie)}}})
	}
	sa.destroyLocked(reason)
	sa.unlock()
	if len(children) > 0 {
		successor.adopt(sa, children)
	}
}

// deleteISAKMPLocked deletes the ISAKMP SA and its IPsec SAs, telling
// the peer. Caller holds mu.
func (sa *isakmpSA) deleteISAKMPLocked(reason string) {
	if sa.dead {
		return
	}
	if (sa.state == stateEstablished || sa.state == stateDeleting) && sa.keys != nil {
		var spis [][]byte
		for _, c := range sa.ipsecs {
			c.deleting = true
			spis = append(spis, u32(c.inbound.SPI))
		}
		// Quick Modes past their second message: the peer may have
		// completed them (an initiator does on message 2) and must hear
		// that their IPsec SAs go too.
		for _, qm := range sa.qms {
			if qm.busy || !qm.initiator && qm.next == 3 {
				spis = append(spis, u32(qm.spi))
			}
		}
		if len(spis) > 0 {
			sa.sendInformational([]isakmp.Payload{&isakmp.Delete{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoESP, SPISize: 4, SPIs: spis}})
		}
		sa.sendInformational([]isakmp.Payload{&isakmp.Delete{DOI: isakmp.DOIIPsec, Protocol: isakmp.ProtoISAKMP, SPISize: 16,
			SPIs: [][]byte{cookiePair(sa.icookie, sa.rcookie)}}})
	}
	sa.destroyLocked(reason)
}

func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// deleteAll deletes the SA and its IPsec SAs, telling the peer.
func (sa *isakmpSA) deleteAll(reason string) {
	sa.mu.Lock()
	defer sa.unlock()
	sa.deleteISAKMPLocked(reason)
}

// destroyLocked forgets the SA: stops its timers, takes it out of the
// table and, once the lock is released, removes its IPsec SAs from the
// data plane. Caller holds mu.
func (sa *isakmpSA) destroyLocked(reason string) {
	if sa.dead {
		return
	}
	sa.dead = true
	prev := sa.state
	sa.state = stateDead
	for _, t := range sa.timers {
		t.Stop()
	}
	sa.timers = nil
	stopFlight(sa.p1Flight)
	for _, qm := range sa.qms {
		stopFlight(qm.flight)
		if qm.next != 0 {
			sa.eng.cfg.SADB.ReleaseSPI(qm.spi)
		}
		if qm.waiter != nil {
			qm.waiter <- errors.New("ikev1: ISAKMP SA deleted: " + reason)
			qm.waiter = nil
		}
	}
	sa.qms = nil
	sa.finishWaiters(errors.New("ikev1: ISAKMP SA deleted: " + reason))
	children := sa.ipsecs
	sa.ipsecs = nil
	for _, c := range children {
		c.stopTimers()
	}
	if sa.mm != nil && sa.mm.auth != nil {
		sa.mm.auth.Close()
	}
	if sa.keys != nil {
		sa.keys.wipe()
	}
	if prev != stateMainMode || sa.initiator {
		sa.log(levelInfo, "ISAKMP SA deleted", "reason", reason, "ipsec_sas", len(children))
	}
	sa.later(func() {
		sa.eng.unregister(sa)
		sa.eng.removeIPsecs(children)
	})
}

// destroy is destroyLocked for callers without the lock; with tell it
// sends the Deletes first.
func (sa *isakmpSA) destroy(reason string, tell bool) {
	sa.mu.Lock()
	defer sa.unlock()
	if tell {
		sa.deleteISAKMPLocked(reason)
		return
	}
	sa.destroyLocked(reason)
}

// Rekey rekeys the ISAKMP SA named by target ("isakmp-<n>") with a new
// Main Mode, to which its IPsec SAs move, and returns the new SA's ID; or,
// with childSPI (an IPsec SA's inbound SPI), replaces that IPsec SA with a
// new Quick Mode, make before break, and returns target.
func (e *Engine) Rekey(ctx context.Context, target string, childSPI uint32) (string, error) {
	var sa *isakmpSA
	for _, s := range e.allSAs() {
		if s.id() == target {
			sa = s
		}
	}
	if sa == nil {
		return "", errors.New("no ISAKMP SA " + target)
	}
	sa.mu.Lock()
	conn, state := sa.conn, sa.state
	var child *ipsecSA
	if childSPI != 0 {
		child = sa.childByOwnSPI(childSPI)
		if child != nil && !child.rekeying && child.replacedBy == nil {
			child.rekeying = true
		} else {
			child = nil
		}
	}
	sa.unlock()
	if state != stateEstablished {
		return "", errors.New("ISAKMP SA " + target + " is " + state.String())
	}
	if childSPI != 0 {
		if child == nil {
			return "", fmt.Errorf("ISAKMP SA %s has no IPsec SA with inbound SPI %08x to rekey", target, childSPI)
		}
		return target, sa.quickModeWait(ctx, child)
	}
	n, err := e.mainMode(ctx, conn)
	if err != nil {
		return "", err
	}
	e.stats.rekeys("isakmp")
	sa.retire("rekeyed by "+n.id(), n, true)
	return n.id(), nil
}
