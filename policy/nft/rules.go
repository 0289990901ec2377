package nft

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/iked/iked/policy"
	"github.com/iked/iked/sadb"
)

// Rules are the rule bodies of iked's chains, as nft's "add rule" takes
// them.
type Rules struct {
	ExemptOut, ExemptIn []string
	Out, In             []string
}

// Compile turns a policy into rules: exemptions first, then every filter
// in specificity order (policy.Ordered), each in the directions it
// matches. Outbound, block drops, permit accepts, negotiate marks the
// packet for the data plane unless its peer is in the clear set (fallback
// rules only). Inbound, a clear packet matching a negotiate rule is
// accepted with "accept unsecured" or from a peer in the clear set, and
// dropped otherwise.
func Compile(p *policy.Policy, mark uint32) *Rules {
	r := &Rules{}
	r.ExemptOut = append(r.ExemptOut,
		`oifname "lo" accept`,
		"udp sport { 500, 4500 } accept",
		"udp dport { 500, 4500 } accept",
		"meta l4proto { esp, ah } accept",
		"fib daddr type { broadcast, multicast } accept",
		"ip daddr { 224.0.0.0/4, 255.255.255.255 } accept",
		"ip6 daddr ff00::/8 accept",
		ndExempt,
	)
	r.ExemptIn = append(r.ExemptIn,
		`iifname "lo" accept`,
		"udp sport { 500, 4500 } accept",
		"udp dport { 500, 4500 } accept",
		"meta l4proto { esp, ah } accept",
		"fib daddr type { broadcast, multicast } accept",
		ndExempt,
	)
	// Both ways: this host talking to a KDC, and, on the KDC itself, the
	// KDC answering.
	for _, kdc := range p.KDCs {
		fam := family(kdc)
		toKDC := fmt.Sprintf("%s daddr %s meta l4proto { tcp, udp } th dport %d accept", fam, kdc, policy.KerberosPort)
		fromKDC := fmt.Sprintf("%s saddr %s meta l4proto { tcp, udp } th sport %d accept", fam, kdc, policy.KerberosPort)
		r.ExemptOut = append(r.ExemptOut, toKDC, fromKDC)
		r.ExemptIn = append(r.ExemptIn, fromKDC, toKDC)
	}
	for _, e := range p.Exempt {
		fam := family(e.Addr())
		r.ExemptOut = append(r.ExemptOut, fmt.Sprintf("%s daddr %s accept", fam, e))
		r.ExemptIn = append(r.ExemptIn, fmt.Sprintf("%s saddr %s accept", fam, e))
	}
	for _, d := range p.Ordered() {
		f := d.Filter
		orient := []policy.Filter{*f}
		if f.Mirrored {
			orient = append(orient, policy.Filter{Src: f.Dst, Dst: f.Src, Protocol: f.Protocol, SrcPort: f.DstPort, DstPort: f.SrcPort})
		}
		for _, o := range orient {
			if m, ok := match(o, true, d.Rule.Connection); ok {
				r.Out = append(r.Out, outVerdicts(m, d.Rule, mark)...)
			}
			if m, ok := match(o, false, d.Rule.Connection); ok {
				r.In = append(r.In, inVerdicts(m, d.Rule)...)
			}
		}
	}
	return r
}

// ndExempt: IPv6 neighbour discovery (ICMPv6 133-137).
const ndExempt = "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept"

// matchExpr is one oriented filter as nft matches: the family ("ip",
// "ip6" or "" for both) and the expression.
type matchExpr struct {
	fam  string
	expr string
}

// match renders an oriented filter for one direction. Outbound packets
// come from this host, inbound ones go to it: "me" on that side is always
// true, and "me" on the other side never (local traffic is not policy's).
func match(f policy.Filter, out bool, ct policy.ConnectionType) (matchExpr, bool) {
	local, remote := f.Src, f.Dst
	localDir, remoteDir := "saddr", "daddr"
	if !out {
		local, remote = f.Dst, f.Src
		localDir, remoteDir = "daddr", "saddr"
	}
	if remote.Kind == policy.MyAddress {
		return matchExpr{}, false
	}
	var parts []string
	fam := ""
	addr := func(a policy.Address, dir string) bool {
		var vals []string
		switch a.Kind {
		case policy.AnyAddress, policy.MyAddress:
			return true
		case policy.Range:
			vals = []string{a.From.String() + "-" + a.To.String()}
			fam = family(a.From)
		default:
			vals = []string{a.Prefix.String()}
			fam = family(a.Prefix.Addr())
		}
		parts = append(parts, fmt.Sprintf("%s %s %s", fam, dir, strings.Join(vals, ", ")))
		return true
	}
	addr(local, localDir)
	addr(remote, remoteDir)
	parts = append(parts, l4(f.Protocol, f.SrcPort, f.DstPort)...)
	iface := "oiftype"
	if !out {
		iface = "iiftype"
	}
	switch ct {
	case policy.LAN:
		parts = append(parts, "meta "+iface+" ether")
	case policy.RemoteAccess:
		parts = append(parts, "meta "+iface+" != ether")
	}
	return matchExpr{fam: fam, expr: strings.Join(parts, " ")}, true
}

// l4 matches a protocol and ports (0: any).
func l4(proto uint8, sport, dport uint16) []string {
	var parts []string
	if proto != 0 {
		parts = append(parts, fmt.Sprintf("meta l4proto %d", proto))
	}
	if sport != 0 {
		parts = append(parts, fmt.Sprintf("th sport %d", sport))
	}
	if dport != 0 {
		parts = append(parts, fmt.Sprintf("th dport %d", dport))
	}
	return parts
}

func family(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "ip"
	}
	return "ip6"
}

func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}

// clearSets are the clear-set lookups of a family ("" = both).
func clearSets(fam, dir string) []string {
	switch fam {
	case "ip":
		return []string{"ip " + dir + " @clear4"}
	case "ip6":
		return []string{"ip6 " + dir + " @clear6"}
	}
	return []string{"ip " + dir + " @clear4", "ip6 " + dir + " @clear6"}
}

func outVerdicts(m matchExpr, r *policy.Rule, mark uint32) []string {
	switch r.Action {
	case policy.Block:
		return []string{join(m.expr, `counter name "blocked" drop`)}
	case policy.Permit:
		return []string{join(m.expr, `counter name "permitted" accept`)}
	}
	var out []string
	if r.Fallback {
		for _, set := range clearSets(m.fam, "daddr") {
			out = append(out, join(m.expr, set, `counter name "fallback" accept`))
		}
	}
	return append(out, join(m.expr, fmt.Sprintf(`counter name "secured" meta mark set %#x accept`, mark)))
}

func inVerdicts(m matchExpr, r *policy.Rule) []string {
	switch r.Action {
	case policy.Block:
		return []string{join(m.expr, `counter name "blocked" drop`)}
	case policy.Permit:
		return []string{join(m.expr, `counter name "permitted" accept`)}
	}
	if r.AcceptUnsecured {
		return []string{join(m.expr, `counter name "unsecured_in" accept`)}
	}
	var out []string
	if r.Fallback {
		for _, set := range clearSets(m.fam, "saddr") {
			out = append(out, join(m.expr, set, `counter name "fallback" accept`))
		}
	}
	return append(out, join(m.expr, `counter name "refused" drop`))
}

// SecuredRule returns the rule that marks the outbound traffic of a Child
// SA's policy, and the key AddSecured files it under.
func SecuredRule(sel sadb.Selector, mark uint32) (key, rule string) {
	fam := family(sel.Dst.Addr())
	parts := []string{
		fmt.Sprintf("%s saddr %s", fam, sel.Src.Masked()),
		fmt.Sprintf("%s daddr %s", fam, sel.Dst.Masked()),
	}
	parts = append(parts, l4(sel.Proto, sel.SrcPort, sel.DstPort)...)
	parts = append(parts, fmt.Sprintf(`counter name "secured" meta mark set %#x accept`, mark))
	return sel.String(), strings.Join(parts, " ")
}
