package metrics

import (
	"cmp"
	"maps"
	"slices"

	"github.com/iked/iked/auth/kerberos"
	"github.com/prometheus/client_golang/prometheus"
)

// Kerberos metric descriptions (docs/kerberos.md, "Metrics").
var (
	descKrbAuth = prometheus.NewDesc("iked_kerberos_authentications_total",
		"Kerberos authentications, by role of this side, result and error (Kerberos error name or iked reason; empty on success).",
		[]string{"role", "result", "error"}, nil)
	descKrbCache = prometheus.NewDesc("iked_kerberos_ticket_cache_lookups_total",
		"Service ticket lookups by an initiator, by result (hit: cached ticket used; miss: KDC asked).", []string{"result"}, nil)
	descKrbKDC = prometheus.NewDesc("iked_kerberos_kdc_requests_total",
		"AS and TGS exchanges sent to a KDC (round trips).", nil, nil)
	descKrbKDCFail = prometheus.NewDesc("iked_kerberos_kdc_failures_total",
		"KDC exchanges that got no ticket (KDC error or no KDC reachable).", nil, nil)
	descKrbReloads = prometheus.NewDesc("iked_kerberos_keytab_reloads_total",
		"Keytab files read again after they changed.", nil, nil)
	descKrbRetries = prometheus.NewDesc("iked_kerberos_retries_total",
		"Handshakes restarted once after a KERBEROS_ERROR a fresh ticket or clock can cure.", nil, nil)
)

type kerberosCollector struct {
	read func() kerberos.Stats
	// when, if set, says whether Kerberos is configured: the families are
	// served only then.
	when func() bool
}

// KerberosCollector returns a collector of the process's Kerberos counters
// (kerberos.ReadStats), read on each scrape. Register it next to
// NewCollector when the kerberos method is compiled in.
func KerberosCollector() prometheus.Collector {
	return NewKerberosCollector(kerberos.ReadStats)
}

// KerberosCollectorWhen is KerberosCollector serving its families only
// while configured reports that a connection or a policy authenticates
// with Kerberos (a reload may add or remove it).
func KerberosCollectorWhen(configured func() bool) prometheus.Collector {
	return &kerberosCollector{read: kerberos.ReadStats, when: configured}
}

// NewKerberosCollector returns a collector over read, for tests.
func NewKerberosCollector(read func() kerberos.Stats) prometheus.Collector {
	return &kerberosCollector{read: read}
}

// Describe implements prometheus.Collector.
func (c *kerberosCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descKrbAuth, descKrbCache, descKrbKDC, descKrbKDCFail, descKrbReloads, descKrbRetries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *kerberosCollector) Collect(ch chan<- prometheus.Metric) {
	if c.when != nil && !c.when() {
		return
	}
	s := c.read()
	auths := maps.Clone(s.Authentications)
	if auths == nil {
		auths = map[kerberos.Outcome]uint64{}
	}
	for _, role := range knownRoles {
		o := kerberos.Outcome{Role: role, Result: "success"}
		auths[o] += 0
	}
	keys := slices.SortedFunc(maps.Keys(auths), func(a, b kerberos.Outcome) int {
		return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.Result, b.Result), cmp.Compare(a.Error, b.Error))
	})
	for _, o := range keys {
		ch <- prometheus.MustNewConstMetric(descKrbAuth, prometheus.CounterValue, float64(auths[o]), o.Role, o.Result, o.Error)
	}
	ch <- prometheus.MustNewConstMetric(descKrbCache, prometheus.CounterValue, float64(s.TicketCacheHits), "hit")
	ch <- prometheus.MustNewConstMetric(descKrbCache, prometheus.CounterValue, float64(s.TicketCacheMisses), "miss")
	ch <- prometheus.MustNewConstMetric(descKrbKDC, prometheus.CounterValue, float64(s.KDCRequests))
	ch <- prometheus.MustNewConstMetric(descKrbKDCFail, prometheus.CounterValue, float64(s.KDCFailures))
	ch <- prometheus.MustNewConstMetric(descKrbReloads, prometheus.CounterValue, float64(s.KeytabReloads))
	ch <- prometheus.MustNewConstMetric(descKrbRetries, prometheus.CounterValue, float64(s.Retries))
}
