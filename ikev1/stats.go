package ikev1

import (
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a packet is dropped, as metric labels (the IKEv2 engine's, and
// IKEv1's own: replay, unauthenticated).
const (
	DropMalformed       = "malformed"
	DropUnknownSPI      = "unknown_spi"
	DropIntegrity       = "integrity"
	DropUnexpected      = "unexpected"
	DropRateLimited     = "rate_limited"
	DropUnsupported     = "unsupported"
	DropReplay          = "replay"
	DropUnauthenticated = "unauthenticated"
)

// Stats is a snapshot of the engine's counters, in the IKEv2 engine's
// shape so that metrics reads both alike.
type Stats struct {
	// ISAKMPSAs counts ISAKMP SAs by state ("connecting", "established").
	ISAKMPSAs map[string]int
	// IPsecSAs counts installed IPsec SA pairs.
	IPsecSAs int
	// HalfOpen counts responder SAs in Main Mode.
	HalfOpen int
	// HandshakesCompleted counts Main Modes completed, by role.
	HandshakesCompleted map[string]uint64
	// HandshakesFailed counts failed Main Modes and Quick Modes, by reason.
	HandshakesFailed map[string]uint64
	// Retransmissions counts messages sent again after a timeout;
	// RetransmitsAnswered the peer's retransmissions answered from cache.
	Retransmissions, RetransmitsAnswered uint64
	// PacketsReceived and PacketsSent count datagrams.
	PacketsReceived, PacketsSent uint64
	// PacketsDropped counts datagrams not processed, by reason.
	PacketsDropped map[string]uint64
	// NotifiesSent counts error notifications sent, by name.
	NotifiesSent map[string]uint64
	// Rekeys counts rekeys, by "isakmp" or "ipsec".
	Rekeys map[string]uint64
	// HandshakeDuration is a histogram of Main Mode durations in seconds.
	HandshakeDuration Histogram
}

// Histogram is a cumulative histogram snapshot in Prometheus's shape.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

var handshakeBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

type counters struct {
	received, sent      atomic.Uint64
	retransmissions     atomic.Uint64
	retransmitsAnswered atomic.Uint64

	mu        sync.Mutex
	completed map[string]uint64
	failed    map[string]uint64
	dropped   map[string]uint64
	notifies  map[string]uint64
	rekeyed   map[string]uint64
	hist      Histogram
}

func newCounters() *counters {
	return &counters{completed: map[string]uint64{}, failed: map[string]uint64{}, dropped: map[string]uint64{},
		notifies: map[string]uint64{}, rekeyed: map[string]uint64{},
		hist: Histogram{Bounds: handshakeBuckets, Counts: make([]uint64, len(handshakeBuckets))}}
}

func (c *counters) inc(m map[string]uint64, label string) {
	c.mu.Lock()
	m[label]++
	c.mu.Unlock()
}

func (c *counters) drop(reason string)    { c.inc(c.dropped, reason) }
func (c *counters) failure(reason string) { c.inc(c.failed, reason) }
func (c *counters) notify(name string)    { c.inc(c.notifies, name) }
func (c *counters) rekeys(kind string)    { c.inc(c.rekeyed, kind) }

func (c *counters) completedHandshake(role string, d time.Duration) {
	s := d.Seconds()
	c.mu.Lock()
	c.completed[role]++
	for i, b := range c.hist.Bounds {
		if s <= b {
			c.hist.Counts[i]++
		}
	}
	c.hist.Count++
	c.hist.Sum += s
	c.mu.Unlock()
}

func copyMap(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Stats returns a snapshot of the engine's counters and gauges.
func (e *Engine) Stats() Stats {
	c := e.stats
	s := Stats{ISAKMPSAs: map[string]int{},
		PacketsReceived: c.received.Load(), PacketsSent: c.sent.Load(),
		Retransmissions: c.retransmissions.Load(), RetransmitsAnswered: c.retransmitsAnswered.Load()}
	c.mu.Lock()
	s.HandshakesCompleted, s.HandshakesFailed = copyMap(c.completed), copyMap(c.failed)
	s.PacketsDropped, s.NotifiesSent, s.Rekeys = copyMap(c.dropped), copyMap(c.notifies), copyMap(c.rekeyed)
	s.HandshakeDuration = Histogram{Bounds: c.hist.Bounds, Counts: append([]uint64(nil), c.hist.Counts...), Count: c.hist.Count, Sum: c.hist.Sum}
	c.mu.Unlock()
	for _, sa := range e.allSAs() {
		sa.mu.Lock()
		if sa.state != stateDead {
			s.ISAKMPSAs[sa.state.String()]++
			if sa.state == stateMainMode && !sa.initiator {
				s.HalfOpen++
			}
		}
		s.IPsecSAs += len(sa.ipsecs)
		sa.mu.Unlock()
	}
	return s
}
