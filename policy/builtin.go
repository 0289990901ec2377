package policy

import (
	"fmt"
	"slices"
)

// Names of the built-in policies, matching Windows Server's defaults.
const (
	// ClientRespondOnly has only the default response rule: it never
	// initiates, and answers peers that ask for security.
	ClientRespondOnly = "client-respond-only"
	// ServerRequestSecurity negotiates all IP traffic, accepts unsecured
	// traffic and falls back to clear with peers that do not speak IKE;
	// ICMP is permitted.
	ServerRequestSecurity = "server-request-security"
	// SecureServerRequireSecurity negotiates all IP traffic, accepts
	// unsecured inbound traffic but always responds using IPsec, never
	// falls back to clear; ICMP is permitted.
	SecureServerRequireSecurity = "secure-server-require-security"
)

// BuiltinNames lists the built-in policies.
func BuiltinNames() []string {
	return []string{ClientRespondOnly, ServerRequestSecurity, SecureServerRequireSecurity}
}

// IsBuiltin reports whether name is a built-in policy.
func IsBuiltin(name string) bool { return slices.Contains(BuiltinNames(), name) }

// Names of the built-in filter lists.
const (
	// AllIPTraffic is every packet between this host and any other,
	// mirrored (less the exemptions every policy has).
	AllIPTraffic = "all-ip"
	// AllICMPTraffic is ICMP between this host and any other, mirrored.
	AllICMPTraffic = "all-icmp"
)

// BuiltinFilterLists returns fresh copies of the built-in filter lists,
// by name; a configuration may use them in its own rules.
func BuiltinFilterLists() map[string]*FilterList {
	me, any := Address{Kind: MyAddress}, Address{Kind: AnyAddress}
	return map[string]*FilterList{
		AllIPTraffic: {Name: AllIPTraffic, Description: "all IP traffic between this host and any other",
			Filters: []Filter{{Src: me, Dst: any, Mirrored: true}}},
		AllICMPTraffic: {Name: AllICMPTraffic, Description: "all ICMP traffic between this host and any other",
			Filters: []Filter{{Src: me, Dst: any, Protocol: ICMP, Mirrored: true}, {Src: me, Dst: any, Protocol: ICMPv6, Mirrored: true}}},
	}
}

// DefaultSecurityMethods are the security methods of the built-in
// policies: AES-GCM, then AES-CBC with HMAC-SHA2, an hour each (Windows'
// defaults were 3DES and SHA-1, which no one should negotiate today).
func DefaultSecurityMethods() []SecurityMethod {
	return []SecurityMethod{{Proposal: "aes256gcm16"}, {Proposal: "aes256-sha256"}}
}

// Builtin returns the built-in policy name, its rules and default response
// rule using auth (the authentication methods, in preference order) and
// methods (nil: DefaultSecurityMethods).
func Builtin(name string, auth []string, methods []SecurityMethod) (*Policy, error) {
	if len(methods) == 0 {
		methods = DefaultSecurityMethods()
	}
	lists := BuiltinFilterLists()
	p := &Policy{Name: name, DefaultResponse: DefaultResponse{Active: true, Methods: methods, Auth: auth}}
	negotiate := func(fallback bool) *Rule {
		return &Rule{Name: AllIPTraffic, Filters: lists[AllIPTraffic], Action: Negotiate, Methods: methods, Auth: auth,
			AcceptUnsecured: true, Fallback: fallback}
	}
	icmp := &Rule{Name: AllICMPTraffic, Filters: lists[AllICMPTraffic], Action: Permit}
	switch name {
	case ClientRespondOnly:
		p.Description = "Communicate normally (unsecured); use the default response rule to negotiate with servers that request security."
	case ServerRequestSecurity:
		p.Description = "For all IP traffic, always request security, accept unsecured communication and fall back to clear with peers that do not answer IKE."
		p.Rules = []*Rule{negotiate(true), icmp}
	case SecureServerRequireSecurity:
		p.Description = "For all IP traffic, always require security; never fall back to clear. Unsecured inbound traffic is accepted, and answered only with IPsec."
		p.Rules = []*Rule{negotiate(false), icmp}
	default:
		return nil, fmt.Errorf("unknown built-in policy %q (expected one of %v)", name, BuiltinNames())
	}
	return p, nil
}
