package config

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/iked/iked/policy"
	"github.com/iked/iked/transform"
)

// keyExchangeKeys are the keys of policy.key_exchange: a Windows IPsec
// policy's Key Exchange Settings.
var keyExchangeKeys = []string{"key_module", "methods", "lifetime", "quick_modes", "master_key_pfs", "allow_legacy"}

// keyExchange reads policy.key_exchange.
func (w *walker) keyExchange(n *yaml.Node, name string) policy.KeyExchange {
	var kx policy.KeyExchange
	pairs, _ := w.mapping(n, name, "in "+name, keyExchangeKeys, false)
	for _, p := range pairs {
		key := name + "." + p.key
		switch p.key {
		case "key_module":
			if s, ok := w.oneOf(p.vNode, key, "ikev2", "ikev1", "auto"); ok {
				kx.KeyModule, _ = policy.ParseKeyModule(s)
			}
		case "methods":
			list, nodes, ok := w.strList(p.vNode, key)
			if !ok {
				break
			}
			if len(list) == 0 {
				w.errorf(p.vNode, "%s: empty list (omit the key for the defaults)", key)
			}
			kx.Methods = list
			for i, s := range list {
				if w.proposalNodes == nil {
					w.proposalNodes = map[string]*yaml.Node{}
				}
				w.proposalNodes["main:"+s] = nodes[i]
			}
		case "lifetime":
			kx.Lifetime, _ = w.duration(p.vNode, key)
		case "quick_modes":
			if v, ok := w.integer(p.vNode, key, 0, 1<<20); ok {
				kx.QuickModes = int(v)
			}
		case "master_key_pfs":
			kx.MasterKeyPFS, _ = w.boolean(p.vNode, key)
		case "allow_legacy":
			kx.AllowLegacy, _ = w.boolean(p.vNode, key)
		}
	}
	return kx
}

// checkKeyExchange checks the policy's main mode methods and every
// negotiate rule's (and the default response rule's) security methods
// against the key modules that use them: a method serves the versions of
// its rule's key module it fits (IKEv2's algorithm set, IKEv1's), one
// written in the file that fits none of them is an error, a default one
// (the built-ins' aes256gcm16, which IKEv1 cannot negotiate) is simply not
// used there, and a rule needs a method for each version it speaks. The
// legacy IKEv1 algorithms only with allow_legacy, and then with a warning,
// as for a connection. at is where an error without a line of its own
// points (the policy's assign).
func (w *walker) checkKeyExchange(pol *policy.Policy, kxNode, at *yaml.Node) {
	kx := pol.KeyExchange
	modules := map[policy.KeyModule]bool{}
	if kxNode != nil {
		at = kxNode
	}
	check := func(s string, node *yaml.Node, km policy.KeyModule, main bool) {
		if node == nil {
			node = at
		}
		what := "security method"
		parse2, parse1 := transform.ParseESPProposal, transform.ParseIKEv1ESPProposal
		if main {
			what = "main mode method"
			parse2, parse1 = transform.ParseIKEProposal, transform.ParseIKEv1Proposal
		}
		if km != policy.KeyModuleIKEv1 {
			if _, err := parse2(s); err != nil {
				w.errorf(node, "policy %s: %s %q (key module %s): %v", pol.Name, what, s, km, err)
				return
			}
		}
		if km == policy.KeyModuleIKEv2 {
			return
		}
		p, err := parse1(s)
		if err != nil {
			w.errorf(node, "policy %s: %s %q (key module %s): %v", pol.Name, what, s, km, err)
			return
		}
		if algs := p.LegacyAlgorithms(); len(algs) > 0 {
			if !kx.AllowLegacy {
				w.errorf(node, "policy %s: %s %q uses the legacy %s: set key_exchange.allow_legacy: true to allow them", pol.Name, what, s, strings.Join(algs, ", "))
				return
			}
			line := 0
			if node != nil {
				line = node.Line
			}
			w.warns = append(w.warns, Warning{File: w.file, Line: line,
				Msg: fmt.Sprintf("policy %s: %s %q uses the legacy %s (allowed by allow_legacy)", pol.Name, what, s, strings.Join(algs, ", "))})
		}
	}
	fits := func(s, version string) bool {
		var err error
		if version == policy.VersionIKEv1 {
			_, err = transform.ParseIKEv1ESPProposal(s)
		} else {
			_, err = transform.ParseESPProposal(s)
		}
		return err == nil
	}
	checkRule := func(name string, methods []policy.SecurityMethod, km policy.KeyModule) {
		modules[km] = true
		have := map[string]bool{}
		// The defaults serve the versions they fit, wherever the same
		// strings are written elsewhere in the file.
		defaults := slices.Equal(methods, policy.DefaultSecurityMethods())
		for _, m := range methods {
			node := w.proposalNodes[m.Proposal]
			if defaults {
				node = nil
			}
			used := false
			for _, v := range km.Versions() {
				if fits(m.Proposal, v) {
					have[v], used = true, true
				}
			}
			switch {
			case !used && node != nil:
				check(m.Proposal, node, km, false) // says why it fits none
			case used && km.Speaks(policy.VersionIKEv1) && fits(m.Proposal, policy.VersionIKEv1):
				check(m.Proposal, node, policy.KeyModuleIKEv1, false) // the legacy algorithms
			}
		}
		for _, v := range km.Versions() {
			if !have[v] && len(methods) > 0 {
				example := "aes256gcm16"
				if v == policy.VersionIKEv1 {
					example = "aes256-sha256"
				}
				w.errorf(at, "policy %s: %s (key module %s) has no security method %s can negotiate: add one, e.g. %s",
					pol.Name, name, km, strings.ToUpper(v[:3])+v[3:], example)
			}
		}
	}
	for _, r := range pol.Rules {
		if r.Action != policy.Negotiate {
			continue
		}
		checkRule("rule "+r.Name, r.Methods, pol.RuleKeyModule(r))
	}
	if d := pol.DefaultResponse; d.Active {
		checkRule("the default response rule", d.Methods, pol.DefaultResponseKeyModule())
	}
	if len(modules) == 0 {
		modules[pol.RuleKeyModule(&policy.Rule{})] = true
	}
	// A main mode method serves the key modules it fits: one that fits
	// none of the modules in use is an error (3des-sha1-modp1024 in a
	// policy of IKEv1 and IKEv2 rules serves the IKEv1 ones).
	for _, s := range kx.Methods {
		at := w.proposalNodes["main:"+s]
		_, err2 := transform.ParseIKEProposal(s)
		_, err1 := transform.ParseIKEv1Proposal(s)
		switch {
		case modules[policy.KeyModuleIKEv1] || modules[policy.KeyModuleAuto]:
			if err1 == nil {
				check(s, at, policy.KeyModuleIKEv1, true)
			} else if err2 != nil || !modules[policy.KeyModuleIKEv2] {
				check(s, at, policy.KeyModuleIKEv1, true)
			}
		default:
			check(s, at, policy.KeyModuleIKEv2, true)
		}
	}
}
