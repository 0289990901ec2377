package metrics

import (
	"slices"

	"github.com/iked/iked/sadb"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descESPSent = prometheus.NewDesc("iked_esp_packets_sent_total",
		"ESP and AH packets the data plane sent.", nil, nil)
	descESPReceived = prometheus.NewDesc("iked_esp_packets_received_total",
		"ESP and AH packets the data plane received and accepted (authentic, not replayed).", nil, nil)
	descESPDropped = prometheus.NewDesc("iked_esp_packets_dropped_total",
		"Packets the data plane did not carry, by reason (replay, integrity, unknown_spi, malformed, policy, no_route, send_error).",
		[]string{"reason"}, nil)
	descDataPlaneEvents = prometheus.NewDesc("iked_dataplane_events_total",
		"What the data plane did besides carrying packets, by event (tso_segmented, gro_coalesced, acquire_held, acquire_released).",
		[]string{"event"}, nil)
)

// dataPlaneCollector reads a packet-moving backend's counters on each scrape.
type dataPlaneCollector struct{ src sadb.StatsReporter }

// NewDataPlaneCollector exports the counters of a data plane that moves
// packets (the userspace backend).
func NewDataPlaneCollector(src sadb.StatsReporter) prometheus.Collector {
	return dataPlaneCollector{src: src}
}

// Describe implements prometheus.Collector.
func (dataPlaneCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descESPSent
	ch <- descESPReceived
	ch <- descESPDropped
	ch <- descDataPlaneEvents
}

// Collect implements prometheus.Collector.
func (c dataPlaneCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.DataPlaneStats()
	ch <- prometheus.MustNewConstMetric(descESPSent, prometheus.CounterValue, float64(s.Sent))
	ch <- prometheus.MustNewConstMetric(descESPReceived, prometheus.CounterValue, float64(s.Received))
	reasons := make([]string, 0, len(s.Dropped))
	for r := range s.Dropped {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		ch <- prometheus.MustNewConstMetric(descESPDropped, prometheus.CounterValue, float64(s.Dropped[r]), r)
	}
	events := make([]string, 0, len(s.Events))
	for e := range s.Events {
		events = append(events, e)
	}
	slices.Sort(events)
	for _, e := range events {
		ch <- prometheus.MustNewConstMetric(descDataPlaneEvents, prometheus.CounterValue, float64(s.Events[e]), e)
	}
}
