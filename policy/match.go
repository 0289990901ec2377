package policy

import (
	"net/netip"
	"slices"
)

// Exemption says why traffic is never negotiated.
type Exemption string

// Exemptions, as Windows exempts them from "All IP Traffic".
const (
	NotExempt Exemption = ""
	// ExemptIKE is IKE itself (UDP 500 and 4500), and ESP and AH: the
	// protocol that sets up security cannot wait for it.
	ExemptIKE Exemption = "ike"
	// ExemptKerberos is traffic to and from a KDC (port 88): Kerberos
	// authentication needs its KDC before any SA exists.
	ExemptKerberos Exemption = "kerberos"
	// ExemptMulticast is multicast and broadcast: IKE negotiates with one
	// peer at a time.
	ExemptMulticast Exemption = "multicast"
	// ExemptND is IPv6 neighbour discovery, without which there is no
	// IPv6 at all.
	ExemptND Exemption = "neighbour-discovery"
	// ExemptConfigured is an address listed in the policy's exemptions.
	ExemptConfigured Exemption = "configured"
)

// IKE's ports and the Kerberos port.
const (
	IKEPort      = 500
	NATTPort     = 4500
	KerberosPort = 88
	protoESP     = 50
	protoAH      = 51
)

// ExemptionOf reports why a packet (either direction) is exempt from the
// policy, or NotExempt.
func (p *Policy) ExemptionOf(pkt Packet) Exemption {
	ports := func(x uint16) bool { return pkt.SrcPort == x || pkt.DstPort == x }
	switch {
	case pkt.Protocol == UDP && (ports(IKEPort) || ports(NATTPort)), pkt.Protocol == protoESP, pkt.Protocol == protoAH:
		return ExemptIKE
	case pkt.Dst.IsMulticast() || pkt.Dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return ExemptMulticast
	case pkt.Protocol == ICMPv6 && pkt.Dst.Is6() && isND(pkt):
		return ExemptND
	}
	if (pkt.Protocol == TCP || pkt.Protocol == UDP) && ports(KerberosPort) &&
		(slices.Contains(p.KDCs, pkt.Dst.Unmap()) || slices.Contains(p.KDCs, pkt.Src.Unmap())) {
		return ExemptKerberos
	}
	for _, e := range p.Exempt {
		if e.Contains(pkt.Dst.Unmap()) || e.Contains(pkt.Src.Unmap()) {
			return ExemptConfigured
		}
	}
	return NotExempt
}

// isND: ICMPv6 types 133-137 travel as Packet.SrcPort in this model (the
// type where a port would be), as in XFRM selectors.
func isND(pkt Packet) bool { return pkt.SrcPort >= 133 && pkt.SrcPort <= 137 }

// Decision is what the policy does with a packet.
type Decision struct {
	// Exempt is set when the packet is exempt; Rule is then nil.
	Exempt Exemption
	// Rule and Filter are the most specific matching filter and its rule;
	// nil when no filter matches (the packet passes in clear, unmatched).
	Rule   *Rule
	Filter *Filter
}

// Decide finds the most specific filter of any rule that matches pkt.
// local tells this host's addresses (for "me"). Ties between equally
// specific filters of different rules go to block, then negotiate, then
// permit: the safer answer.
func (p *Policy) Decide(pkt Packet, local func(netip.Addr) bool) Decision {
	if e := p.ExemptionOf(pkt); e != NotExempt {
		return Decision{Exempt: e}
	}
	var best Decision
	var bestW uint32
	for _, r := range p.Rules {
		if r.Filters == nil {
			continue
		}
		for i := range r.Filters.Filters {
			f := &r.Filters.Filters[i]
			if !f.Matches(pkt, local) {
				continue
			}
			w := f.Weight()
			if best.Rule == nil || w > bestW || w == bestW && safer(r.Action, best.Rule.Action) {
				best, bestW = Decision{Rule: r, Filter: f}, w
			}
		}
	}
	return best
}

// safer orders actions for ties: block, negotiate, permit.
func safer(a, b Action) bool { return safety[a] < safety[b] }

// safety ranks the actions for ties, safest first.
var safety = [...]int{Block: 0, Negotiate: 1, Permit: 2}

// Ordered returns every filter of every rule, most specific first, each
// with its rule: the order in which a data plane must evaluate them.
func (p *Policy) Ordered() []Decision {
	var out []Decision
	for _, r := range p.Rules {
		if r.Filters == nil {
			continue
		}
		for i := range r.Filters.Filters {
			out = append(out, Decision{Rule: r, Filter: &r.Filters.Filters[i]})
		}
	}
	slices.SortStableFunc(out, func(a, b Decision) int {
		wa, wb := a.Filter.Weight(), b.Filter.Weight()
		switch {
		case wa != wb:
			if wa > wb {
				return -1
			}
			return 1
		case safer(a.Rule.Action, b.Rule.Action):
			return -1
		case safer(b.Rule.Action, a.Rule.Action):
			return 1
		}
		return 0
	})
	return out
}
