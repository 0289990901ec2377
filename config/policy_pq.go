package config

import (
	"github.com/iked/iked/policy"
	"go.yaml.in/yaml/v3"
)

// checkRequirePQ refuses require_pq on a rule (or the default response
// rule) whose key module is ikev1: IKEv1 has no post-quantum key
// exchange, so the rule could never secure anything. With auto such a
// rule negotiates IKEv2 only (no fallback to IKEv1), which the agent
// does; that needs no error. at is where the error points.
func (w *walker) checkRequirePQ(pol *policy.Policy, at *yaml.Node) {
	for _, r := range pol.Rules {
		if r.Action == policy.Negotiate && r.RequirePQ && !pol.RuleKeyModule(r).Speaks(policy.VersionIKEv2) {
			w.errorf(at, "policy %s: rule %s: require_pq needs IKEv2 (RFC 9370's additional key exchanges), and its key module is %s", pol.Name, r.Name, pol.RuleKeyModule(r))
		}
	}
	if d := pol.DefaultResponse; d.Active && d.RequirePQ && !pol.DefaultResponseKeyModule().Speaks(policy.VersionIKEv2) {
		w.errorf(at, "policy %s: the default response rule: require_pq needs IKEv2 (RFC 9370's additional key exchanges), and its key module is %s", pol.Name, pol.DefaultResponseKeyModule())
	}
}
