package kerberos

import (
	"sync"
	"sync/atomic"
)

// Outcome labels one authentication attempt in Stats.
type Outcome struct {
	// Role is "initiator" (verifying the responder, or refused by it) or
	// "responder" (verifying an AP-REQ).
	Role string
	// Result is "success" or "failure".
	Result string
	// Error is the Kerberos error name (e.g. "KRB_AP_ERR_SKEW") or an iked
	// reason ("principal_not_allowed", "auth_mismatch", "malformed",
	// "kdc_unreachable", "kdc_error"); empty on success.
	Error string
}

// Stats is a snapshot of the package's counters, summed over every
// kerberos Method of the process.
type Stats struct {
	// Authentications counts attempts by outcome.
	Authentications map[Outcome]uint64
	// TicketCacheHits and TicketCacheMisses count service ticket lookups
	// by an initiator.
	TicketCacheHits, TicketCacheMisses uint64
	// KDCRequests counts AS and TGS exchanges sent to a KDC; KDCFailures
	// those that got no ticket (KDC error or unreachable).
	KDCRequests, KDCFailures uint64
	// KeytabReloads counts keytab files read again after they changed.
	KeytabReloads uint64
	// Retries counts handshakes restarted once after a KERBEROS_ERROR.
	Retries uint64
}

type counters struct {
	mu                       sync.Mutex
	auths                    map[Outcome]uint64
	hits, misses             atomic.Uint64
	kdcRequests, kdcFailures atomic.Uint64
	keytabReloads, retries   atomic.Uint64
}

var stats = &counters{auths: map[Outcome]uint64{}}

func (c *counters) auth(role, errName string) {
	o := Outcome{Role: role, Result: "success", Error: errName}
	if errName != "" {
		o.Result = "failure"
	}
	c.mu.Lock()
	c.auths[o]++
	c.mu.Unlock()
}

// ReadStats returns a snapshot of the counters.
func ReadStats() Stats {
	s := Stats{Authentications: map[Outcome]uint64{}}
	stats.mu.Lock()
	for k, v := range stats.auths {
		s.Authentications[k] = v
	}
	stats.mu.Unlock()
	s.TicketCacheHits, s.TicketCacheMisses = stats.hits.Load(), stats.misses.Load()
	s.KDCRequests, s.KDCFailures = stats.kdcRequests.Load(), stats.kdcFailures.Load()
	s.KeytabReloads, s.Retries = stats.keytabReloads.Load(), stats.retries.Load()
	return s
}
