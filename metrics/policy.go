package metrics

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iked/iked/policy/agent"
)

var (
	descPolicyPackets = prometheus.NewDesc("iked_policy_packets_total",
		"Packets by what the assigned IPsec policy did with them: secured (sent into the data plane), clear_permit, clear_fallback, blocked, clear_accepted (inbound clear traffic a negotiate rule accepts unsecured), refused (inbound clear traffic a negotiate rule requires secured).",
		[]string{"outcome"}, nil)
	descPolicyFlows = prometheus.NewDesc("iked_policy_flows_total",
		"Negotiations the assigned policy started, by outcome: secured, clear_fallback (the peer did not answer IKE), auth_mismatch (no authentication method in common; counted on both sides), pq_required (require_pq refused a peer without a post-quantum key exchange; IKEv2 only), failed; and by the IKE version they ended in (ikev2, ikev1).",
		[]string{"outcome", "version"}, nil)
)

// packetOutcomes names the enforcement's counters as metric labels.
var packetOutcomes = map[string]string{
	"secured": "secured", "permitted": "clear_permit", "fallback": "clear_fallback", "blocked": "blocked",
	"unsecured_in": "clear_accepted", "refused": "refused",
}

// PolicySource is the policy agent's counters.
type PolicySource interface {
	Stats(ctx context.Context) (agent.Stats, error)
}

type policyCollector struct{ src PolicySource }

// NewPolicyCollector exports the assigned policy's packet and flow
// counters.
func NewPolicyCollector(src PolicySource) prometheus.Collector { return policyCollector{src: src} }

// Describe implements prometheus.Collector.
func (policyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPolicyPackets
	ch <- descPolicyFlows
}

// Collect implements prometheus.Collector. Every outcome is exported,
// zero included, so that rate() works from the first scrape.
func (c policyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.src.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descPolicyPackets, err)
	}
	names := make([]string, 0, len(packetOutcomes))
	for n := range packetOutcomes {
		names = append(names, n)
	}
	slices.Sort(names)
	if err == nil && len(s.Packets) > 0 { // none without enforcement (backend memory)
		for _, n := range names {
			ch <- prometheus.MustNewConstMetric(descPolicyPackets, prometheus.CounterValue, float64(s.Packets[n]), packetOutcomes[n])
		}
	}
	for _, v := range []string{"ikev2", "ikev1"} {
		for _, f := range []string{agent.FlowSecured, agent.FlowClearFallback, agent.FlowAuthMismatch, agent.FlowPQRequired, agent.FlowFailed} {
			if f == agent.FlowPQRequired && v == "ikev1" {
				continue // IKEv1 has no post-quantum key exchange to require
			}
			ch <- prometheus.MustNewConstMetric(descPolicyFlows, prometheus.CounterValue, float64(s.FlowsByVersion[v][f]), f, v)
		}
	}
}
