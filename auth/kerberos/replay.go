package kerberos

import (
	"crypto/sha256"
	"sync"
	"time"
)

// replayKey identifies one authenticator (RFC 4120 §3.2.3): the client,
// its timestamp, and a hash of the encrypted authenticator, so that two
// distinct authenticators with the same timestamp are told apart.
type replayKey struct {
	client string // principal@REALM
	ctime  int64  // seconds since the epoch
	cusec  int
	hash   [sha256.Size]byte
}

func newReplayKey(client string, ctime time.Time, cusec int, encAuthenticator []byte) replayKey {
	return replayKey{client: client, ctime: ctime.Unix(), cusec: cusec, hash: sha256.Sum256(encAuthenticator)}
}

// ReplayCache remembers the authenticators accepted within the clock skew
// window. It belongs to iked rather than to gokrb5, whose replay cache is
// process-global, keyed without the authenticator's hash and not used by
// APReq.Verify. Safe for concurrent use; the check and the insertion are one
// atomic step.
type ReplayCache struct {
	mu        sync.Mutex
	entries   map[replayKey]time.Time // key → when it may be forgotten
	lastSweep time.Time
	sweepAt   int
}

// NewReplayCache returns an empty cache.
func NewReplayCache() *ReplayCache {
	return &ReplayCache{entries: map[replayKey]time.Time{}, sweepAt: 4096}
}

// replays is the process's cache, shared by every kerberos Method so that
// an AP-REQ accepted by one connection cannot be replayed to another.
var replays = NewReplayCache()

// insert records k and reports whether it was new. An entry lives until the
// authenticator would anyway be refused for clock skew: its timestamp (or
// now, if later) plus the skew window.
func (c *ReplayCache) insert(k replayKey, ctime, now time.Time, skew time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Expired entries go periodically, and when the map has doubled since
	// the last sweep, so that the cost stays amortised O(1) per insert.
	if now.Sub(c.lastSweep) > skew/4 || len(c.entries) >= c.sweepAt {
		for key, until := range c.entries {
			if now.After(until) {
				delete(c.entries, key)
			}
		}
		c.lastSweep = now
		c.sweepAt = max(4096, 2*len(c.entries))
	}
	if until, ok := c.entries[k]; ok && !now.After(until) {
		return false
	}
	base := ctime
	if now.After(base) {
		base = now
	}
	c.entries[k] = base.Add(skew)
	return true
}

// Len is the number of remembered authenticators.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
