package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/policy"
	"github.com/iked/iked/transform"
)

// PolicyOptions are the settings of the "policy" section besides the
// policy itself.
type PolicyOptions struct {
	// ClearTTL is how long a fallback to clear lasts (key "clear_ttl",
	// default 5m).
	ClearTTL time.Duration
	// RetryAfter is how long a peer whose negotiation failed is left
	// alone (key "retry_after", default 30s).
	RetryAfter time.Duration
	// Table is the nftables table iked owns (key "nft_table", default
	// "iked").
	Table string
	// Mark is the packet mark of traffic to secure (key "mark", default
	// DefaultPolicyMark); RouteTable the routing table of the data plane's
	// TUN device that marked packets use (key "route_table", default
	// DefaultPolicyRouteTable).
	Mark, RouteTable uint32
}

// Defaults of the policy section.
const (
	DefaultClearTTL         = 5 * time.Minute
	DefaultRetryAfter       = 30 * time.Second
	DefaultPolicyTable      = "iked"
	DefaultPolicyMark       = 0x1e4ed
	DefaultPolicyRouteTable = 4500
)

var (
	policyKeys     = []string{"assign", "authentication", "security_methods", "fallback_delay", "exempt", "kdcs", "clear_ttl", "retry_after", "nft_table", "mark", "route_table", "source", "ldap", "key_exchange"}
	customKeys     = []string{"description", "rules", "default_response"}
	ruleKeys       = []string{"name", "filter_list", "action", "security_methods", "accept_unsecured", "fallback", "fallback_delay", "pfs", "authentication", "connection_type", "tunnel", "key_module", "require_pq"}
	filterListKeys = []string{"description", "filters"}
	filterKeys     = []string{"source", "destination", "protocol", "source_port", "destination_port", "mirrored", "description"}
	methodKeys     = []string{"proposal", "lifetime", "lifetime_bytes"}
	responseKeys   = []string{"active", "authentication", "security_methods", "require_pq"}
)

// boolean decodes true or false.
func (w *walker) boolean(n *yaml.Node, name string) (bool, bool) {
	s, ok := w.oneOf(n, name, "true", "false")
	return s == "true", ok
}

// authentication decodes the named auth methods, in file order.
func (w *walker) authentication(n *yaml.Node, cfg *Config, baseDir string) {
	pairs, _ := w.mapping(n, "authentication", "in authentication", nil, true)
	cfg.Authentication = map[string]auth.Method{}
	for _, p := range pairs {
		if !connNameRE.MatchString(p.key) {
			w.errorf(p.kNode, "authentication: %q is not a valid name (letters, digits, '.', '_' and '-')", p.key)
			continue
		}
		m, _ := w.auth(p, baseDir)
		if m != nil {
			cfg.Authentication[p.key] = m
			cfg.AuthenticationNames = append(cfg.AuthenticationNames, p.key)
		}
	}
}

// policyRefs is what the policy section refers to, resolved after the
// whole file is read (sections may come in any order).
type policyRefs struct {
	section, lists, policies *yaml.Node
}

// policy builds the assigned policy from the "policy", "policies" and
// "filter_lists" sections.
func (w *walker) policy(refs policyRefs, cfg *Config) {
	if refs.section == nil {
		for _, n := range []*yaml.Node{refs.policies, refs.lists} {
			if n != nil {
				w.errorf(n, "policies and filter lists are only used by an assigned policy: add policy: {assign: NAME}")
				return
			}
		}
		return
	}
	cfg.PolicyOptions = PolicyOptions{ClearTTL: DefaultClearTTL, RetryAfter: DefaultRetryAfter, Table: DefaultPolicyTable,
		Mark: DefaultPolicyMark, RouteTable: DefaultPolicyRouteTable}
	o := &cfg.PolicyOptions
	pairs, ok := w.mapping(refs.section, "policy", "in policy", policyKeys, false)
	if !ok {
		return
	}
	var assign string
	var assignNode *yaml.Node
	authNames := cfg.AuthenticationNames
	var methods []policy.SecurityMethod
	var fallbackDelay time.Duration
	var exempt []netip.Prefix
	var kdcs []netip.Addr
	var kx policy.KeyExchange
	var kxNode *yaml.Node
	var source string
	var sourceNode, ldapNode *yaml.Node
	for _, p := range pairs {
		name := "policy." + p.key
		switch p.key {
		case "key_exchange":
			kx, kxNode = w.keyExchange(p.vNode, name), p.vNode
		case "assign":
			assign, _ = w.str(p.vNode, name)
			assignNode = p.vNode
		case "source":
			source, _ = w.oneOf(p.vNode, name, "file", "ldap")
			sourceNode = p.vNode
		case "ldap":
			ldapNode = p.vNode
		case "authentication":
			authNames = w.authRefs(p.vNode, name, cfg)
		case "security_methods":
			methods = w.securityMethods(p.vNode, name)
		case "fallback_delay":
			fallbackDelay, _ = w.duration(p.vNode, name)
		case "exempt":
			list, nodes, _ := w.strList(p.vNode, name)
			for i, s := range list {
				pfx, err := parsePrefixOrAddr(s)
				if err != nil {
					w.errorf(nodes[i], "%s: %q is not an address or prefix", name, s)
					continue
				}
				exempt = append(exempt, pfx)
			}
		case "kdcs":
			list, nodes, _ := w.strList(p.vNode, name)
			for i, s := range list {
				a, err := netip.ParseAddr(s)
				if err != nil {
					w.errorf(nodes[i], "%s: %q is not an IP address", name, s)
					continue
				}
				kdcs = append(kdcs, a.Unmap())
			}
		case "clear_ttl":
			if d, ok := w.duration(p.vNode, name); ok {
				o.ClearTTL = d
			}
		case "retry_after":
			if d, ok := w.duration(p.vNode, name); ok {
				o.RetryAfter = d
			}
		case "nft_table":
			if s, ok := w.str(p.vNode, name); ok {
				if !connNameRE.MatchString(s) {
					w.errorf(p.vNode, "%s: %q is not a valid table name", name, s)
				} else {
					o.Table = s
				}
			}
		case "mark":
			if v, ok := w.integer(p.vNode, name, 1, 1<<32-1); ok {
				o.Mark = uint32(v)
			}
		case "route_table":
			if v, ok := w.integer(p.vNode, name, 1, 1<<32-1); ok {
				if v == 253 || v == 254 || v == 255 {
					w.errorf(p.vNode, "%s: %d is one of the kernel's own tables (default, main, local)", name, v)
				} else {
					o.RouteTable = uint32(v)
				}
			}
		}
	}
	if source == "ldap" || ldapNode != nil {
		if kxNode != nil {
			// The directory's own IKEv1 settings (main mode methods) are
			// not read (docs/policies.md); a local block would be ignored.
			w.errorf(kxNode, "policy.key_exchange: not supported with a policy from the directory (source: ldap)")
		}
		w.policySource(refs, cfg, sourceNode, source, ldapNode, assignNode, PolicySource{Authentication: authNames,
			SecurityMethods: methods, FallbackDelay: fallbackDelay, Exempt: exempt, KDCs: kdcs})
		return
	}
	if assignNode == nil {
		w.errorf(refs.section, "policy: missing key \"assign\" (a built-in policy: %s, or a name under policies)", strings.Join(policy.BuiltinNames(), ", "))
		return
	}
	lists := w.filterLists(refs.lists)
	var pol *policy.Policy
	switch {
	case policy.IsBuiltin(assign):
		if len(authNames) == 0 {
			w.errorf(assignNode, "policy %s: no authentication methods (add an authentication section, or policy.authentication)", assign)
			return
		}
		pol, _ = policy.Builtin(assign, authNames, methods)
		if fallbackDelay > 0 {
			for _, r := range pol.Rules {
				r.FallbackDelay = fallbackDelay
			}
		}
	default:
		pol = w.customPolicy(refs.policies, assign, assignNode, lists, authNames, methods, cfg)
		if pol == nil {
			return
		}
	}
	// The KDCs of Kerberos methods given by address are exempt too.
	for _, name := range cfg.AuthenticationNames {
		if k, ok := cfg.Authentication[name].(interface{ KDCAddresses() []netip.Addr }); ok {
			for _, a := range k.KDCAddresses() {
				if !slices.Contains(kdcs, a) {
					kdcs = append(kdcs, a)
				}
			}
		}
	}
	pol.Exempt, pol.KDCs = exempt, kdcs
	pol.KeyExchange = kx
	w.checkKeyExchange(pol, kxNode, assignNode)
	w.checkRequirePQ(pol, assignNode)
	cfg.Policy = pol
}

// parsePrefixOrAddr reads "10.0.0.0/8" or "10.0.0.1".
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// authRefs reads a list of names under "authentication".
func (w *walker) authRefs(n *yaml.Node, name string, cfg *Config) []string {
	list, nodes, ok := w.strList(n, name)
	if !ok {
		return nil
	}
	var out []string
	for i, s := range list {
		if _, ok := cfg.Authentication[s]; !ok {
			w.errorf(nodes[i], "%s: no authentication method named %q (defined: %s)", name, s, strings.Join(cfg.AuthenticationNames, ", "))
			continue
		}
		if slices.Contains(out, s) {
			w.errorf(nodes[i], "%s: %q listed twice", name, s)
			continue
		}
		out = append(out, s)
	}
	return out
}

// securityMethods reads a list of ESP proposals, each a string or a
// mapping {proposal, lifetime, lifetime_bytes}.
func (w *walker) securityMethods(n *yaml.Node, name string) []policy.SecurityMethod {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		w.errorf(n, "%s: expected a list, got %s", name, describe(n))
		return nil
	}
	var out []policy.SecurityMethod
	for _, item := range n.Content {
		item = deref(item)
		var m policy.SecurityMethod
		var at *yaml.Node = item
		if item.Kind == yaml.MappingNode {
			pairs, _ := w.mapping(item, name, "in "+name, methodKeys, false)
			for _, p := range pairs {
				switch p.key {
				case "proposal":
					m.Proposal, _ = w.str(p.vNode, name+".proposal")
					at = p.vNode
				case "lifetime":
					m.Lifetime, _ = w.duration(p.vNode, name+".lifetime")
				case "lifetime_bytes":
					if v, ok := w.integer(p.vNode, name+".lifetime_bytes", 1, 1<<62); ok {
						m.LifetimeBytes = uint64(v)
					}
				}
			}
		} else if s, ok := w.str(item, name); ok {
			m.Proposal = s
		}
		if m.Proposal == "" {
			w.errorf(at, "%s: a security method needs a proposal, e.g. aes256gcm16", name)
			continue
		}
		if strings.HasPrefix(m.Proposal, "ah") || strings.Contains(m.Proposal, "null") {
			w.errorf(at, "%s: %q: AH and ESP without encryption cannot be negotiated yet (use an ESP proposal such as aes256gcm16)", name, m.Proposal)
			continue
		}
		if _, err := transform.ParseESPProposal(m.Proposal); err != nil {
			// An IKEv1 proposal (3des, sha1) is checked against the
			// rules' key modules once they are known (checkKeyExchange).
			if _, err1 := transform.ParseIKEv1ESPProposal(m.Proposal); err1 != nil {
				w.errorf(at, "%s: %v", name, err)
				continue
			}
		}
		if w.proposalNodes == nil {
			w.proposalNodes = map[string]*yaml.Node{}
		}
		if _, seen := w.proposalNodes[m.Proposal]; !seen {
			w.proposalNodes[m.Proposal] = at
		}
		out = append(out, m)
	}
	return out
}

// filterLists reads the "filter_lists" section; the built-in lists are
// there too, and may not be redefined.
func (w *walker) filterLists(n *yaml.Node) map[string]*policy.FilterList {
	lists := policy.BuiltinFilterLists()
	if n == nil {
		return lists
	}
	pairs, _ := w.mapping(n, "filter_lists", "in filter_lists", nil, true)
	for _, p := range pairs {
		if _, builtin := lists[p.key]; builtin {
			w.errorf(p.kNode, "filter_lists: %q is a built-in filter list and cannot be redefined", p.key)
			continue
		}
		if !connNameRE.MatchString(p.key) {
			w.errorf(p.kNode, "filter_lists: %q is not a valid name", p.key)
			continue
		}
		ctx := fmt.Sprintf("filter list %q", p.key)
		fl := &policy.FilterList{Name: p.key}
		fields, _ := w.mapping(p.vNode, ctx, "in "+ctx, filterListKeys, false)
		for _, f := range fields {
			switch f.key {
			case "description":
				fl.Description, _ = w.str(f.vNode, ctx+".description")
			case "filters":
				items := deref(f.vNode)
				if items.Kind != yaml.SequenceNode {
					w.errorf(items, "%s.filters: expected a list, got %s", ctx, describe(items))
					continue
				}
				for _, it := range items.Content {
					if flt, ok := w.filter(it, ctx); ok {
						fl.Filters = append(fl.Filters, flt)
					}
				}
			}
		}
		if len(fl.Filters) == 0 {
			w.errorf(p.kNode, "%s: no filters (an empty list matches nothing)", ctx)
			continue
		}
		lists[p.key] = fl
	}
	return lists
}

// filter reads one filter; mirrored by default, as in Windows.
func (w *walker) filter(n *yaml.Node, ctx string) (policy.Filter, bool) {
	f := policy.Filter{Src: policy.Address{Kind: policy.MyAddress}, Dst: policy.Address{Kind: policy.AnyAddress}, Mirrored: true}
	pairs, ok := w.mapping(n, ctx+" filter", "in a filter of "+ctx, filterKeys, false)
	if !ok {
		return f, false
	}
	good := true
	var portNode *yaml.Node
	for _, p := range pairs {
		name := ctx + " filter " + p.key
		switch p.key {
		case "source", "destination":
			s, ok := w.str(p.vNode, name)
			if !ok {
				good = false
				continue
			}
			a, err := policy.ParseAddress(s)
			if err != nil {
				w.errorf(p.vNode, "%s: %v", name, err)
				good = false
				continue
			}
			if p.key == "source" {
				f.Src = a
			} else {
				f.Dst = a
			}
		case "protocol":
			s, ok := w.str(p.vNode, name)
			if !ok {
				good = false
				continue
			}
			proto, err := policy.ParseProtocol(s)
			if err != nil {
				w.errorf(p.vNode, "%s: %v", name, err)
				good = false
				continue
			}
			f.Protocol = proto
		case "source_port", "destination_port":
			v, ok := w.integer(p.vNode, name, 1, 65535)
			if !ok {
				good = false
				continue
			}
			portNode = p.vNode
			if p.key == "source_port" {
				f.SrcPort = uint16(v)
			} else {
				f.DstPort = uint16(v)
			}
		case "mirrored":
			f.Mirrored, _ = w.boolean(p.vNode, name)
		case "description":
			f.Description, _ = w.str(p.vNode, name)
		}
	}
	if portNode != nil && f.Protocol != policy.TCP && f.Protocol != policy.UDP {
		w.errorf(portNode, "%s filter: ports need protocol tcp or udp", ctx)
		good = false
	}
	fam := func(a policy.Address) int {
		switch a.Kind {
		case policy.Host, policy.Subnet:
			if a.Prefix.Addr().Is4() {
				return 4
			}
			return 6
		case policy.Range:
			if a.From.Is4() {
				return 4
			}
			return 6
		}
		return 0
	}
	if s, d := fam(f.Src), fam(f.Dst); s != 0 && d != 0 && s != d {
		w.errorf(n, "%s filter: source and destination are of different address families", ctx)
		good = false
	}
	return f, good
}

// customPolicy reads the policy named assign under "policies".
func (w *walker) customPolicy(n *yaml.Node, assign string, assignNode *yaml.Node, lists map[string]*policy.FilterList, authNames []string, methods []policy.SecurityMethod, cfg *Config) *policy.Policy {
	var found *pair
	var names []string
	if n != nil {
		pairs, _ := w.mapping(n, "policies", "in policies", nil, true)
		for i := range pairs {
			names = append(names, pairs[i].key)
			if pairs[i].key == assign {
				found = &pairs[i]
			}
		}
	}
	if found == nil {
		w.errorf(assignNode, "policy.assign: no policy named %q (built-in: %s; defined: %s)", assign, strings.Join(policy.BuiltinNames(), ", "), strings.Join(names, ", "))
		return nil
	}
	if len(methods) == 0 {
		methods = policy.DefaultSecurityMethods()
	}
	ctx := fmt.Sprintf("policy %q", assign)
	pol := &policy.Policy{Name: assign, DefaultResponse: policy.DefaultResponse{Active: true, Methods: methods, Auth: authNames}}
	fields, _ := w.mapping(found.vNode, ctx, "in "+ctx, customKeys, false)
	errsBefore := len(w.errs)
	for _, f := range fields {
		switch f.key {
		case "description":
			pol.Description, _ = w.str(f.vNode, ctx+".description")
		case "default_response":
			rs, _ := w.mapping(f.vNode, ctx+".default_response", "in "+ctx+".default_response", responseKeys, false)
			for _, r := range rs {
				name := ctx + ".default_response." + r.key
				switch r.key {
				case "active":
					pol.DefaultResponse.Active, _ = w.boolean(r.vNode, name)
				case "require_pq":
					pol.DefaultResponse.RequirePQ, _ = w.boolean(r.vNode, name)
				case "authentication":
					pol.DefaultResponse.Auth = w.authRefs(r.vNode, name, cfg)
				case "security_methods":
					pol.DefaultResponse.Methods = w.securityMethods(r.vNode, name)
				}
			}
		case "rules":
			items := deref(f.vNode)
			if items.Kind != yaml.SequenceNode {
				w.errorf(items, "%s.rules: expected a list, got %s", ctx, describe(items))
				continue
			}
			for i, it := range items.Content {
				if r := w.rule(it, fmt.Sprintf("%s rule %d", ctx, i+1), lists, authNames, methods, cfg); r != nil {
					pol.Rules = append(pol.Rules, r)
				}
			}
		}
	}
	if len(w.errs) != errsBefore {
		return nil
	}
	if d := pol.DefaultResponse; d.Active && len(d.Auth) == 0 {
		w.errorf(found.kNode, "%s: the default response rule has no authentication methods (add an authentication section, or default_response: {active: false})", ctx)
		return nil
	}
	if err := pol.Validate(); err != nil {
		w.errorf(found.kNode, "%s: %v", ctx, err)
		return nil
	}
	return pol
}

// rule reads one rule of a custom policy.
func (w *walker) rule(n *yaml.Node, ctx string, lists map[string]*policy.FilterList, authNames []string, methods []policy.SecurityMethod, cfg *Config) *policy.Rule {
	pairs, ok := w.mapping(n, ctx, "in "+ctx, ruleKeys, false)
	if !ok {
		return nil
	}
	r := &policy.Rule{Action: policy.Negotiate}
	var listNode, actionNode *yaml.Node
	var authSet, methodsSet bool
	for _, p := range pairs {
		name := ctx + " " + p.key
		switch p.key {
		case "name":
			r.Name, _ = w.str(p.vNode, name)
		case "filter_list":
			s, ok := w.str(p.vNode, name)
			if !ok {
				continue
			}
			listNode = p.vNode
			l, found := lists[s]
			if !found {
				var have []string
				for k := range lists {
					have = append(have, k)
				}
				slices.Sort(have)
				w.errorf(p.vNode, "%s: no filter list named %q (defined: %s)", name, s, strings.Join(have, ", "))
				continue
			}
			r.Filters = l
		case "action":
			actionNode = p.vNode
			if s, ok := w.oneOf(p.vNode, name, "negotiate", "permit", "block"); ok {
				r.Action, _ = policy.ParseAction(s)
			}
		case "security_methods":
			r.Methods, methodsSet = w.securityMethods(p.vNode, name), true
		case "accept_unsecured":
			r.AcceptUnsecured, _ = w.boolean(p.vNode, name)
		case "fallback":
			r.Fallback, _ = w.boolean(p.vNode, name)
		case "fallback_delay":
			r.FallbackDelay, _ = w.duration(p.vNode, name)
		case "pfs":
			r.PFS, _ = w.boolean(p.vNode, name)
		case "require_pq":
			r.RequirePQ, _ = w.boolean(p.vNode, name)
		case "authentication":
			r.Auth, authSet = w.authRefs(p.vNode, name, cfg), true
		case "connection_type":
			if s, ok := w.oneOf(p.vNode, name, "all", "lan", "remote-access"); ok {
				r.Connection, _ = policy.ParseConnectionType(s)
			}
		case "key_module":
			if s, ok := w.oneOf(p.vNode, name, "ikev2", "ikev1", "auto"); ok {
				r.KeyModule, _ = policy.ParseKeyModule(s)
			}
		case "tunnel":
			if s, ok := w.str(p.vNode, name); ok {
				a, err := netip.ParseAddr(s)
				if err != nil {
					w.errorf(p.vNode, "%s: %q is not an IP address", name, s)
				} else {
					r.Tunnel = a.Unmap()
				}
			}
		}
	}
	if listNode == nil {
		w.errorf(n, "%s: missing key \"filter_list\"", ctx)
		return nil
	}
	if actionNode == nil {
		w.errorf(n, "%s: missing key \"action\" (negotiate, permit or block)", ctx)
		return nil
	}
	if r.Filters == nil {
		return nil
	}
	if r.Name == "" {
		r.Name = r.Filters.Name
	}
	if r.Action == policy.Negotiate {
		if !authSet {
			r.Auth = authNames
		}
		if !methodsSet {
			r.Methods = methods
		}
	}
	return r
}
