package policy

import (
	"fmt"
	"net/netip"
	"slices"
)

// SAView is what a reload needs to know of an established SA: the traffic
// its Child SA protects (the first local and remote selector, protocol
// and ports; 0 is any) and how the peer authenticated.
type SAView struct {
	Local, Remote         netip.Addr
	Protocol              uint8
	LocalPort, RemotePort uint16
	// Auth is the auth method's name ("kerberos", "cert", "psk").
	Auth string
}

// Keeps reports whether the policy still allows the SA, and why: assigning
// a policy keeps the SAs it would have negotiated or answered, and the
// caller removes the rest. A negotiate rule keeps SAs whose auth method it
// lists; traffic no rule matches is kept by an active default response rule
// that lists the auth method; permit, block and exempt traffic is no longer
// secured.
func (p *Policy) Keeps(sa SAView, local func(netip.Addr) bool) (bool, string) {
	pkt := Packet{Src: sa.Local, Dst: sa.Remote, Protocol: sa.Protocol, SrcPort: sa.LocalPort, DstPort: sa.RemotePort}
	d := p.Decide(pkt, local)
	switch {
	case d.Exempt != NotExempt:
		return false, fmt.Sprintf("the traffic is exempt (%s)", d.Exempt)
	case d.Rule == nil:
		if !p.DefaultResponse.Active {
			return false, "no rule matches and the default response rule is off"
		}
		if !slices.Contains(p.DefaultResponse.Auth, sa.Auth) {
			return false, fmt.Sprintf("the default response rule does not accept %s authentication", sa.Auth)
		}
		return true, "default response rule"
	case d.Rule.Action != Negotiate:
		return false, fmt.Sprintf("rule %s now says %s", d.Rule.Name, d.Rule.Action)
	case !slices.Contains(d.Rule.Auth, sa.Auth):
		return false, fmt.Sprintf("rule %s does not accept %s authentication", d.Rule.Name, sa.Auth)
	}
	return true, "rule " + d.Rule.Name
}
