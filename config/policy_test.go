package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iked/iked/internal/testpki"
	"github.com/iked/iked/policy"
)

const policyAuth = `authentication:
  lab-psk: {method: psk, secret: "a long enough key"}
  other-psk: {method: psk, secret: "another long key"}
`

func TestABuiltinPolicyTakesTheAuthenticationMethodsInFileOrder(t *testing.T) {
	c, err := Parse([]byte(policyAuth+"policy:\n  assign: server-request-security\n  fallback_delay: 1s\n  exempt: [10.0.0.53]\n"), "p.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policy
	if p == nil || p.Name != policy.ServerRequestSecurity {
		t.Fatalf("policy %+v", p)
	}
	if got := strings.Join(p.DefaultResponse.Auth, ","); got != "lab-psk,other-psk" {
		t.Errorf("default response auth %s", got)
	}
	for _, r := range p.Rules {
		if r.Action == policy.Negotiate && (r.FallbackDelay.String() != "1s" || strings.Join(r.Auth, ",") != "lab-psk,other-psk") {
			t.Errorf("rule %s: fallback %s auth %v", r.Name, r.FallbackDelay, r.Auth)
		}
	}
	if len(p.Exempt) != 1 || p.Exempt[0].String() != "10.0.0.53/32" {
		t.Errorf("exempt %v", p.Exempt)
	}
	if c.PolicyOptions.Mark != DefaultPolicyMark || c.PolicyOptions.Table != "iked" {
		t.Errorf("options %+v", c.PolicyOptions)
	}
}

const customPolicy = policyAuth + `filter_lists:
  telnet:
    description: telnet both ways
    filters:
      - {source: me, destination: any, protocol: tcp, destination_port: 23}
      - {source: any, destination: me, protocol: tcp, destination_port: 23}
policies:
  no-telnet:
    description: block telnet, secure the lab, permit the rest
    default_response: {active: false}
    rules:
      - {filter_list: telnet, action: block}
      - {filter_list: all-ip, action: permit}
      - name: lab
        filter_list: all-ip
        action: negotiate
        security_methods: [aes128gcm16, {proposal: aes256-sha256, lifetime: 30m, lifetime_bytes: 1000000}]
        authentication: [other-psk]
        pfs: true
        require_pq: true
        connection_type: lan
policy:
  assign: no-telnet
`

func TestACustomPolicyReadsItsRulesAndFilterLists(t *testing.T) {
	c, err := Parse([]byte(customPolicy), "p.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policy
	if p.DefaultResponse.Active || len(p.Rules) != 3 {
		t.Fatalf("policy %+v", p)
	}
	block, permit, lab := p.Rules[0], p.Rules[1], p.Rules[2]
	if block.Name != "telnet" || block.Action != policy.Block || len(block.Filters.Filters) != 2 || !block.Filters.Filters[0].Mirrored {
		t.Errorf("block rule %+v", block)
	}
	if permit.Action != policy.Permit || permit.Filters.Name != "all-ip" {
		t.Errorf("permit rule %+v", permit)
	}
	if !lab.PFS || !lab.RequirePQ || block.RequirePQ || lab.Connection != policy.LAN || len(lab.Methods) != 2 || lab.Methods[1].Lifetime.String() != "30m0s" || lab.Methods[1].LifetimeBytes != 1000000 || lab.Auth[0] != "other-psk" {
		t.Errorf("negotiate rule %+v", lab)
	}
}

func TestPolicyMistakesAreRefusedWithTheirLine(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown policy", policyAuth + "policy:\n  assign: server\n", `p.yaml:5: policy.assign: no policy named "server"`},
		{"unknown filter list", strings.Replace(customPolicy, "{filter_list: telnet, action: block}", "{filter_list: telent, action: block}", 1), `p.yaml:15: policy "no-telnet" rule 1 filter_list: no filter list named "telent"`},
		{"unknown authentication", strings.Replace(customPolicy, "[other-psk]", "[krb]", 1), `p.yaml:21: policy "no-telnet" rule 3 authentication: no authentication method named "krb"`},
		{"port without protocol", strings.Replace(customPolicy, "protocol: tcp, destination_port: 23}\n      - {source: any", "destination_port: 23}\n      - {source: any", 1), `p.yaml:8: filter list "telnet" filter: ports need protocol tcp or udp`},
		{"AH", strings.Replace(customPolicy, "[aes128gcm16,", "[ah-sha256,", 1), `AH and ESP without encryption cannot be negotiated yet`},
		{"bad range", strings.Replace(customPolicy, "destination: any, protocol", "destination: 10.0.0.9-10.0.0.1, protocol", 1), `p.yaml:8: filter list "telnet" filter destination: invalid address range`},
		{"no authentication at all", "policy:\n  assign: secure-server-require-security\n", `p.yaml:2: policy secure-server-require-security: no authentication methods`},
		{"lists without a policy", "filter_lists:\n  x:\n    filters: [{source: me}]\n", `p.yaml:2: policies and filter lists are only used by an assigned policy`},
		{"permit with fallback", strings.Replace(customPolicy, "{filter_list: all-ip, action: permit}", "{filter_list: all-ip, action: permit, fallback: true}", 1), `security settings need action negotiate`},
		{"block with require_pq", strings.Replace(customPolicy, "{filter_list: telnet, action: block}", "{filter_list: telnet, action: block, require_pq: true}", 1), `security settings need action negotiate`},
		{"require_pq over IKEv1", strings.Replace(customPolicy, "        require_pq: true\n", "        require_pq: true\n        key_module: ikev1\n", 1), `rule lab: require_pq needs IKEv2 (RFC 9370's additional key exchanges), and its key module is ikev1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "p.yaml", "")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want %q", err, c.want)
			}
		})
	}
}

func TestPolicyKeysAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, list := range [][]string{policyKeys, customKeys, ruleKeys, filterListKeys, filterKeys, methodKeys, responseKeys} {
		for _, k := range list {
			if !strings.Contains(string(doc), "`"+k+"`") {
				t.Errorf("policies.md does not document key %q", k)
			}
		}
	}
	for _, name := range policy.BuiltinNames() {
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("policies.md does not explain %s", name)
		}
	}
}

// TestPoliciesDocExampleLoads keeps the custom policy of docs/policies.md
// correct: it is loaded with its files made up.
func TestPoliciesDocExampleLoads(t *testing.T) {
	doc, err := os.ReadFile("../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(doc), "## Writing your own")
	_, block, ok := strings.Cut(after, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block under \"Writing your own\"")
	}
	dir := t.TempDir()
	pki := testpki.New(t, "Docs", "p256", 0)
	key := testpki.Key(t, "p256", "docs-host")
	cert := pki.Issue(t, key, testpki.Leaf{CN: "host.example", DNS: []string{"host.example"}})
	for name, data := range map[string][]byte{
		"host.pem": testpki.CertPEM(cert, pki.Inter), "host.key": testpki.KeyPEM(t, key), "root.pem": testpki.CertPEM(pki.Root),
		"lab.secret": []byte("a long enough lab secret\n"), "iked.yaml": []byte(block),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Load(filepath.Join(dir, "iked.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy == nil || c.Policy.Name != "lab-server" || len(c.Policy.Rules) != 2 {
		t.Fatalf("policy %+v", c.Policy)
	}
}
