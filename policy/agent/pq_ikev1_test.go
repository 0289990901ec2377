package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/policy"
)

// TestRequirePQWithAutoIsIKEv2Only: IKEv1 has no post-quantum key
// exchange, so a require_pq rule of key module auto answers IKEv2 only
// (no IKEv1 responder), initiates IKEv2 only with the hybrid proposals
// first and never falls back to IKEv1, whatever IKEv2 did; the
// pq_required flows count under ikev2.
func TestRequirePQWithAutoIsIKEv2Only(t *testing.T) {
	p := windowsPolicy(t, policy.KeyModuleAuto)
	for _, r := range p.Rules {
		if r.Action == policy.Negotiate {
			r.RequirePQ = true
		}
	}
	p.DefaultResponse.RequirePQ = true
	eng := &fakeEngine{answer: func(context.Context, ike.InitiateOptions) (ike.SAInfo, error) {
		return ike.SAInfo{}, errors.New("no answer")
	}}
	v1 := &fakeV1{answer: func(context.Context, ikev1.InitiateOptions) (ikev1.SAInfo, error) {
		return ikev1.SAInfo{ID: "isakmp-1"}, nil
	}}
	a, _ := newV1Agent(t, p, eng, v1)
	if cs := a.ConnectionsV1(); len(cs) != 0 {
		t.Errorf("%d IKEv1 responder connections for require_pq rules, want none", len(cs))
	}
	v2 := a.Connections()
	if len(v2) != 4 {
		t.Fatalf("%d IKEv2 responder connections, want 4", len(v2))
	}
	for _, c := range v2 {
		if !c.RequirePQ || c.IKEProposals[0].Keywords() != PQIKEProposals[0] {
			t.Errorf("%s: RequirePQ %v, first IKE proposal %s", c.Name, c.RequirePQ, c.IKEProposals[0].Keywords())
		}
	}
	acquire(a, policy.TCP, 445)
	waitFlows(t, a, policy.VersionIKEv2, FlowFailed, 1)
	if v1.calls() != 0 {
		t.Errorf("%d IKEv1 initiations for a require_pq rule, want none", v1.calls())
	}
	eng.mu.Lock()
	c := eng.initiated[0]
	eng.mu.Unlock()
	if !c.RequirePQ || !c.ESPProposals[0].PostQuantum() {
		t.Errorf("IKEv2 connection: RequirePQ %v, ESP %s", c.RequirePQ, c.ESPProposals[0])
	}
	a.HandshakeFailed(peerB, false, FlowPQRequired)
	waitFlows(t, a, policy.VersionIKEv2, FlowPQRequired, 1)
}
