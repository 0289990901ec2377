package policy

import (
	"fmt"
	"net/netip"
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
	// Version is the IKE version that negotiated the SA ("ikev2",
	// "ikev1"); empty means any. A rule keeps only SAs of a version its
	// key module speaks.
	Version string
}

// accepts reports whether one of names (the policy's authentication
// entries) is of method m; methodOf maps an entry to its method's name
// (nil: the entries are method names).
func accepts(names []string, m string, methodOf func(string) string) bool {
	for _, n := range names {
		if methodOf != nil {
			n = methodOf(n)
		}
		if n == m {
			return true
		}
	}
	return false
}

// Keeps reports whether the policy still allows the SA, and why: assigning
// a policy keeps the SAs it would have negotiated or answered, and the
// caller removes the rest. A negotiate rule keeps SAs whose auth method it
// lists; traffic no rule matches is kept by an active default response rule
// that lists the auth method; permit, block and exempt traffic is no longer
// secured.
//
// methodOf maps the names of the policy's authentication entries to their
// methods' names ("corp-kerberos" to "kerberos"); nil when they are the
// same.
func (p *Policy) Keeps(sa SAView, local func(netip.Addr) bool, methodOf func(string) string) (bool, string) {
	pkt := Packet{Src: sa.Local, Dst: sa.Remote, Protocol: sa.Protocol, SrcPort: sa.LocalPort, DstPort: sa.RemotePort}
	d := p.Decide(pkt, local)
	switch {
	case d.Exempt != NotExempt:
		return false, fmt.Sprintf("the traffic is exempt (%s)", d.Exempt)
	case d.Rule == nil:
		if !p.DefaultResponse.Active {
			return false, "no rule matches and the default response rule is off"
		}
		if !accepts(p.DefaultResponse.Auth, sa.Auth, methodOf) {
			return false, fmt.Sprintf("the default response rule does not accept %s authentication", sa.Auth)
		}
		if km := p.DefaultResponseKeyModule(); sa.Version != "" && !km.Speaks(sa.Version) {
			return false, fmt.Sprintf("the default response rule answers with %s, not %s", km, sa.Version)
		}
		return true, "default response rule"
	case d.Rule.Action != Negotiate:
		return false, fmt.Sprintf("rule %s now says %s", d.Rule.Name, d.Rule.Action)
	case !accepts(d.Rule.Auth, sa.Auth, methodOf):
		return false, fmt.Sprintf("rule %s does not accept %s authentication", d.Rule.Name, sa.Auth)
	case sa.Version != "" && !p.RuleKeyModule(d.Rule).Speaks(sa.Version):
		return false, fmt.Sprintf("rule %s now negotiates with %s, not %s", d.Rule.Name, p.RuleKeyModule(d.Rule), sa.Version)
	}
	return true, "rule " + d.Rule.Name
}
