// Package policy is the assigned IPsec policy, with the semantics of
// Windows Server's IPsec policies: rules that tie a filter list (which
// traffic) to a filter action (permit, block or negotiate security), the
// authentication methods to offer, and the default response rule that
// answers any peer asking for security.
//
// The package is the model and its decisions: which filter a packet
// matches (the most specific wins, whatever the rule order), what is
// exempt from negotiation, and whether an SA still fits a policy after a
// reload. Enforcing it in a data plane is package policy/nft's job;
// turning traffic into negotiations is package policy/agent's.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Action is a filter action.
type Action uint8

// Filter actions.
const (
	// Negotiate secures the traffic with IPsec ("Negotiate security").
	Negotiate Action = iota
	// Permit passes the traffic in clear.
	Permit
	// Block drops the traffic.
	Block
)

// String returns "negotiate", "permit" or "block".
func (a Action) String() string {
	return [...]string{"negotiate", "permit", "block"}[a]
}

// ParseAction parses "negotiate", "permit" or "block".
func ParseAction(s string) (Action, error) {
	for a := Negotiate; a <= Block; a++ {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown filter action %q (expected negotiate, permit or block)", s)
}

// ConnectionType says on which interfaces a rule applies, as Windows'
// "connection type" does.
type ConnectionType uint8

// Connection types. Linux has no "dial-up connection" flag; the mapping is
// by interface type: LAN is Ethernet-like interfaces, remote access is
// everything else (PPP, tunnels, WireGuard, ...).
const (
	AllConnections ConnectionType = iota
	LAN
	RemoteAccess
)

// String returns "all", "lan" or "remote-access".
func (c ConnectionType) String() string {
	return [...]string{"all", "lan", "remote-access"}[c]
}

// ParseConnectionType parses "all", "lan" or "remote-access".
func ParseConnectionType(s string) (ConnectionType, error) {
	for c := AllConnections; c <= RemoteAccess; c++ {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown connection type %q (expected all, lan or remote-access)", s)
}

// SecurityMethod is one way to secure traffic, in a negotiate action's
// preference order: an ESP proposal in strongSwan syntax ("aes256gcm16",
// "aes128-sha256") and its lifetimes.
type SecurityMethod struct {
	// Proposal is the ESP proposal.
	Proposal string
	// Lifetime is the Child SA's life before a rekey; zero takes the
	// daemon's default.
	Lifetime time.Duration
	// LifetimeBytes is the traffic after which the Child SA is rekeyed;
	// zero is unlimited.
	LifetimeBytes uint64
}

// Rule ties a filter list to a filter action.
type Rule struct {
	// Name names the rule in logs and ikectl; default the filter list's.
	Name string
	// Filters is the rule's filter list.
	Filters *FilterList
	// Action is what happens to matching traffic.
	Action Action
	// Methods are the security methods of a negotiate action, in
	// preference order.
	Methods []SecurityMethod
	// AcceptUnsecured accepts inbound clear traffic, and secures the
	// replies ("Accept unsecured communication, but always respond using
	// IPsec").
	AcceptUnsecured bool
	// Fallback lets traffic flow in clear to a peer that does not answer
	// IKE at all within FallbackDelay ("Allow unsecured communication with
	// non-IPsec-aware computers"); never when the peer answers and the
	// negotiation fails.
	Fallback bool
	// FallbackDelay is how long a silent peer gets; default
	// DefaultFallbackDelay.
	FallbackDelay time.Duration
	// PFS asks for a fresh Diffie-Hellman exchange for every Child SA
	// ("Session key perfect forward secrecy").
	PFS bool
	// RequirePQ asks for a post-quantum key exchange (ML-KEM, RFC 9370)
	// in every IKE SA of the rule: a peer that cannot do one is refused,
	// not secured classically. With PFS the Child SAs get it too. An iked
	// extension; Windows has no such setting (docs/postquantum.md).
	RequirePQ bool
	// Auth names the authentication methods in preference order: the
	// initiator uses the first it has credentials for, the responder
	// accepts any of them.
	Auth []string
	// Connection is the rule's connection type.
	Connection ConnectionType
	// Tunnel is the tunnel endpoint; the zero Addr means transport between
	// the two hosts.
	Tunnel netip.Addr
	// KeyModule is the rule's key exchange; empty takes the policy's
	// (Policy.RuleKeyModule).
	KeyModule KeyModule
}

// DefaultFallbackDelay is how long a negotiate rule with fallback waits for
// a peer's first IKE answer, as Windows does.
const DefaultFallbackDelay = 3 * time.Second

// FallbackDelayOrDefault returns the rule's fallback delay.
func (r *Rule) FallbackDelayOrDefault() time.Duration {
	if r.FallbackDelay > 0 {
		return r.FallbackDelay
	}
	return DefaultFallbackDelay
}

// DefaultResponse is the default response rule: filter list "dynamic",
// action negotiate. It answers any peer that asks for security, with its
// own security methods and authentication methods. It can be turned off,
// never removed.
type DefaultResponse struct {
	// Active turns the rule on.
	Active bool
	// Methods and Auth are the security and authentication methods it
	// accepts.
	Methods []SecurityMethod
	Auth    []string
	// RequirePQ: as Rule.RequirePQ.
	RequirePQ bool
}

// Policy is an IPsec policy: rules and the default response rule.
type Policy struct {
	// Name is the policy's name (a built-in's, or its key in the file).
	Name string
	// Description says what it is for.
	Description string
	// Rules are the policy's rules. Their order does not matter: filters
	// are ordered by specificity.
	Rules []*Rule
	// DefaultResponse is the default response rule.
	DefaultResponse DefaultResponse
	// Exempt are extra addresses never negotiated with (beyond IKE itself,
	// the KDCs, multicast and broadcast), e.g. DHCP or DNS servers.
	Exempt []netip.Prefix
	// KDCs are the Kerberos KDCs: traffic to them is exempt, because
	// Kerberos must reach its KDC before any SA exists.
	KDCs []netip.Addr
	// KeyExchange are the main mode settings and the key module.
	KeyExchange KeyExchange
}

// Validate checks what the type cannot: every rule has filters, negotiate
// rules have security and authentication methods, and fallback is only
// on negotiate rules.
func (p *Policy) Validate() error {
	var errs []error
	for _, r := range p.Rules {
		name := r.Name
		if r.Filters == nil || len(r.Filters.Filters) == 0 {
			errs = append(errs, fmt.Errorf("rule %q: an empty filter list matches nothing", name))
		}
		if r.Action != Negotiate {
			if r.Fallback || r.AcceptUnsecured || len(r.Methods) > 0 || len(r.Auth) > 0 || r.PFS || r.RequirePQ || r.Tunnel.IsValid() {
				errs = append(errs, fmt.Errorf("rule %q: security settings need action negotiate, not %s", name, r.Action))
			}
			continue
		}
		if len(r.Methods) == 0 {
			errs = append(errs, fmt.Errorf("rule %q: negotiate needs at least one security method", name))
		}
		if len(r.Auth) == 0 {
			errs = append(errs, fmt.Errorf("rule %q: negotiate needs at least one authentication method", name))
		}
	}
	if d := p.DefaultResponse; d.Active && (len(d.Methods) == 0 || len(d.Auth) == 0) {
		errs = append(errs, errors.New("default response rule: needs security and authentication methods"))
	}
	return errors.Join(errs...)
}

// Negotiates reports whether the policy ever initiates IKE: it has a
// negotiate rule. A policy with only the default response rule answers
// but never asks.
func (p *Policy) Negotiates() bool {
	for _, r := range p.Rules {
		if r.Action == Negotiate {
			return true
		}
	}
	return false
}
