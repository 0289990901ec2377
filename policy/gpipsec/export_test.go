package gpipsec

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/policy"
)

// labPolicy is a custom policy with what MS-GPIPSEC can carry: block,
// permit and negotiate rules, host, subnet, range and IPv6 filters,
// ports, PFS, fallback, a tunnel endpoint and a connection type.
func labPolicy() *policy.Policy {
	me, any := policy.Address{Kind: policy.MyAddress}, policy.Address{Kind: policy.AnyAddress}
	must := func(s string) policy.Address {
		a, err := policy.ParseAddress(s)
		if err != nil {
			panic(err)
		}
		return a
	}
	methods := []policy.SecurityMethod{{Proposal: "aes256gcm16"}, {Proposal: "aes128-sha256"}}
	telnet := &policy.FilterList{Name: "telnet", Filters: []policy.Filter{
		{Src: me, Dst: any, Protocol: policy.TCP, DstPort: 23, Mirrored: true},
		{Src: any, Dst: me, Protocol: policy.TCP, DstPort: 23, Mirrored: true}}}
	lab := &policy.FilterList{Name: "lab", Filters: []policy.Filter{
		{Src: me, Dst: must("10.20.0.0/16"), Mirrored: true},
		{Src: me, Dst: must("10.30.0.5-10.30.0.9"), Mirrored: true},
		{Src: me, Dst: must("2001:db8::/48"), Mirrored: true},
		{Src: me, Dst: must("10.40.0.7"), Protocol: policy.UDP, SrcPort: 53, Mirrored: false}}}
	site := &policy.FilterList{Name: "site", Filters: []policy.Filter{{Src: must("10.1.0.0/24"), Dst: must("10.2.0.0/24")}}}
	return &policy.Policy{Name: "lab-server", Description: "no telnet; the lab secured",
		Rules: []*policy.Rule{
			{Name: "no-telnet", Filters: telnet, Action: policy.Block},
			{Name: "lab", Filters: lab, Action: policy.Negotiate, Methods: methods, Auth: []string{"corp"}, PFS: true, Fallback: true, Connection: policy.LAN},
			{Name: "site", Filters: site, Action: policy.Negotiate, Methods: methods, Auth: []string{"corp", "site-cert"}, Tunnel: netip.MustParseAddr("192.0.2.9")},
			{Name: "icmp", Filters: policy.BuiltinFilterLists()[policy.AllICMPTraffic], Action: policy.Permit},
		},
		DefaultResponse: policy.DefaultResponse{Active: true, Methods: methods, Auth: []string{"corp"}}}
}

func TestExportReadsBackAsTheSamePolicy(t *testing.T) {
	p := labPolicy()
	objs, notes := Export(p, ExportOptions{DomainDN: testDomainDN, Auth: func(n string) (AuthMethod, bool) {
		switch n {
		case "corp":
			return AuthMethod{Type: AuthKerberos}, true
		case "site-cert":
			return AuthMethod{Type: AuthCertificate, Value: "CN=Lab Root,O=Lab"}, true
		}
		return AuthMethod{}, false
	}})
	if !strings.Contains(stringsOf(notes), "no MS-GPIPSEC encoding") {
		t.Errorf("the notes do not say the proposals are not carried: %v", notes)
	}
	var buf bytes.Buffer
	if err := WriteLDIF(&buf, objs); err != nil {
		t.Fatal(err)
	}
	read, err := ReadLDIF(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDirectory(read)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := d.Resolve("lab-server")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Map(rp, MapOptions{SecurityMethods: p.Rules[1].Methods, Auth: []Configured{
		{Name: "corp", Kind: "kerberos"}, {Name: "site-cert", Kind: "cert", CAs: []string{"O=Lab, CN=Lab Root"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, diff := range compareWithBuiltin(m.Policy, p) {
		t.Error(diff)
	}
	if m.Policy.Description != p.Description {
		t.Errorf("description %q", m.Policy.Description)
	}
	// Exporting again writes the same DNs and blobs.
	again, _ := Export(p, ExportOptions{DomainDN: testDomainDN, Auth: func(string) (AuthMethod, bool) { return AuthMethod{Type: AuthKerberos}, true }})
	for i := range again {
		if again[i].DN != objs[i].DN {
			t.Errorf("object %d: DN %s then %s", i, objs[i].DN, again[i].DN)
		}
	}
	_ = time.Second
}

func stringsOf(notes []Note) string {
	var b strings.Builder
	for _, n := range notes {
		b.WriteString(n.String() + "\n")
	}
	return b.String()
}

func TestDanglingAndWrongReferencesNameTheObject(t *testing.T) {
	objs, _ := Export(labPolicy(), ExportOptions{DomainDN: testDomainDN, Auth: func(string) (AuthMethod, bool) { return AuthMethod{Type: AuthKerberos}, true }})
	var nfa *Object
	for _, o := range objs {
		if o.Class == ClassNFA && o.Name == "lab" {
			nfa = o
		}
	}
	missing := "CN=ipsecNegotiationPolicy{00000000-0000-0000-0000-000000000001},CN=IP Security,CN=System," + testDomainDN
	nfa.NegotiationRef = missing
	d, _ := NewDirectory(objs)
	_, err := d.Resolve("lab-server")
	if err == nil || !strings.Contains(err.Error(), nfa.DN+": ipsecNegotiationPolicyReference "+missing+": no such object") {
		t.Fatalf("got %v", err)
	}
	nfa.NegotiationRef = objs[0].DN // the policy itself
	if _, err = d.Resolve("lab-server"); err == nil || !strings.Contains(err.Error(), "is an ipsecPolicy, not an ipsecNegotiationPolicy") {
		t.Fatalf("got %v", err)
	}
}

// TestMalformedBlobsAreRefused: every truncation of every provisioned
// blob, a wrong type GUID, an unknown value: an error with the offset,
// never a panic.
func TestMalformedBlobsAreRefused(t *testing.T) {
	d := provisioned(t)
	decoders := map[string]func([]byte) error{
		ClassPolicy:      func(b []byte) error { _, err := DecodePolicy(b); return err },
		ClassISAKMP:      func(b []byte) error { _, err := DecodeISAKMP(b); return err },
		ClassNFA:         func(b []byte) error { _, err := DecodeNFA(b); return err },
		ClassNegotiation: func(b []byte) error { _, err := DecodeNegotiation(b); return err },
		ClassFilter:      func(b []byte) error { _, err := DecodeFilter(b); return err },
	}
	for _, o := range d.Objects() {
		dec := decoders[o.Class]
		if dec(o.Data) != nil {
			continue
		}
		for n := 0; n < len(o.Data)-1; n++ {
			if dec(o.Data[:n]) == nil {
				t.Errorf("%s: its first %d bytes decode", o.DN, n)
			}
		}
		bad := append([]byte(nil), o.Data...)
		bad[0] ^= 0xff
		if err := dec(bad); err == nil || !strings.Contains(err.Error(), "byte 0") {
			t.Errorf("%s with a wrong type GUID: %v", o.DN, err)
		}
		if err := dec(append(append([]byte(nil), o.Data...), 7)); err == nil {
			t.Errorf("%s with a byte appended decodes", o.DN)
		}
	}
	nfa := NFAData{Auth: []AuthMethod{{Type: AuthKerberos}}, Interface: InterfaceAll, Active: true}.Encode()
	nfa[24] = 7 // Auth-Type
	if _, err := DecodeNFA(nfa); err == nil || !strings.Contains(err.Error(), "Auth-Type 7 is unknown") {
		t.Errorf("unknown auth type: %v", err)
	}
	pol := PolicyData{}.Encode()
	pol[16] = 5 // Data-Length
	if _, err := DecodePolicy(pol); err == nil {
		t.Error("a policy blob with Data-Length 5 decodes")
	}
}
