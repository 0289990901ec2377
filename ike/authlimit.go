package ike

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Limits on what one peer address may cost a responder before it has
// authenticated (docs/security.md):
//
//   - Half-open IKE SAs per address (Config.HalfOpenPerPeer, like
//     strongSwan's block_threshold): an IKE_SA_INIT request from an address
//     that already holds that many is dropped. The check runs after the
//     cookie check, so when cookies are demanded the address has proven it
//     receives our answers and a spoofer cannot use up a victim's share.
//   - Failed authentications per address (Config.AuthFailureLimit within
//     Config.AuthFailureWindow): once that many AUTHENTICATION_FAILED answers
//     went to one address, its IKE_SA_INIT requests are dropped for one
//     window. Only a peer that completed IKE_SA_INIT from the address (and so
//     receives at it) can fail IKE_AUTH, so an off-path attacker cannot get
//     someone else's address blocked. Established SAs of a blocked address
//     keep running: only new handshakes are refused.
//
// The engine calls the hooks marked "authlimit hook" in responder.go and
// sa.go; everything else lives here.

// Drop reasons of the limits, as metric labels (see also ike/stats.go):
// DropRateLimited counts IKE_SA_INIT requests from a blocked address.
const (
	// DropHalfOpenLimit counts IKE_SA_INIT requests from an address that
	// holds Config.HalfOpenPerPeer half-open IKE SAs already.
	DropHalfOpenLimit = "half_open_limit"
)

// maxFailureEntries bounds the addresses the failure limiter remembers.
// Recording one takes a completed IKE_SA_INIT from that address, so the
// bound is only reached by an attacker with that many real addresses;
// past it, expired entries are swept and new addresses are not recorded
// until there is room (they fail open, and are counted).
const maxFailureEntries = 1 << 16

// sweepFailuresAt is the table size from which expired entries are swept,
// at most once per window.
const sweepFailuresAt = 1 << 10

// PeerLimitStats is a snapshot of the per-address limits, read by package
// metrics.
type PeerLimitStats struct {
	// Blocked counts the addresses whose IKE_SA_INIT requests are dropped
	// now because of failed authentications.
	Blocked int
	// Blocks counts the times an address was blocked.
	Blocks uint64
	// Unrecorded counts failed authentications not recorded because the
	// limiter's table was full.
	Unrecorded uint64
}

// peerLimits holds the per-address state. The zero value is ready. mu is
// a leaf lock: it is taken with an SA's mutex held and nothing is called
// with it held.
type peerLimits struct {
	mu         sync.Mutex
	halfOpen   map[netip.Addr]int           // half-open responder SAs by peer address
	failures   map[netip.Addr]*failureState // addresses with recent failures or blocked
	swept      time.Time                    // last sweep of failures
	blocks     uint64
	unrecorded uint64
}

// failureState counts one address's failed authentications in its window.
type failureState struct {
	first time.Time // first failure counted in the current window
	n     int       // failures in the current window
	until time.Time // blocked until then; zero when not blocked
}

// allowInit is the authlimit step of the responder's IKE_SA_INIT path,
// after the cookie check: nil when a new half-open SA may be made for
// peer, else the refusal that drops the request (counted).
func (e *Engine) allowInit(peer netip.Addr) error {
	l := &e.limits
	now := e.cfg.Now()
	l.mu.Lock()
	blocked := false
	if f := l.failures[peer]; f != nil && now.Before(f.until) {
		blocked = true
	}
	full := e.cfg.HalfOpenPerPeer > 0 && l.halfOpen[peer] >= e.cfg.HalfOpenPerPeer
	l.mu.Unlock()
	switch {
	case blocked:
		return dropRequest(DropRateLimited, errors.New("address blocked after failed authentications")).
			logged(slog.LevelDebug, "IKE_SA_INIT dropped: address blocked after failed authentications")
	case full:
		return dropRequest(DropHalfOpenLimit, errors.New("too many half-open IKE SAs from this address")).
			logged(slog.LevelDebug, "IKE_SA_INIT dropped: too many half-open IKE SAs from this address", "limit", e.cfg.HalfOpenPerPeer)
	}
	return nil
}

// halfOpenAdded and halfOpenRemoved are the authlimit hooks where a
// responder SA becomes half-open and where it stops being so (established
// or destroyed). peer is the address of its IKE_SA_INIT request.
func (e *Engine) halfOpenAdded(peer netip.Addr) {
	l := &e.limits
	l.mu.Lock()
	if l.halfOpen == nil {
		l.halfOpen = map[netip.Addr]int{}
	}
	l.halfOpen[peer]++
	l.mu.Unlock()
}

func (e *Engine) halfOpenRemoved(peer netip.Addr) {
	l := &e.limits
	l.mu.Lock()
	if n := l.halfOpen[peer]; n > 1 {
		l.halfOpen[peer] = n - 1
	} else {
		delete(l.halfOpen, peer)
	}
	l.mu.Unlock()
}

// authFailed is the authlimit hook of the responder's IKE_AUTH failure
// path: peer was answered AUTHENTICATION_FAILED.
func (e *Engine) authFailed(peer netip.Addr) {
	limit, window := e.cfg.AuthFailureLimit, e.cfg.AuthFailureWindow
	if limit <= 0 || window <= 0 {
		return
	}
	l := &e.limits
	now := e.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.failures); n >= maxFailureEntries || (n >= sweepFailuresAt && now.Sub(l.swept) >= window) {
		l.sweep(now, window)
		l.swept = now
	}
	f := l.failures[peer]
	if f == nil {
		if len(l.failures) >= maxFailureEntries {
			l.unrecorded++
			return
		}
		if l.failures == nil {
			l.failures = map[netip.Addr]*failureState{}
		}
		f = &failureState{}
		l.failures[peer] = f
	}
	if f.n == 0 || now.Sub(f.first) >= window {
		f.first, f.n = now, 0
	}
	f.n++
	if f.n >= limit {
		f.until, f.n = now.Add(window), 0
		l.blocks++
		e.log.Warn("address blocked after failed authentications: its IKE_SA_INIT requests are dropped",
			"peer", peer, "failures", limit, "for", window)
	}
}

// sweep forgets addresses whose window and block are both over. Caller
// holds mu.
func (l *peerLimits) sweep(now time.Time, window time.Duration) {
	for a, f := range l.failures {
		if !now.Before(f.until) && (f.n == 0 || now.Sub(f.first) >= window) {
			delete(l.failures, a)
		}
	}
}

// PeerLimitStats returns a snapshot of the per-address limits.
func (e *Engine) PeerLimitStats() PeerLimitStats {
	l := &e.limits
	now := e.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := PeerLimitStats{Blocks: l.blocks, Unrecorded: l.unrecorded}
	for _, f := range l.failures {
		if now.Before(f.until) {
			s.Blocked++
		}
	}
	return s
}
