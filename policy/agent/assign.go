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
// the new Connections. It returns the IDs of the IKE SAs it removed.
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
	for _, sa := range a.eng.SAs() {
		if !strings.HasPrefix(sa.Connection, "policy/") {
			continue // a configured connection: not the policy's to judge
		}
		l, err1 := netip.ParseAddrPort(sa.LocalAddr)
		r, err2 := netip.ParseAddrPort(sa.RemoteAddr)
		if err1 != nil || err2 != nil {
			continue
		}
		local := func(ip netip.Addr) bool { return ip == l.Addr().Unmap() || a.isLocal(ip) }
		keep, why := p.Keeps(policy.SAView{Local: l.Addr().Unmap(), Remote: r.Addr().Unmap(), Auth: sa.Auth}, local, methodOf)
		if keep {
			continue
		}
		a.log.Info("the new policy no longer allows this SA: deleting it", "ike_sa", sa.ID, "peer", r.Addr(), "why", why)
		if _, err := a.eng.Terminate(ctx, sa.ID); err != nil {
			a.log.Warn("deleting an SA the new policy refuses", "ike_sa", sa.ID, "err", err)
			continue
		}
		removed = append(removed, sa.ID)
	}
	a.log.Info("policy assigned", "policy", p.Name, "previous", old.Name, "sas_removed", len(removed))
	return removed, nil
}
