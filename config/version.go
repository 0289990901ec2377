package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/iked/iked/transform"
)

// versionProposals reads a connection's ike_proposals and esp_proposals
// for the key exchanges it speaks: IKEv2's algorithm set for ikev2,
// IKEv1's for ikev1, both for auto (where a proposal written out must be
// valid in both, and the defaults are each version's own). Legacy IKEv1
// algorithms need allow_legacy and are warned about.
func (w *walker) versionProposals(c *Connection, nodes map[string]*yaml.Node) {
	ikeN, espN := nodes["ike_proposals"], nodes["esp_proposals"]
	if c.SpeaksIKEv2() {
		note := ""
		if c.Version == VersionAuto {
			note = " (version auto uses it for IKEv2 and IKEv1 alike)"
		}
		c.IKEProposalStrings, c.IKEProposals = w.proposals(ikeN, "ike_proposals", suffixed(transform.ParseIKEProposal, note), DefaultIKEProposals()...)
		c.ESPProposalStrings, c.ESPProposals = w.proposals(espN, "esp_proposals", suffixed(transform.ParseESPProposal, note), DefaultESPProposals()...)
	}
	if !c.SpeaksIKEv1() {
		return
	}
	note := ""
	if c.Version == VersionAuto {
		note = " (version auto uses it for IKEv2 and IKEv1 alike)"
	}
	c.IKEv1ProposalStrings, c.IKEv1Proposals = w.proposals(ikeN, "ike_proposals", suffixed(transform.ParseIKEv1Proposal, note), DefaultIKEv1Proposals()...)
	c.IKEv1ESPProposalStrings, c.IKEv1ESPProposals = w.proposals(espN, "esp_proposals", suffixed(transform.ParseIKEv1ESPProposal, note), DefaultIKEv1ESPProposals()...)
	if c.Version == VersionIKEv1 {
		c.IKEProposalStrings, c.IKEProposals = c.IKEv1ProposalStrings, c.IKEv1Proposals
		c.ESPProposalStrings, c.ESPProposals = c.IKEv1ESPProposalStrings, c.IKEv1ESPProposals
	}
	w.legacy(c, ikeN, c.IKEv1ProposalStrings, c.IKEv1Proposals, "ike_proposals", nodes["allow_legacy"])
	w.legacy(c, espN, c.IKEv1ESPProposalStrings, c.IKEv1ESPProposals, "esp_proposals", nodes["allow_legacy"])
}

// suffixed adds a note to a parser's errors.
func suffixed(parse func(string) (transform.Proposal, error), note string) func(string) (transform.Proposal, error) {
	if note == "" {
		return parse
	}
	return func(s string) (transform.Proposal, error) {
		p, err := parse(s)
		if err != nil {
			return p, fmt.Errorf("%w%s", err, note)
		}
		return p, nil
	}
}

// legacy refuses the legacy algorithms without allow_legacy, and warns of
// them with it: the Windows 2003 default main mode (3DES, SHA-1,
// MODP-1024) is configurable, never a default, never silent.
func (w *walker) legacy(c *Connection, n *yaml.Node, strs []string, ps []transform.Proposal, key string, allowNode *yaml.Node) {
	for i, p := range ps {
		algs := p.LegacyAlgorithms()
		if len(algs) == 0 {
			continue
		}
		at := n
		if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
			at = n.Content[i]
		}
		s := ""
		if i < len(strs) {
			s = strs[i]
		}
		if !c.AllowLegacy {
			w.errorf(at, "%s: %q uses the legacy %s, which are broken or too weak for new deployments (3DES/SHA-1/MODP-1024 is the Windows 2003 default main mode): set allow_legacy: true in connection %q to allow them", key, s, strings.Join(algs, ", "), c.Name)
			continue
		}
		line := 0
		if at != nil {
			line = at.Line
		} else if allowNode != nil {
			line = allowNode.Line
		}
		w.warns = append(w.warns, Warning{File: w.file, Line: line,
			Msg: fmt.Sprintf("connection %q: %s %q uses the legacy %s (allowed by allow_legacy)", c.Name, key, s, strings.Join(algs, ", "))})
	}
}
