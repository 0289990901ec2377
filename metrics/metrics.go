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
	"strings"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source provides the statistics the collector exports; the IKE engine
// implements it. Stats is called once per scrape, possibly concurrently.
type Source interface {
	Stats() ike.Stats
}

// Versioned is a Source of one key exchange version, whose metrics carry
// the label version=Version ("ikev2", "ikev1"). The IKEv1 engine's
// statistics are converted to ike.Stats by the daemon (ISAKMP SAs count as
// IKE SAs, IPsec SAs as Child SAs).
type Versioned struct {
	Version string
	Source  Source
}

// Label values always exported, even at zero, so that dashboards and rate()
// see the series before the first event.
var (
	knownStates = []string{"connecting", "authenticating", "established", "deleting"}
	knownRoles  = []string{"initiator", "responder"}
	knownDrops  = []string{ike.DropMalformed, ike.DropUnknownSPI, ike.DropIntegrity, ike.DropInvalidMsgID, ike.DropUnexpected, ike.DropCookieRequired, ike.DropRateLimited, ike.DropHalfOpenLimit, ike.DropUnsupported, ike.DropOversize}
	// knownFailures are the handshake-failure labels the engine counts;
	// TestKnownFailuresCoverEngine checks the list against ike's sources.
	knownFailures = []string{"authentication_failed", "auth_mismatch", "childless_mismatch", "dead_peer", "half_open_timeout", "invalid_ke", "invalid_syntax",
		"no_connection", "no_proposal_chosen", "other", "pq_required", "timeout", "ts_unacceptable"}
	// knownNotifies are the error notifies of RFC 7296 and its updates
	// (types below 16384 that wire names) and COOKIE: what iked sends
	// when it refuses or defers.
	knownNotifies = errorNotifyNames()
)

func errorNotifyNames() []string {
	out := []string{wire.NotifyCookie.String()}
	for n := wire.NotifyType(1); n < 16384; n++ {
		if name := n.String(); !strings.HasPrefix(name, "NOTIFY_") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Metric descriptions.
var (
	descIKESAs = prometheus.NewDesc("iked_ike_sas",
		"Current IKE SAs by state.", []string{"state", "version"}, nil)
	descChildSAs = prometheus.NewDesc("iked_child_sas",
		"Current installed Child SAs.", []string{"version"}, nil)
	descByProposal = prometheus.NewDesc("iked_ike_sas_by_proposal",
		"Current established IKE SAs by negotiated proposal (proposal syntax) and whether it has a post-quantum key exchange.",
		[]string{"proposal", "post_quantum", "version"}, nil)
	descHalfOpen = prometheus.NewDesc("iked_half_open_ike_sas",
		"Current responder IKE SAs between IKE_SA_INIT and IKE_AUTH.", []string{"version"}, nil)
	descCompleted = prometheus.NewDesc("iked_handshakes_completed_total",
		"IKE SAs established, by role of this side.", []string{"role", "version"}, nil)
	descFailed = prometheus.NewDesc("iked_handshakes_failed_total",
		"IKE handshakes that failed, by reason.", []string{"reason", "version"}, nil)
	descRetransmissions = prometheus.NewDesc("iked_retransmissions_total",
		"Requests this side sent again after a timeout.", []string{"version"}, nil)
	descRetransmitsAnswered = prometheus.NewDesc("iked_retransmits_answered_total",
		"Peer retransmissions answered from the cached response.", []string{"version"}, nil)
	descReceived = prometheus.NewDesc("iked_packets_received_total",
		"IKE datagrams received.", []string{"version"}, nil)
	descSent = prometheus.NewDesc("iked_packets_sent_total",
		"IKE datagrams sent.", []string{"version"}, nil)
	descDropped = prometheus.NewDesc("iked_packets_dropped_total",
		"Received IKE datagrams not processed, by reason.", []string{"reason", "version"}, nil)
	descRekeys = prometheus.NewDesc("iked_rekeys_total",
		"Rekeys completed, by type: child, ike, reauth.", []string{"type", "version"}, nil)
	descNotifies = prometheus.NewDesc("iked_notifies_sent_total",
		"Error notifications sent, by notify type.", []string{"type", "version"}, nil)
	descNotifiesReceived = prometheus.NewDesc("iked_notifies_received_total",
		"Notifications peers sent in INFORMATIONAL requests, by notify type.", []string{"type", "version"}, nil)
	descDuration = prometheus.NewDesc("iked_handshake_duration_seconds",
		"Time from the start of IKE_SA_INIT to the end of IKE_AUTH.", []string{"version"}, nil)
)

// collector is a prometheus.Collector over the engines' Sources.
type collector struct {
	srcs []Versioned
}

// NewCollector returns a collector that exports src's statistics, reading
// src.Stats() on each collection, as the IKEv2 engine's (version="ikev2").
func NewCollector(src Source) prometheus.Collector {
	return NewVersionedCollector(Versioned{Version: "ikev2", Source: src})
}

// NewVersionedCollector returns a collector that exports each engine's
// statistics under its version label.
func NewVersionedCollector(srcs ...Versioned) prometheus.Collector {
	return &collector{srcs: srcs}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descIKESAs, descByProposal, descChildSAs, descHalfOpen, descCompleted, descFailed,
		descRetransmissions, descRetransmitsAnswered, descReceived, descSent,
		descDropped, descNotifies, descNotifiesReceived, descRekeys, descDuration,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.srcs {
		collectStats(ch, v.Version, v.Source.Stats())
	}
}

func collectStats(ch chan<- prometheus.Metric, version string, s ike.Stats) {
	ikeSAs := make(map[string]uint64, len(s.IKESAs))
	for state, n := range s.IKESAs {
		ikeSAs[state] = uint64(max(n, 0))
	}
	labelled(ch, descIKESAs, prometheus.GaugeValue, ikeSAs, knownStates, version)
	for _, p := range slices.Sorted(maps.Keys(s.EstablishedByProposal)) {
		c := s.EstablishedByProposal[p]
		ch <- prometheus.MustNewConstMetric(descByProposal, prometheus.GaugeValue, float64(c.SAs), p, strconv.FormatBool(c.PostQuantum), version)
	}
	ch <- prometheus.MustNewConstMetric(descChildSAs, prometheus.GaugeValue, float64(s.ChildSAs), version)
	ch <- prometheus.MustNewConstMetric(descHalfOpen, prometheus.GaugeValue, float64(s.HalfOpen), version)

	labelled(ch, descCompleted, prometheus.CounterValue, s.HandshakesCompleted, knownRoles, version)
	// The failure reasons and error notifies known in advance are the
	// IKEv2 engine's (TestKnownFailuresCoverEngine reads ike/).
	var failures, notifies, received []string
	if version == "ikev2" {
		failures, notifies = knownFailures, knownNotifies
		// A peer's AUTHENTICATION_FAILED after IKE_AUTH (§2.21.2) is
		// the one worth an alert from its first occurrence.
		received = []string{wire.NotifyAuthenticationFailed.String()}
	}
	labelled(ch, descFailed, prometheus.CounterValue, s.HandshakesFailed, failures, version)
	ch <- prometheus.MustNewConstMetric(descRetransmissions, prometheus.CounterValue, float64(s.Retransmissions), version)
	ch <- prometheus.MustNewConstMetric(descRetransmitsAnswered, prometheus.CounterValue, float64(s.RetransmitsAnswered), version)
	ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(s.PacketsReceived), version)
	ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(s.PacketsSent), version)
	labelled(ch, descDropped, prometheus.CounterValue, s.PacketsDropped, knownDrops, version)
	labelled(ch, descNotifies, prometheus.CounterValue, s.NotifiesSent, notifies, version)
	labelled(ch, descNotifiesReceived, prometheus.CounterValue, s.NotifiesReceived, received, version)
	labelled(ch, descRekeys, prometheus.CounterValue, s.Rekeys, []string{"child", "ike", "reauth"}, version)

	ch <- histogram(descDuration, s.HandshakeDuration, version)
}

// labelled sends one metric per label value in m, plus a zero one for each
// value in known that m lacks, all with the version label.
func labelled(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, m map[string]uint64, known []string, version string) {
	for _, k := range known {
		if _, ok := m[k]; !ok {
			ch <- prometheus.MustNewConstMetric(d, t, 0, k, version)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ch <- prometheus.MustNewConstMetric(d, t, float64(m[k]), k, version)
	}
}

// histogram converts a cumulative ike.Histogram. A malformed one (bounds
// and counts of different lengths) is reported as an
// invalid metric, which fails the scrape visibly instead of panicking.
func histogram(d *prometheus.Desc, h ike.Histogram, version string) prometheus.Metric {
	if len(h.Bounds) != len(h.Counts) {
		return prometheus.NewInvalidMetric(d, fmt.Errorf("histogram has %d bounds but %d counts", len(h.Bounds), len(h.Counts)))
	}
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum, buckets, version)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

// Handler returns an HTTP handler serving, in the Prometheus exposition
// format, src's metrics together with the Go runtime and process metrics
// (go_*, process_*). Each call uses its own registry.
//
// more are further collectors to serve, such as NewDataPlaneCollector,
// NewTunnelCollector, and KerberosCollectorWhen for a daemon that may
// authenticate with Kerberos: families of a method not configured are not
// served.
func Handler(src Source, more ...prometheus.Collector) http.Handler {
	return VersionedHandler([]Versioned{{Version: "ikev2", Source: src}}, more...)
}

// VersionedHandler is Handler for several engines, each under its version
// label.
func VersionedHandler(srcs []Versioned, more ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(more...)
	// The per-address limits are the IKEv2 engine's alone (no version
	// label): the first source that has them.
	for _, v := range srcs {
		if pl, ok := v.Source.(PeerLimitSource); ok {
			reg.MustRegister(NewPeerLimitCollector(pl))
			break
		}
	}
	reg.MustRegister(
		NewVersionedCollector(srcs...),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
