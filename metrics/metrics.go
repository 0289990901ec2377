// Package metrics exports the IKE engine's statistics to Prometheus.
//
// The collector reads a fresh ike.Stats snapshot on every scrape instead of
// updating Prometheus counters throughout the engine; the metrics are
// documented in docs/metrics.md.
package metrics

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/iked/iked/ike"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source provides the statistics the collector exports; the IKE engine
// implements it. Stats is called once per scrape, possibly concurrently.
type Source interface {
	Stats() ike.Stats
}

// Label values always exported, even at zero, so that dashboards and rate()
// see the series before the first event.
var (
	knownStates = []string{"connecting", "authenticating", "established", "deleting"}
	knownRoles  = []string{"initiator", "responder"}
	knownDrops  = []string{ike.DropMalformed, ike.DropUnknownSPI, ike.DropIntegrity, ike.DropInvalidMsgID, ike.DropUnexpected, ike.DropCookieRequired, ike.DropRateLimited, ike.DropHalfOpenLimit, ike.DropUnsupported, ike.DropOversize}
)

// Metric descriptions.
var (
	descIKESAs = prometheus.NewDesc("iked_ike_sas",
		"Current IKE SAs by state.", []string{"state"}, nil)
	descChildSAs = prometheus.NewDesc("iked_child_sas",
		"Current installed Child SAs.", nil, nil)
	descByProposal = prometheus.NewDesc("iked_ike_sas_by_proposal",
		"Current established IKE SAs by negotiated proposal (proposal syntax) and whether it has a post-quantum key exchange.",
		[]string{"proposal", "post_quantum"}, nil)
	descHalfOpen = prometheus.NewDesc("iked_half_open_ike_sas",
		"Current responder IKE SAs between IKE_SA_INIT and IKE_AUTH.", nil, nil)
	descCompleted = prometheus.NewDesc("iked_handshakes_completed_total",
		"IKE SAs established, by role of this side.", []string{"role"}, nil)
	descFailed = prometheus.NewDesc("iked_handshakes_failed_total",
		"IKE handshakes that failed, by reason.", []string{"reason"}, nil)
	descRetransmissions = prometheus.NewDesc("iked_retransmissions_total",
		"Requests this side sent again after a timeout.", nil, nil)
	descRetransmitsAnswered = prometheus.NewDesc("iked_retransmits_answered_total",
		"Peer retransmissions answered from the cached response.", nil, nil)
	descReceived = prometheus.NewDesc("iked_packets_received_total",
		"IKE datagrams received.", nil, nil)
	descSent = prometheus.NewDesc("iked_packets_sent_total",
		"IKE datagrams sent.", nil, nil)
	descDropped = prometheus.NewDesc("iked_packets_dropped_total",
		"Received IKE datagrams not processed, by reason.", []string{"reason"}, nil)
	descRekeys = prometheus.NewDesc("iked_rekeys_total",
		"Rekeys completed, by type: child, ike, reauth.", []string{"type"}, nil)
	descNotifies = prometheus.NewDesc("iked_notifies_sent_total",
		"Error notifications sent, by notify type.", []string{"type"}, nil)
	descDuration = prometheus.NewDesc("iked_handshake_duration_seconds",
		"Time from the start of IKE_SA_INIT to the end of IKE_AUTH.", nil, nil)
)

// collector is a prometheus.Collector over a Source.
type collector struct {
	src Source
}

// NewCollector returns a collector that exports src's statistics, reading
// src.Stats() on each collection.
func NewCollector(src Source) prometheus.Collector {
	return &collector{src: src}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descIKESAs, descByProposal, descChildSAs, descHalfOpen, descCompleted, descFailed,
		descRetransmissions, descRetransmitsAnswered, descReceived, descSent,
		descDropped, descNotifies, descRekeys, descDuration,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()

	ikeSAs := make(map[string]uint64, len(s.IKESAs))
	for state, n := range s.IKESAs {
		ikeSAs[state] = uint64(max(n, 0))
	}
	labelled(ch, descIKESAs, prometheus.GaugeValue, ikeSAs, knownStates)
	for _, p := range slices.Sorted(maps.Keys(s.EstablishedByProposal)) {
		c := s.EstablishedByProposal[p]
		ch <- prometheus.MustNewConstMetric(descByProposal, prometheus.GaugeValue, float64(c.SAs), p, strconv.FormatBool(c.PostQuantum))
	}
	ch <- prometheus.MustNewConstMetric(descChildSAs, prometheus.GaugeValue, float64(s.ChildSAs))
	ch <- prometheus.MustNewConstMetric(descHalfOpen, prometheus.GaugeValue, float64(s.HalfOpen))

	labelled(ch, descCompleted, prometheus.CounterValue, s.HandshakesCompleted, knownRoles)
	labelled(ch, descFailed, prometheus.CounterValue, s.HandshakesFailed, nil)
	ch <- prometheus.MustNewConstMetric(descRetransmissions, prometheus.CounterValue, float64(s.Retransmissions))
	ch <- prometheus.MustNewConstMetric(descRetransmitsAnswered, prometheus.CounterValue, float64(s.RetransmitsAnswered))
	ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(s.PacketsReceived))
	ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(s.PacketsSent))
	labelled(ch, descDropped, prometheus.CounterValue, s.PacketsDropped, knownDrops)
	labelled(ch, descNotifies, prometheus.CounterValue, s.NotifiesSent, nil)
	labelled(ch, descRekeys, prometheus.CounterValue, s.Rekeys, []string{"child", "ike", "reauth"})

	ch <- histogram(descDuration, s.HandshakeDuration)
}

// labelled sends one metric per label value in m, plus a zero one for each
// value in known that m lacks.
func labelled(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, m map[string]uint64, known []string) {
	for _, k := range known {
		if _, ok := m[k]; !ok {
			ch <- prometheus.MustNewConstMetric(d, t, 0, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ch <- prometheus.MustNewConstMetric(d, t, float64(m[k]), k)
	}
}

// histogram converts a cumulative ike.Histogram. A malformed one (bounds
// and counts of different lengths) is reported as an
// invalid metric, which fails the scrape visibly instead of panicking.
func histogram(d *prometheus.Desc, h ike.Histogram) prometheus.Metric {
	if len(h.Bounds) != len(h.Counts) {
		return prometheus.NewInvalidMetric(d, fmt.Errorf("histogram has %d bounds but %d counts", len(h.Bounds), len(h.Counts)))
	}
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum, buckets)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

// Handler returns an HTTP handler serving, in the Prometheus exposition
// format, src's metrics together with the Go runtime and process metrics
// (go_*, process_*). Each call uses its own registry.
//
// more are further collectors to serve, such as NewDataPlaneCollector.
func Handler(src Source, more ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(more...)
	if pl, ok := src.(PeerLimitSource); ok {
		reg.MustRegister(NewPeerLimitCollector(pl))
	}
	reg.MustRegister(
		NewCollector(src),
		KerberosCollector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
