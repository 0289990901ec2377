package metrics

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Names of the limits, the "limit" label of iked_limit.
const (
	// LimitCookieThreshold: half-open IKE SAs from which COOKIEs are
	// demanded (ike.cookie_threshold), compare iked_half_open_ike_sas.
	LimitCookieThreshold = "cookie_threshold"
	// LimitHalfOpenPerPeer: half-open IKE SAs one address may hold
	// (ike.half_open_per_peer).
	LimitHalfOpenPerPeer = "half_open_per_peer"
	// LimitAuthFailures: failed authentications after which an address is
	// blocked (ike.auth_failure_limit).
	LimitAuthFailures = "auth_failure_limit"
	// LimitPerSAIKESAs: IKE SAs up to which the per-SA series are
	// exported (metrics_per_sa_limit), compare sum(iked_ike_sas).
	LimitPerSAIKESAs = "metrics_per_sa_limit"
)

var descLimit = prometheus.NewDesc("iked_limit",
	"The configured limits that SA counts run into, by name; a limit that is off is not exported.", []string{"limit"}, nil)

type limitCollector struct{ limits func() map[string]int }

// NewLimitCollector exports the limits returned by limits (read on each
// scrape, so that a reload shows): those above 0 (0 or less means off, or,
// for the cookie threshold, a cookie always).
func NewLimitCollector(limits func() map[string]int) prometheus.Collector {
	return limitCollector{limits: limits}
}

// Describe implements prometheus.Collector.
func (limitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descLimit }

// Collect implements prometheus.Collector.
func (c limitCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.limits()
	for _, name := range slices.Sorted(maps.Keys(l)) {
		if v := l[name]; v > 0 {
			ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(v), name)
		}
	}
}
