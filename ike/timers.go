package ike

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transport"
)

// Timers of an established IKE SA: Child SA and IKE SA rekeying before the
// lifetimes end, dead peer detection, NAT keepalives. Each is an entry in
// the engine's timer heaps (timerheap.go) whose function starts the
// exchange in its own goroutine; all of them stop when the SA dies, and a
// fired timer leaves the SA's list.

// DPDAction is what the engine does when dead peer detection declares the
// peer dead.
type DPDAction uint8

// DPD actions, as strongSwan names them.
const (
	// DPDClear removes the SAs.
	DPDClear DPDAction = iota
	// DPDRestart removes the SAs and initiates the connection again.
	DPDRestart
	// DPDHold removes the SAs and keeps the connection's policies, so that
	// traffic triggers a new negotiation (with trap policies).
	DPDHold
)

// natKeepaliveInterval is how often a host behind a NAT sends a keepalive
// (RFC 3948 §4: 20 seconds is the suggested default).
const natKeepaliveInterval = 20 * time.Second

// jitter shortens d by a random amount of up to a tenth, so that SAs made
// at the same moment (a reboot, a policy push) do not rekey in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}

// startTimers arms the SA's timers once it is established. Caller holds mu.
func (sa *ikeSA) startTimers() {
	c := sa.conn
	if c == nil {
		return
	}
	if c.IKERekeyTime > 0 {
		sa.after(jitter(c.IKERekeyTime), timerIKERekey)
	}
	if c.ReauthTime > 0 && c.Remote.Addr().IsValid() && !c.Remote.Addr().IsUnspecified() {
		sa.after(jitter(c.ReauthTime), timerReauth)
	}
	if c.DPDDelay > 0 {
		sa.after(c.DPDDelay, timerDPD)
	}
	if sa.natLocal && sa.encap {
		sa.after(sa.eng.cfg.NATKeepalive, timerKeepalive)
	}
}

// rekeyIKETimer rekeys the IKE SA when its rekey time comes.
func (sa *ikeSA) rekeyIKETimer() {
	if _, err := sa.rekeyIKE(context.Background()); err != nil && !errors.Is(err, errClosed) {
		sa.log(slog.LevelWarn, "IKE SA rekey failed, will retry", "err", err)
		sa.mu.Lock()
		if sa.state == stateEstablished && sa.rekeyedBy == nil && sa.conn != nil {
			sa.after(rekeyRetry(sa.conn.IKERekeyTime), timerIKERekey)
		}
		sa.mu.Unlock()
	}
}

// rekeyRetry is when a failed or deferred rekey is tried again (a
// collision answered TEMPORARY_FAILURE, §2.25; a peer that did not
// answer): soon, but after the exchange in its way is done, and never
// later than a tenth of the lifetime, so that it still happens in time.
func rekeyRetry(lifetime time.Duration) time.Duration {
	return jitter(min(10*time.Second, max(lifetime/10, 50*time.Millisecond)))
}

// reauthenticate replaces the IKE SA with a freshly authenticated one, make
// before break: the new IKE SA and its Child SA come up while the old ones
// still carry traffic, then the old IKE SA is deleted with its Child SAs.
func (sa *ikeSA) reauthenticate() {
	sa.mu.Lock()
	conn := sa.conn
	live := sa.state == stateEstablished && sa.rekeyedBy == nil
	sa.mu.Unlock()
	if !live {
		return
	}
	sa.log(slog.LevelInfo, "reauthenticating")
	ctx := context.Background()
	fresh, err := sa.eng.initiate(ctx, conn, true)
	if err != nil {
		sa.log(slog.LevelWarn, "reauthentication failed; the IKE SA stays until it is deleted or expires", "err", err)
		return
	}
	sa.eng.stats.rekeys("reauth")
	sa.log(slog.LevelInfo, "reauthenticated", "new_sa", fresh.id())
	sa.deleteIKE(ctx, "reauthenticated")
}

// startChildTimer arms the rekey of a Child SA. Caller holds mu.
func (sa *ikeSA) startChildTimer(c *childSA) {
	if sa.conn == nil || sa.conn.RekeyTime <= 0 {
		return
	}
	t := &saTimer{sa: sa, kind: timerChildRekey, child: c}
	sa.arm(t, jitter(sa.conn.RekeyTime))
}

// rekeyChild rekeys c if it is still current.
func (sa *ikeSA) rekeyChild(c *childSA) {
	sa.mu.Lock()
	live := sa.state == stateEstablished && c.rekeyedBy == nil && c.peerRekey == nil && !c.deleting && !c.rekeying && sa.hasChild(c)
	sa.mu.Unlock()
	if !live {
		return
	}
	if err := sa.createChild(context.Background(), c); err != nil && !errors.Is(err, errClosed) {
		sa.log(slog.LevelWarn, "Child SA rekey failed, will retry", "err", err)
		sa.mu.Lock()
		if sa.state == stateEstablished && sa.hasChild(c) && c.rekeyedBy == nil && c.peerRekey == nil && !c.deleting && sa.conn != nil {
			sa.arm(&saTimer{sa: sa, kind: timerChildRekey, child: c}, rekeyRetry(sa.conn.RekeyTime))
		}
		sa.mu.Unlock()
	}
}

func (sa *ikeSA) hasChild(c *childSA) bool {
	for _, x := range sa.children {
		if x == c {
			return true
		}
	}
	return false
}

// after arms a timer of kind to fire after d (in a new goroutine, unless
// the SA is dead by then). Caller holds mu.
func (sa *ikeSA) after(d time.Duration, kind timerKind) {
	sa.arm(&saTimer{sa: sa, kind: kind}, d)
}

// afterFunc arms a timer calling f after d. Caller holds mu.
func (sa *ikeSA) afterFunc(d time.Duration, f func()) {
	sa.arm(&saTimer{sa: sa, kind: timerFunc, f: f}, d)
}

// arm links t into the SA's timers and schedules it. Caller holds mu.
func (sa *ikeSA) arm(t *saTimer, d time.Duration) {
	t.next, sa.timers = sa.timers, t
	sa.eng.timers.schedule(t, d)
}

// unlinkTimer takes a fired timer out of the SA's list. Caller holds mu.
func (sa *ikeSA) unlinkTimer(t *saTimer) {
	for p := &sa.timers; *p != nil; p = &(*p).next {
		if *p == t {
			*p, t.next = t.next, nil
			return
		}
	}
}

// stopTimers stops every timer. Caller holds mu.
func (sa *ikeSA) stopTimers() {
	for t := sa.timers; t != nil; {
		next := t.next
		sa.eng.timers.stop(t)
		t.next = nil
		t = next
	}
	sa.timers = nil
}

// dpdCheck sends a liveness check when nothing came from the peer for the
// DPD delay (§2.4); a peer that does not answer within the retransmissions
// is dead, and the configured action follows.
func (sa *ikeSA) dpdCheck() {
	sa.mu.Lock()
	delay := sa.conn.DPDDelay
	idle := sa.eng.cfg.Now().Sub(sa.lastRecv)
	busy := len(sa.pending) > 0
	sa.mu.Unlock()
	if idle < delay || busy {
		sa.mu.Lock()
		sa.after(delay-min(idle, delay)+time.Millisecond, timerDPD)
		sa.mu.Unlock()
		return
	}
	_, err := sa.request(context.Background(), func(id uint32) ([][]byte, error) {
		return sa.sealMessage(wire.INFORMATIONAL, id, false, nil)
	})
	// A timeout has already applied the DPD action (see request).
	if err == nil {
		sa.mu.Lock()
		sa.after(delay, timerDPD)
		sa.mu.Unlock()
	}
}

// peerDead applies the DPD action after the peer stopped answering.
func (sa *ikeSA) peerDead() {
	sa.mu.Lock()
	if sa.state != stateEstablished {
		sa.mu.Unlock()
		return
	}
	conn := sa.conn
	sa.eng.stats.failure("dead_peer")
	sa.log(slog.LevelWarn, "peer is dead: no answer to retransmissions", "action", conn.DPDAction.String())
	if conn.DPDAction == DPDHold {
		// The outbound policies stay, as traps, before the Child SAs'
		// own references go: their traffic never leaks past them.
		sa.holdPolicies()
	}
	sa.destroyLocked("dead peer")
	sa.mu.Unlock()
	sa.eng.unregister(sa)
	if conn.DPDAction == DPDRestart {
		go func() {
			if _, err := sa.eng.Initiate(context.Background(), conn.Name); err != nil {
				sa.eng.log.Warn("restart after dead peer failed", "connection", conn.Name, "err", err)
			}
		}()
	}
}

// String returns "clear", "restart" or "hold".
func (a DPDAction) String() string {
	return [...]string{"clear", "restart", "hold"}[a]
}

// natKeepalive sends the one-octet 0xFF keepalive (RFC 3948 §2.3) that
// keeps the NAT's mapping alive, as raw UDP below the non-ESP marker.
func (sa *ikeSA) natKeepalive() {
	sa.mu.Lock()
	b, to := sa.bind, sa.remote
	sa.after(sa.eng.cfg.NATKeepalive, timerKeepalive)
	sa.mu.Unlock()
	if m, ok := b.(transport.NATTBind); ok {
		_ = m.SendKeepalive(to)
	}
}
