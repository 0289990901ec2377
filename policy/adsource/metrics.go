package adsource

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports a Source's fetches and status to Prometheus.
type Collector struct {
	s                    *Source
	fetches, read, cache *prometheus.Desc
}

// NewCollector returns a collector of s.
func NewCollector(s *Source) *Collector {
	return &Collector{s: s,
		fetches: prometheus.NewDesc("iked_policy_source_fetches_total", "Reads of the assigned policy from the directory, by outcome (changed, unchanged, refused, error, cache).", []string{"outcome"}, nil),
		read:    prometheus.NewDesc("iked_policy_source_read_timestamp_seconds", "When the running policy was read from a domain controller.", nil, nil),
		cache:   prometheus.NewDesc("iked_policy_source_from_cache", "1 when the running policy came from the cache (no domain controller answered at start), 0 when from the directory.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.fetches
	ch <- c.read
	ch <- c.cache
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	for _, o := range []string{OutcomeChanged, OutcomeUnchanged, OutcomeRefused, OutcomeError, OutcomeCache} {
		ch <- prometheus.MustNewConstMetric(c.fetches, prometheus.CounterValue, float64(st.Fetches[o]), o)
	}
	if !st.ReadAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.read, prometheus.GaugeValue, float64(st.ReadAt.UnixNano())/1e9)
	}
	v := 0.0
	if st.Origin == FromCache {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.cache, prometheus.GaugeValue, v)
}
