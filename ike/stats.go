package ike

import (
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a packet is dropped, as metric labels.
const (
	DropMalformed      = "malformed"
	DropUnknownSPI     = "unknown_spi"
	DropIntegrity      = "integrity"
	DropInvalidMsgID   = "invalid_message_id"
	DropUnexpected     = "unexpected"
	DropCookieRequired = "cookie_required"
	DropRateLimited    = "rate_limited"
	DropUnsupported    = "unsupported"
	// DropOversize: a datagram, or a message reassembled from fragments,
	// larger than Config.MaxMessageSize.
	DropOversize = "oversize"
)

// Stats is a snapshot of the engine's counters, read by package metrics.
type Stats struct {
	// IKESAs counts IKE SAs by state ("connecting", "established", ...).
	IKESAs map[string]int
	// EstablishedByProposal counts established IKE SAs by negotiated
	// proposal, in proposal syntax ("aes256gcm16-prfsha384-x25519-ke1_mlkem768").
	EstablishedByProposal map[string]ProposalCount
	// ChildSAs counts installed Child SAs.
	ChildSAs int
	// HalfOpen counts responder IKE SAs between IKE_SA_INIT and IKE_AUTH.
	HalfOpen int
	// HandshakesCompleted counts IKE SAs established, by role.
	HandshakesCompleted map[string]uint64
	// HandshakesFailed counts handshakes that failed, by reason.
	HandshakesFailed map[string]uint64
	// Retransmissions counts requests this side sent again after a timeout.
	Retransmissions uint64
	// RetransmitsAnswered counts peer retransmissions answered from the
	// cached response (§2.1).
	RetransmitsAnswered uint64
	// PacketsReceived and PacketsSent count IKE datagrams.
	PacketsReceived, PacketsSent uint64
	// PacketsDropped counts received datagrams not processed, by reason.
	PacketsDropped map[string]uint64
	// NotifiesSent counts error notifications sent, by notify name.
	NotifiesSent map[string]uint64
	// NotifiesReceived counts the notifications peers sent in
	// INFORMATIONAL requests, by notify name.
	NotifiesReceived map[string]uint64
	// Rekeys counts Child SA and IKE SA rekeys completed, by "child" or "ike".
	Rekeys map[string]uint64
	// HandshakeDuration is a histogram of IKE_SA_INIT start to IKE_AUTH end.
	HandshakeDuration Histogram
}

// ProposalCount is how many established IKE SAs have one proposal, and
// whether it has a post-quantum key exchange.
type ProposalCount struct {
	SAs         int
	PostQuantum bool
}

// Histogram is a cumulative histogram snapshot in Prometheus's shape.
type Histogram struct {
	// Bounds are the upper bounds in seconds; Counts[i] counts observations
	// <= Bounds[i] (cumulative).
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// handshakeBuckets are the handshake duration bucket bounds in seconds: a
// loopback handshake takes well under a millisecond, a lossy WAN one seconds.
var handshakeBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// counters are the engine's live counters. Labelled counters live in maps
// under a mutex: they are touched on failures, not on the per-packet path.
type counters struct {
	received, sent      atomic.Uint64
	retransmissions     atomic.Uint64
	retransmitsAnswered atomic.Uint64

	mu        sync.Mutex
	completed map[string]uint64
	failed    map[string]uint64
	dropped   map[string]uint64
	notifies  map[string]uint64
	peerNotes map[string]uint64 // notifies in peers' INFORMATIONAL requests
	rekeyed   map[string]uint64
	hist      Histogram
}

func newCounters() *counters {
	return &counters{
		completed: map[string]uint64{},
		failed:    map[string]uint64{},
		dropped:   map[string]uint64{},
		notifies:  map[string]uint64{},
		peerNotes: map[string]uint64{},
		rekeyed:   map[string]uint64{},
		hist: Histogram{
			Bounds: handshakeBuckets,
			Counts: make([]uint64, len(handshakeBuckets)),
		},
	}
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

func (c *counters) notifyReceived(name string) { c.inc(c.peerNotes, name) }

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

// snapshot fills the counter part of a Stats.
func (c *counters) snapshot(s *Stats) {
	s.PacketsReceived = c.received.Load()
	s.PacketsSent = c.sent.Load()
	s.Retransmissions = c.retransmissions.Load()
	s.RetransmitsAnswered = c.retransmitsAnswered.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	s.HandshakesCompleted = copyMap(c.completed)
	s.HandshakesFailed = copyMap(c.failed)
	s.PacketsDropped = copyMap(c.dropped)
	s.NotifiesSent = copyMap(c.notifies)
	s.NotifiesReceived = copyMap(c.peerNotes)
	s.Rekeys = copyMap(c.rekeyed)
	s.HandshakeDuration = Histogram{
		Bounds: c.hist.Bounds,
		Counts: append([]uint64(nil), c.hist.Counts...),
		Count:  c.hist.Count,
		Sum:    c.hist.Sum,
	}
}
