package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/policy"
)

// Assign makes p the assigned policy, as a reload: the data plane's rules
// are swapped atomically, the SAs p still allows are kept and the others
// deleted (with the peer), and what the agent knew of peers the new policy
// no longer negotiates with is forgotten. The caller then gives the engine
// the new Connections (and ConnectionsV1). It returns the IDs of the IKE
// and ISAKMP SAs it removed.
// methods are the authentication methods the new policy's rules name.
func (a *Agent) Assign(ctx context.Context, p *policy.Policy, methods map[string]auth.Method) ([]string, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if e := a.cfg.Enforcer; e != nil {
		if err := e.Replace(ctx, p); err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.Name, err)
		}
	}
	a.mu.Lock()
	old := a.pol
	a.pol, a.auth = p, methods
	for addr, st := range a.peers {
		if st.state == ClearFallback {
			a.endClear(addr)
		}
		delete(a.peers, addr)
	}
	a.mu.Unlock()
	methodOf := func(name string) string {
		if m, ok := methods[name]; ok {
			return m.Name()
		}
		return ""
	}
	var removed []string
	for _, sa := range a.allSAs() {
		if !strings.HasPrefix(sa.connection, "policy/") {
			continue // a configured connection: not the policy's to judge
		}
		local := func(ip netip.Addr) bool { return ip == sa.local || a.isLocal(ip) }
		keep, why := p.Keeps(policy.SAView{Local: sa.local, Remote: sa.remote, Auth: sa.auth, Version: sa.version}, local, methodOf)
		if keep {
			continue
		}
		a.log.Info("the new policy no longer allows this SA: deleting it", "sa", sa.id, "version", sa.version, "peer", sa.remote, "why", why)
		var err error
		if sa.version == policy.VersionIKEv1 {
			_, err = a.v1.Terminate(ctx, sa.id)
		} else {
			_, err = a.eng.Terminate(ctx, sa.id)
		}
		if err != nil {
			a.log.Warn("deleting an SA the new policy refuses", "sa", sa.id, "err", err)
			continue
		}
		removed = append(removed, sa.id)
	}
	a.log.Info("policy assigned", "policy", p.Name, "previous", old.Name, "sas_removed", len(removed))
	return removed, nil
}
