package config

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/policy"
)

// PolicySource is an assigned policy read from elsewhere than this file:
// policy.source: ldap reads it from Active Directory (MS-GPIPSEC objects).
type PolicySource struct {
	// Kind is "ldap".
	Kind string
	// LDAP says where and how.
	LDAP LDAPSource
	// Authentication are the configured methods the directory's rules may
	// use, in preference order (policy.authentication, default all);
	// SecurityMethods replace the directory's (policy.security_methods);
	// FallbackDelay, Exempt and KDCs are the policy section's.
	Authentication  []string
	SecurityMethods []policy.SecurityMethod
	FallbackDelay   time.Duration
	Exempt          []netip.Prefix
	KDCs            []netip.Addr
}

// LDAPSource is the "policy.ldap" section.
type LDAPSource struct {
	// Domain is the DNS domain (key "domain"): the SRV lookup of its
	// domain controllers, and the base DN when BaseDN is empty.
	Domain string
	// DCs are domain controllers, "host" or "host:port" (key "dcs");
	// default found by DNS SRV lookup.
	DCs []string
	// BaseDN is the domain's naming context (key "base_dn").
	BaseDN string
	// SPN is the domain controllers' service principal (key "spn");
	// required when DCs are addresses.
	SPN string
	// Policy names the ipsecPolicy: its DN, ipsecID or ipsecName (key
	// "policy"); or GPO names the Group Policy object ("{GUID}" or its
	// DN) whose IPsec assignment is followed (key "gpo"). One of them is
	// required.
	Policy string
	GPO    string
	// AuthName is the kerberos method whose keytab binds (key
	// "authentication", default the first kerberos method); Kerberos is
	// that method.
	AuthName string
	Kerberos auth.Method
	// Interval is how often the directory is polled (key "interval");
	// zero means the policy's own polling interval.
	Interval time.Duration
	// Timeout bounds one read (key "timeout", default 15s).
	Timeout time.Duration
	// Cache is the file the last good policy is kept in (key "cache").
	Cache string
}

// DefaultPolicyCache is where the directory's last good policy is kept.
const DefaultPolicyCache = "/var/lib/iked/policy-cache.json"

var ldapKeys = []string{"domain", "dcs", "base_dn", "spn", "policy", "gpo", "authentication", "interval", "timeout", "cache"}

// policySource reads policy.source: ldap and policy.ldap.
func (w *walker) policySource(refs policyRefs, cfg *Config, sourceNode *yaml.Node, source string, ldapNode, assignNode *yaml.Node, ps PolicySource) {
	switch {
	case ldapNode == nil:
		w.errorf(sourceNode, "policy.source: ldap needs a policy.ldap section (domain, policy, ...)")
		return
	case source != "ldap":
		w.errorf(ldapNode, "policy.ldap is only read with policy.source: ldap")
		return
	case assignNode != nil:
		w.errorf(assignNode, "policy.assign and policy.source: ldap exclude each other: the directory assigns the policy")
		return
	}
	for _, n := range []*yaml.Node{refs.policies, refs.lists} {
		if n != nil {
			w.errorf(n, "policies and filter lists are not used when the policy comes from the directory (policy.source: ldap)")
			return
		}
	}
	ps.Kind = "ldap"
	l := &ps.LDAP
	l.Cache = DefaultPolicyCache
	pairs, ok := w.mapping(ldapNode, "policy.ldap", "in policy.ldap", ldapKeys, false)
	if !ok {
		return
	}
	var authNode *yaml.Node
	for _, p := range pairs {
		name := "policy.ldap." + p.key
		switch p.key {
		case "domain":
			l.Domain, _ = w.str(p.vNode, name)
		case "dcs":
			l.DCs, _, _ = w.strList(p.vNode, name)
		case "base_dn":
			l.BaseDN, _ = w.str(p.vNode, name)
		case "spn":
			l.SPN, _ = w.str(p.vNode, name)
		case "policy":
			l.Policy, _ = w.str(p.vNode, name)
		case "gpo":
			l.GPO, _ = w.str(p.vNode, name)
		case "authentication":
			l.AuthName, _ = w.str(p.vNode, name)
			authNode = p.vNode
		case "interval":
			l.Interval, _ = w.duration(p.vNode, name)
		case "timeout":
			l.Timeout, _ = w.duration(p.vNode, name)
		case "cache":
			l.Cache, _ = w.str(p.vNode, name)
		}
	}
	if (l.Policy == "") == (l.GPO == "") {
		w.errorf(ldapNode, "policy.ldap: give policy (the ipsecPolicy's DN, ipsecID or name) or gpo (the GPO whose assignment to follow), one of them")
		return
	}
	if l.Domain == "" && l.BaseDN == "" {
		w.errorf(ldapNode, "policy.ldap: give domain (or base_dn and dcs)")
		return
	}
	if l.Domain == "" && len(l.DCs) == 0 {
		w.errorf(ldapNode, "policy.ldap: without domain, dcs must list the domain controllers")
		return
	}
	for _, dc := range l.DCs {
		host := dc
		if h, _, err := net.SplitHostPort(dc); err == nil {
			host = h
		}
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && l.SPN == "" {
			w.errorf(ldapNode, "policy.ldap: domain controller %s is an address: spn must name its service principal (ldap/NAME)", dc)
			return
		}
	}
	// The machine's credentials: a kerberos method of this file.
	for _, name := range cfg.AuthenticationNames {
		m := cfg.Authentication[name]
		if m.Name() != "kerberos" {
			continue
		}
		if l.AuthName == "" || l.AuthName == name {
			l.AuthName, l.Kerberos = name, m
			break
		}
	}
	if l.Kerberos == nil {
		at := ldapNode
		if authNode != nil {
			at = authNode
		}
		if l.AuthName != "" {
			w.errorf(at, "policy.ldap.authentication: no kerberos method named %q (defined: %s)", l.AuthName, strings.Join(cfg.AuthenticationNames, ", "))
		} else {
			w.errorf(at, "policy.ldap: the directory is read with the machine's Kerberos keys: add a kerberos method under authentication")
		}
		return
	}
	if len(ps.SecurityMethods) == 0 {
		ps.SecurityMethods = policy.DefaultSecurityMethods()
	}
	// The KDCs of Kerberos methods given by address are exempt, as for a
	// policy of this file.
	for _, name := range cfg.AuthenticationNames {
		if k, ok := cfg.Authentication[name].(interface{ KDCAddresses() []netip.Addr }); ok {
			for _, a := range k.KDCAddresses() {
				if !containsAddr(ps.KDCs, a) {
					ps.KDCs = append(ps.KDCs, a)
				}
			}
		}
	}
	cfg.PolicySource = &ps
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}
