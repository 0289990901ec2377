package policy

import (
	"net/netip"
	"strings"
	"testing"
)

var (
	hostA = netip.MustParseAddr("10.0.0.1")
	hostB = netip.MustParseAddr("10.0.0.2")
	hostC = netip.MustParseAddr("192.0.2.9")
)

func isA(a netip.Addr) bool { return a == hostA }

func mustAddr(t *testing.T, s string) Address {
	t.Helper()
	a, err := ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMirroredFilterMatchesTheReplyAndAnUnmirroredOneDoesNot(t *testing.T) {
	f := Filter{Src: mustAddr(t, "me"), Dst: mustAddr(t, "10.0.0.0/24"), Protocol: TCP, DstPort: 80, Mirrored: true}
	out := Packet{Src: hostA, Dst: hostB, Protocol: TCP, SrcPort: 40000, DstPort: 80}
	if !f.Matches(out, isA) {
		t.Fatal("outbound request does not match")
	}
	if !f.Matches(out.Reverse(), isA) {
		t.Fatal("the reply does not match the mirrored filter")
	}
	f.Mirrored = false
	if f.Matches(out.Reverse(), isA) {
		t.Fatal("the reply matches an unmirrored filter")
	}
	if f.Matches(Packet{Src: hostA, Dst: hostB, Protocol: TCP, DstPort: 81}, isA) {
		t.Fatal("another port matches")
	}
	if f.Matches(Packet{Src: hostB, Dst: hostA, Protocol: TCP, DstPort: 80}, isA) {
		t.Fatal("a packet not from me matches a filter from me")
	}
}

func TestRangeAddressesMatchInclusiveBoundsAndSplitIntoPrefixes(t *testing.T) {
	a := mustAddr(t, "10.0.0.5-10.0.0.9")
	for ip, want := range map[string]bool{"10.0.0.4": false, "10.0.0.5": true, "10.0.0.9": true, "10.0.0.10": false, "::1": false} {
		if got := a.Contains(netip.MustParseAddr(ip), nil); got != want {
			t.Errorf("%s in %s = %v, want %v", ip, a, got, want)
		}
	}
	var got []string
	for _, p := range a.Prefixes() {
		got = append(got, p.String())
	}
	if s := strings.Join(got, " "); s != "10.0.0.5/32 10.0.0.6/31 10.0.0.8/31" {
		t.Fatalf("prefixes of %s: %s", a, s)
	}
	if _, err := ParseAddress("10.0.0.9-10.0.0.5"); err == nil {
		t.Fatal("a reversed range was accepted")
	}
	if _, err := ParseAddress("10.0.0.1-::2"); err == nil {
		t.Fatal("a range across families was accepted")
	}
}

func TestTheMostSpecificFilterWinsWhateverTheRuleOrder(t *testing.T) {
	all := &FilterList{Name: "all", Filters: []Filter{{Src: mustAddr(t, "any"), Dst: mustAddr(t, "any"), Mirrored: true}}}
	telnet := &FilterList{Name: "telnet", Filters: []Filter{{Src: mustAddr(t, "any"), Dst: mustAddr(t, "any"), Protocol: TCP, DstPort: 23, Mirrored: true}}}
	subnet := &FilterList{Name: "lab", Filters: []Filter{{Src: mustAddr(t, "me"), Dst: mustAddr(t, "10.0.0.0/24"), Mirrored: true}}}
	host := &FilterList{Name: "b", Filters: []Filter{{Src: mustAddr(t, "me"), Dst: mustAddr(t, "10.0.0.2"), Mirrored: true}}}
	rules := []*Rule{
		{Name: "permit-all", Filters: all, Action: Permit},
		{Name: "block-telnet", Filters: telnet, Action: Block},
		{Name: "secure-lab", Filters: subnet, Action: Negotiate, Methods: DefaultSecurityMethods(), Auth: []string{"psk"}},
		{Name: "permit-b", Filters: host, Action: Permit},
	}
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}} {
		p := &Policy{}
		for _, i := range order {
			p.Rules = append(p.Rules, rules[i])
		}
		cases := []struct {
			pkt  Packet
			want string
		}{
			{Packet{Src: hostA, Dst: hostC, Protocol: UDP, DstPort: 53}, "permit-all"},
			{Packet{Src: hostA, Dst: hostC, Protocol: TCP, DstPort: 23}, "block-telnet"},
			{Packet{Src: hostC, Dst: hostA, Protocol: TCP, SrcPort: 23, DstPort: 5000}, "block-telnet"}, // the mirror
			{Packet{Src: hostA, Dst: netip.MustParseAddr("10.0.0.7"), Protocol: TCP, DstPort: 443}, "secure-lab"},
			{Packet{Src: hostA, Dst: netip.MustParseAddr("10.0.0.7"), Protocol: TCP, DstPort: 23}, "secure-lab"}, // a subnet outweighs a port
			{Packet{Src: hostB, Dst: hostA, Protocol: ICMP}, "permit-b"},
		}
		for _, c := range cases {
			d := p.Decide(c.pkt, isA)
			if d.Rule == nil || d.Rule.Name != c.want {
				t.Errorf("order %v: %s decided by %+v, want %s", order, c.pkt, d.Rule, c.want)
			}
		}
		ord := p.Ordered()
		if ord[0].Rule.Name != "permit-b" || ord[len(ord)-1].Rule.Name != "permit-all" {
			t.Errorf("order %v: Ordered starts with %s and ends with %s", order, ord[0].Rule.Name, ord[len(ord)-1].Rule.Name)
		}
	}
}

func TestEquallySpecificFiltersTieToTheSaferAction(t *testing.T) {
	l := &FilterList{Filters: []Filter{{Src: mustAddr(t, "me"), Dst: mustAddr(t, "any"), Mirrored: true}}}
	p := &Policy{Rules: []*Rule{{Name: "p", Filters: l, Action: Permit}, {Name: "n", Filters: l, Action: Negotiate}, {Name: "b", Filters: l, Action: Block}}}
	if d := p.Decide(Packet{Src: hostA, Dst: hostB, Protocol: TCP}, isA); d.Rule.Name != "b" {
		t.Fatalf("tie went to %s, want the block rule", d.Rule.Name)
	}
}

func TestIKEKerberosMulticastAndBroadcastAreExemptEvenFromAnAllTrafficRule(t *testing.T) {
	p, err := Builtin(SecureServerRequireSecurity, []string{"kerberos"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kdc := netip.MustParseAddr("10.0.0.53")
	p.KDCs = []netip.Addr{kdc}
	p.Exempt = []netip.Prefix{netip.MustParsePrefix("10.0.9.0/24")}
	cases := map[Exemption]Packet{
		ExemptIKE:        {Src: hostA, Dst: hostB, Protocol: UDP, SrcPort: 500, DstPort: 500},
		ExemptKerberos:   {Src: hostA, Dst: kdc, Protocol: TCP, SrcPort: 40000, DstPort: 88},
		ExemptMulticast:  {Src: hostA, Dst: netip.MustParseAddr("224.0.0.251"), Protocol: UDP, DstPort: 5353},
		ExemptConfigured: {Src: hostA, Dst: netip.MustParseAddr("10.0.9.1"), Protocol: TCP, DstPort: 22},
	}
	for want, pkt := range cases {
		if d := p.Decide(pkt, isA); d.Exempt != want || d.Rule != nil {
			t.Errorf("%s: decision %+v, want exempt %s", pkt, d, want)
		}
	}
	// Port 88 to a host that is not a KDC is negotiated like the rest.
	if d := p.Decide(Packet{Src: hostA, Dst: hostB, Protocol: TCP, DstPort: 88}, isA); d.Rule == nil || d.Rule.Action != Negotiate {
		t.Errorf("port 88 to a non-KDC: %+v", d)
	}
	if d := p.Decide(Packet{Src: hostA, Dst: hostB, Protocol: ICMP}, isA); d.Rule == nil || d.Rule.Action != Permit {
		t.Errorf("ICMP is not permitted by the built-in rule: %+v", d)
	}
}

func TestBuiltinPoliciesMatchWindowsDefaults(t *testing.T) {
	for _, name := range BuiltinNames() {
		p, err := Builtin(name, []string{"kerberos", "psk"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !p.DefaultResponse.Active {
			t.Errorf("%s: default response rule off", name)
		}
		tcp := p.Decide(Packet{Src: hostA, Dst: hostB, Protocol: TCP, DstPort: 445}, isA)
		switch name {
		case ClientRespondOnly:
			if p.Negotiates() || tcp.Rule != nil {
				t.Errorf("respond-only initiates: %+v", tcp)
			}
		case ServerRequestSecurity:
			if !tcp.Rule.Fallback || !tcp.Rule.AcceptUnsecured {
				t.Errorf("request security without fallback or accept-unsecured: %+v", tcp.Rule)
			}
		case SecureServerRequireSecurity:
			if tcp.Rule.Fallback || !tcp.Rule.AcceptUnsecured {
				t.Errorf("require security falls back or refuses unsecured: %+v", tcp.Rule)
			}
		}
	}
	if _, err := Builtin("server", nil, nil); err == nil {
		t.Fatal("an unknown built-in name was accepted")
	}
}

func TestReloadKeepsOnlyTheSAsTheNewPolicyStillAllows(t *testing.T) {
	request, _ := Builtin(ServerRequestSecurity, []string{"psk"}, nil)
	respond, _ := Builtin(ClientRespondOnly, []string{"psk"}, nil)
	certOnly, _ := Builtin(SecureServerRequireSecurity, []string{"cert"}, nil)
	noTelnet := &Policy{Rules: []*Rule{
		{Name: "block-b", Filters: &FilterList{Filters: []Filter{{Src: mustAddr(t, "me"), Dst: mustAddr(t, "10.0.0.2"), Mirrored: true}}}, Action: Block},
	}}
	sa := SAView{Local: hostA, Remote: hostB, Auth: "psk"}
	cases := []struct {
		name string
		p    *Policy
		want bool
	}{
		{"request-security keeps a psk SA", request, true},
		{"respond-only keeps it by the default response rule", respond, true},
		{"a cert-only policy removes a psk SA", certOnly, false},
		{"a block rule for the peer removes it", noTelnet, false},
	}
	for _, c := range cases {
		if got, why := c.p.Keeps(sa, isA, nil); got != c.want {
			t.Errorf("%s: Keeps = %v (%s)", c.name, got, why)
		}
	}
	// Entries are named by the configuration; the SA knows the method.
	named, _ := Builtin(ClientRespondOnly, []string{"lab-secret"}, nil)
	if ok, why := named.Keeps(sa, isA, func(n string) string { return map[string]string{"lab-secret": "psk"}[n] }); !ok {
		t.Errorf("an SA authenticated by the psk entry lab-secret is removed: %s", why)
	}
	respond.DefaultResponse.Active = false
	if ok, _ := respond.Keeps(sa, isA, nil); ok {
		t.Error("respond-only with the default response rule off keeps the SA")
	}
}

func TestValidateRefusesNegotiateWithoutMethodsAndSecuritySettingsOnPermit(t *testing.T) {
	l := BuiltinFilterLists()[AllIPTraffic]
	p := &Policy{Rules: []*Rule{{Name: "x", Filters: l, Action: Negotiate}, {Name: "y", Filters: l, Action: Permit, Fallback: true}}}
	err := p.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`rule "x": negotiate needs at least one security method`, `rule "x": negotiate needs at least one authentication method`, `rule "y": security settings need action negotiate`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestReloadKeepsAnSAOnlyIfTheRulesKeyModuleSpeaksItsVersion(t *testing.T) {
	v1 := SAView{Local: hostA, Remote: hostB, Auth: "psk", Version: VersionIKEv1}
	v2 := v1
	v2.Version = VersionIKEv2
	p, _ := Builtin(SecureServerRequireSecurity, []string{"psk"}, nil)
	for _, c := range []struct {
		km     KeyModule
		sa     SAView
		keep   bool
		reason string
	}{
		{"", v2, true, "rule all-ip"},
		{"", v1, false, "rule all-ip now negotiates with ikev2, not ikev1"},
		{KeyModuleIKEv1, v1, true, "rule all-ip"},
		{KeyModuleIKEv1, v2, false, "rule all-ip now negotiates with ikev1, not ikev2"},
		{KeyModuleAuto, v1, true, "rule all-ip"},
		{KeyModuleAuto, v2, true, "rule all-ip"},
	} {
		p.KeyExchange.KeyModule = c.km
		if got, why := p.Keeps(c.sa, isA, nil); got != c.keep || why != c.reason {
			t.Errorf("key module %q, %s SA: Keeps = %v (%s), want %v (%s)", c.km, c.sa.Version, got, why, c.keep, c.reason)
		}
	}
	// The default response rule answers with the policy's key module.
	respond, _ := Builtin(ClientRespondOnly, []string{"psk"}, nil)
	if ok, why := respond.Keeps(v1, isA, nil); ok {
		t.Errorf("an IKEv2 default response rule keeps an IKEv1 SA (%s)", why)
	}
	respond.KeyExchange.KeyModule = KeyModuleIKEv1
	if ok, why := respond.Keeps(v1, isA, nil); !ok {
		t.Errorf("an IKEv1 default response rule removes an IKEv1 SA: %s", why)
	}
	if !respond.UsesVersion(VersionIKEv1) || respond.UsesVersion(VersionIKEv2) {
		t.Error("UsesVersion of an IKEv1 respond-only policy")
	}
	if got := KeyModuleAuto.Versions(); len(got) != 2 || got[0] != VersionIKEv2 {
		t.Errorf("auto initiates with %v, want IKEv2 first", got)
	}
}
