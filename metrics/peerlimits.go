package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iked/iked/ike"
)

var (
	descBlockedPeers = prometheus.NewDesc("iked_blocked_peers",
		"Peer addresses whose IKE_SA_INIT requests are dropped now because of failed authentications (ike.auth_failure_limit).", nil, nil)
	descPeerBlocks = prometheus.NewDesc("iked_peer_blocks_total",
		"Times a peer address was blocked after ike.auth_failure_limit failed authentications.", nil, nil)
	descUnrecordedFailures = prometheus.NewDesc("iked_auth_failures_unrecorded_total",
		"Failed authentications the limiter could not record because its table of addresses was full.", nil, nil)
)

// PeerLimitSource is the engine's per-address limits (ike/authlimit.go);
// Handler exports them when its Source has them.
type PeerLimitSource interface {
	PeerLimitStats() ike.PeerLimitStats
}

type peerLimitCollector struct{ src PeerLimitSource }

// NewPeerLimitCollector exports the per-address limits: addresses blocked
// now, blocks imposed, failures not recorded. The drops themselves are
// iked_packets_dropped_total{reason="rate_limited"} and
// {reason="half_open_limit"}.
func NewPeerLimitCollector(src PeerLimitSource) prometheus.Collector {
	return peerLimitCollector{src: src}
}

// Describe implements prometheus.Collector.
func (peerLimitCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBlockedPeers
	ch <- descPeerBlocks
	ch <- descUnrecordedFailures
}

// Collect implements prometheus.Collector.
func (c peerLimitCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.PeerLimitStats()
	ch <- prometheus.MustNewConstMetric(descBlockedPeers, prometheus.GaugeValue, float64(s.Blocked))
	ch <- prometheus.MustNewConstMetric(descPeerBlocks, prometheus.CounterValue, float64(s.Blocks))
	ch <- prometheus.MustNewConstMetric(descUnrecordedFailures, prometheus.CounterValue, float64(s.Unrecorded))
}
