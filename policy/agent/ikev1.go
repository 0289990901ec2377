package agent

import (
	"net/netip"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/policy"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// What the agent does with IKEv1: the connections of rules whose key
// module is ikev1 or auto, built from the policy's key exchange settings
// (Windows' main mode: methods, lifetime, quick modes per main mode,
// master key PFS) and the rule's quick mode (security methods, their
// lifetimes, session key PFS), and the IKEv1 engine's Observer.

// ConnectionsV1 returns the IKEv1 responder's connections for the policy:
// as Connections, for the rules (and default response rule) whose key
// module speaks IKEv1. A rule's connection that the IKEv1 engine would
// refuse (no security method it can negotiate) is left out and logged.
func (a *Agent) ConnectionsV1() []*ikev1.Connection {
	var out []*ikev1.Connection
	a.responders(policy.VersionIKEv1, func(p *policy.Policy, r *policy.Rule, name string, m auth.Method, s ruleSettings) {
		c := a.connectionV1(p, name, s)
		c.Auth = m
		if r != nil && r.Tunnel.IsValid() {
			c.Remote = netip.AddrPortFrom(r.Tunnel, policy.IKEPort)
			c.LocalTS, c.RemoteTS = tunnelSelectors(r)
			c.Mode = sadb.Tunnel
		}
		if err := ikev1.ValidateConnection(c); err != nil {
			a.log.Warn("no IKEv1 responder for this rule", "connection", name, "err", err)
			return
		}
		out = append(out, c)
	})
	return out
}

// connectionV1 makes an IKEv1 connection from the IKEv1 template with the
// policy's main mode settings and the rule's quick mode. The ID payloads
// are the IP addresses (as Windows sends them; a certificate's subject
// with signatures), whatever the method: Kerberos names its principals in
// the GSS-API tokens.
func (a *Agent) connectionV1(p *policy.Policy, name string, s ruleSettings) *ikev1.Connection {
	c := a.cfg.TemplateV1
	c.Name = name
	c.Initiate = false
	kx := p.KeyExchange
	if props := parseEach(kx.Methods, transform.ParseIKEv1Proposal); len(props) > 0 {
		c.IKEProposals = props
	}
	if kx.Lifetime > 0 {
		c.IKELifetime = kx.Lifetime
	}
	c.QuickModeLimit = kx.QuickModeLimit()
	c.AllowLegacy = c.AllowLegacy || kx.AllowLegacy
	c.ESPProposals = espProposals(s.methods, s.pfs, c.IKEProposals, transform.ParseIKEv1ESPProposal)
	if m, ok := firstFit(s.methods, transform.ParseIKEv1ESPProposal); ok {
		if m.Lifetime > 0 {
			c.Lifetime = m.Lifetime
		}
		if b := m.LifetimeBytes; b > 0 {
			// The IKEv2 engine rekeys at the rule's bytes; IKEv1 proposes
			// a hard limit, a tenth beyond, as it does for time.
			c.RekeyBytes, c.LifeBytes = b, b+b/10
		}
	}
	return &c
}

// v1Observer is the agent as the IKEv1 engine's Observer: the same
// handling as the IKEv2 engine's, with failures counted under ikev1.
type v1Observer struct{ a *Agent }

// IKEv1Observer returns the agent's ikev1.Observer, for the IKEv1
// engine's Config.
func (a *Agent) IKEv1Observer() ikev1.Observer { return v1Observer{a} }

// PoliciesAdded implements ikev1.Observer.
func (o v1Observer) PoliciesAdded(ps []*sadb.Policy) { o.a.PoliciesAdded(ps) }

// PoliciesRemoved implements ikev1.Observer.
func (o v1Observer) PoliciesRemoved(ids []sadb.PolicyID) { o.a.PoliciesRemoved(ids) }

// HandshakeFailed implements ikev1.Observer.
func (o v1Observer) HandshakeFailed(peer netip.Addr, initiator bool, reason string) {
	o.a.handshakeFailed(peer, initiator, reason, policy.VersionIKEv1)
}

// saRecord is an IKE SA of either engine as the agent judges it.
type saRecord struct {
	id, version, auth, connection string
	children                      int // IPsec (Child) SAs
	local, remote                 netip.Addr
}

// v1AuthNames maps the IKEv1 engine's names of Main Mode methods to the
// auth methods' own ("cert" signs RSA or ECDSA).
var v1AuthNames = map[string]string{"rsa-sig": "cert", "ecdsa-sig": "cert"}

// allSAs lists the SAs of both engines.
func (a *Agent) allSAs() []saRecord {
	var out []saRecord
	add := func(id, version, conn, authName, local, remote string, children int) {
		l, err1 := netip.ParseAddrPort(local)
		r, err2 := netip.ParseAddrPort(remote)
		if err1 != nil || err2 != nil {
			return
		}
		out = append(out, saRecord{id: id, version: version, connection: conn, auth: authName, children: children,
			local: l.Addr().Unmap(), remote: r.Addr().Unmap()})
	}
	if a.eng != nil {
		for _, sa := range a.eng.SAs() {
			add(sa.ID, policy.VersionIKEv2, sa.Connection, sa.Auth, sa.LocalAddr, sa.RemoteAddr, len(sa.Children))
		}
	}
	if a.v1 != nil {
		for _, sa := range a.v1.SAs() {
			name := sa.Auth
			if n, ok := v1AuthNames[name]; ok {
				name = n
			}
			add(sa.ID, policy.VersionIKEv1, sa.Connection, name, sa.LocalAddr, sa.RemoteAddr, len(sa.Children))
		}
	}
	return out
}

var _ ike.Observer = (*Agent)(nil)
