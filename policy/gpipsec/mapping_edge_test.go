package gpipsec

import (
	"strings"
	"testing"

	"github.com/iked/iked/policy"
)

// TestMappingReportsWhatItCannotApply: a pre-shared key becomes a method
// of its own (its secret in no note), an inactive rule and a special
// filter are left out and reported, a rule with nothing left is refused.
func TestMappingReportsWhatItCannotApply(t *testing.T) {
	objs, _ := Export(labPolicy(), ExportOptions{DomainDN: testDomainDN, Auth: func(string) (AuthMethod, bool) { return AuthMethod{Type: AuthKerberos}, true }})
	d, err := NewDirectory(objs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Resolve("lab-server")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "open sesame, a long enough key"
	var lab, icmp *Rule
	for _, r := range p.Rules {
		switch r.Object.Name {
		case "lab":
			lab = r
		case "icmp":
			icmp = r
		}
	}
	lab.Data.Auth = []AuthMethod{{Type: AuthPSK, Value: secret}, {Type: AuthCertificate, Value: "CN=Unknown CA"}}
	icmp.Data.Active = false
	// The telnet list gets a filter naming this host's DNS servers.
	for _, r := range p.Rules {
		if r.Object.Name == "no-telnet" {
			fl := r.Filters[0]
			fl.Data.V2 = append(fl.Data.V2, FilterV2{Src: AddressSpec{Type: AddrMe, Version: 3}, Dst: AddressSpec{Type: AddrDNS, Version: 1}, Protocol: 17, DstPort: PortSpec{Type: 1, Port: 53}})
		}
	}
	m, err := Map(p, MapOptions{Auth: []Configured{{Name: "corp", Kind: "kerberos"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.PSKs) != 1 || m.PSKs[0].Secret != secret || m.PSKs[0].Name != "gpo-psk-1" {
		t.Fatalf("PSKs %+v", m.PSKs)
	}
	var labRule *policy.Rule
	for _, r := range m.Policy.Rules {
		if r.Name == "lab" {
			labRule = r
		}
		if r.Name == "icmp" {
			t.Error("the inactive rule is applied")
		}
	}
	if labRule == nil || strings.Join(labRule.Auth, ",") != "gpo-psk-1" {
		t.Fatalf("lab rule %+v", labRule)
	}
	notes := stringsOf(m.Notes)
	for _, want := range []string{`rule "icmp" is inactive`, "certificate issued by CN=Unknown CA): no configured authentication method", "server of this host's IP configuration (address type 0x10)"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, secret) {
		t.Error("a note holds the pre-shared key")
	}
	// A rule whose only filter cannot be expressed is refused, by DN.
	for _, r := range p.Rules {
		if r.Object.Name == "no-telnet" {
			r.Filters[0].Data.V2 = r.Filters[0].Data.V2[2:]
		}
	}
	if _, err := Map(p, MapOptions{Auth: []Configured{{Name: "corp", Kind: "kerberos"}}}); err == nil || !strings.Contains(err.Error(), "CN=ipsecNFA{") || !strings.Contains(err.Error(), "none of the filters") {
		t.Errorf("got %v", err)
	}
}
