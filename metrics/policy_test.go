package metrics

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/iked/iked/policy/agent"
)

type fakePolicy struct{ s agent.Stats }

func (f fakePolicy) Stats(context.Context) (agent.Stats, error) { return f.s, nil }

func TestPolicyFlowsAreCountedByVersion(t *testing.T) {
	c := NewPolicyCollector(fakePolicy{agent.Stats{FlowsByVersion: map[string]map[string]uint64{
		"ikev2": {agent.FlowSecured: 3}, "ikev1": {agent.FlowSecured: 2, agent.FlowAuthMismatch: 1}}}})
	want := `# HELP iked_policy_flows_total Negotiations the assigned policy started, by outcome: secured, clear_fallback (the peer did not answer IKE), auth_mismatch (no authentication method in common; counted on both sides), pq_required (require_pq refused a peer without a post-quantum key exchange; IKEv2 only), failed; and by the IKE version they ended in (ikev2, ikev1).
# TYPE iked_policy_flows_total counter
iked_policy_flows_total{outcome="auth_mismatch",version="ikev1"} 1
iked_policy_flows_total{outcome="auth_mismatch",version="ikev2"} 0
iked_policy_flows_total{outcome="clear_fallback",version="ikev1"} 0
iked_policy_flows_total{outcome="clear_fallback",version="ikev2"} 0
iked_policy_flows_total{outcome="failed",version="ikev1"} 0
iked_policy_flows_total{outcome="failed",version="ikev2"} 0
iked_policy_flows_total{outcome="pq_required",version="ikev2"} 0
iked_policy_flows_total{outcome="secured",version="ikev1"} 2
iked_policy_flows_total{outcome="secured",version="ikev2"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "iked_policy_flows_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
