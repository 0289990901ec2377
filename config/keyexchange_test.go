package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/iked/iked/policy"
)

// win2003Policy is a custom policy with the Windows 2003 defaults: IKEv1,
// main mode 3DES/SHA-1/MODP-1024 for 480 minutes, quick mode 3DES/SHA-1.
const win2003Policy = policyAuth + `policies:
  win2003:
    rules:
      - name: secure
        filter_list: all-ip
        action: negotiate
        security_methods: [3des-sha1, aes128-sha1]
      - name: modern
        filter_list: all-icmp
        action: negotiate
        key_module: ikev2
        security_methods: [aes256gcm16]
policy:
  assign: win2003
  key_exchange:
    key_module: ikev1
    methods: [aes256-sha256-modp2048, 3des-sha1-modp1024]
    lifetime: 480m
    quick_modes: 0
    master_key_pfs: true
    allow_legacy: true
`

func TestKeyExchange(t *testing.T) {
	c, err := Parse([]byte(win2003Policy), "p.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	kx := c.Policy.KeyExchange
	if kx.KeyModule != policy.KeyModuleIKEv1 || len(kx.Methods) != 2 || kx.Lifetime.Minutes() != 480 || !kx.MasterKeyPFS || kx.QuickModeLimit() != 1 {
		t.Fatalf("key exchange %+v", kx)
	}
	var secure, modern *policy.Rule
	for _, r := range c.Policy.Rules {
		switch r.Name {
		case "secure":
			secure = r
		case "modern":
			modern = r
		}
	}
	if c.Policy.RuleKeyModule(secure) != policy.KeyModuleIKEv1 || c.Policy.RuleKeyModule(modern) != policy.KeyModuleIKEv2 {
		t.Errorf("key modules %s, %s", c.Policy.RuleKeyModule(secure), c.Policy.RuleKeyModule(modern))
	}
	// The legacy quick mode and main mode methods, each warned of once.
	var n int
	for _, w := range c.Warnings {
		if strings.Contains(w.Msg, "3des-sha1") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("warnings %q", c.Warnings)
	}
}

func TestKeyExchangeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"legacy not allowed", "    allow_legacy: true\n", "", []string{"3des-sha1", "allow_legacy"}},
		{"IKEv1 method in an IKEv2 policy", "    key_module: ikev1\n", "    key_module: ikev2\n", []string{"security method \"3des-sha1\" (key module ikev2)"}},
		{"bad key module", "    key_module: ikev1\n", "    key_module: authip\n", []string{"key_module", "authip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(win2003Policy, tc.from, tc.to, 1)), "p.yaml", "")
			var e *Error
			if !errors.As(err, &e) || e.Line == 0 {
				t.Fatalf("error %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v lacks %q", err, w)
				}
			}
		})
	}
}

// A built-in policy with key_module ikev1 or auto: its default security
// methods serve the versions they fit (IKEv1 has no AES-GCM).
func TestKeyExchangeBuiltinsServeEveryKeyModule(t *testing.T) {
	for _, km := range []string{"ikev2", "ikev1", "auto"} {
		src := policyAuth + "policy:\n  assign: secure-server-require-security\n  key_exchange: {key_module: " + km + "}\n"
		c, err := Parse([]byte(src), "p.yaml", "")
		if err != nil {
			t.Errorf("%s: %v", km, err)
			continue
		}
		if got := c.Policy.DefaultResponseKeyModule(); string(got) != km {
			t.Errorf("%s: default response rule's key module %s", km, got)
		}
	}
}

func TestKeyExchangeEveryVersionOfARuleNeedsAMethod(t *testing.T) {
	for _, tc := range []struct {
		name, km, methods string
		want              string
	}{
		{"IKEv2-only method under ikev1", "ikev1", "[aes256gcm16]", `security method "aes256gcm16" (key module ikev1)`},
		{"IKEv2-only method under auto", "auto", "[aes256gcm16]", "rule all-ip (key module auto) has no security method IKEv1 can negotiate"},
		{"IKEv1-only method under auto", "auto", "[aes128-sha1]", "legacy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := policyAuth + "policy:\n  assign: secure-server-require-security\n  security_methods: " + tc.methods +
				"\n  key_exchange: {key_module: " + tc.km + "}\n"
			_, err := Parse([]byte(src), "p.yaml", "")
			var e *Error
			if !errors.As(err, &e) || e.Line == 0 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one at a line with %q", err, tc.want)
			}
		})
	}
	// Under auto a method may serve one version: aes256gcm16 IKEv2,
	// aes256-sha256 both.
	src := policyAuth + "policy:\n  assign: secure-server-require-security\n  security_methods: [aes256gcm16, aes128-sha256]\n  key_exchange: {key_module: auto}\n"
	if _, err := Parse([]byte(src), "p.yaml", ""); err != nil {
		t.Errorf("auto with one method per version: %v", err)
	}
}

// TestPoliciesDocKeyExchangeExampleLoads keeps the key exchange example
// of docs/policies.md correct (interop's TestPolicyKerberosIKEv1 runs the
// same policy between two hosts).
func TestPoliciesDocKeyExchangeExampleLoads(t *testing.T) {
	c := loadDocExample(t, "../docs/policies.md", "**What the key module does.**")
	kx := c.Policy.KeyExchange
	if c.Policy.Name != "secure-server-require-security" || kx.KeyModule != policy.KeyModuleAuto || len(kx.Methods) != 2 || kx.Lifetime.Minutes() != 480 {
		t.Fatalf("policy %s, key exchange %+v", c.Policy.Name, kx)
	}
	if !c.Policy.UsesVersion(policy.VersionIKEv1) || !c.Policy.UsesVersion(policy.VersionIKEv2) {
		t.Error("an auto policy that does not use both versions")
	}
}

// TestWindowsDocPolicyExampleLoads does the same for docs/windows.md's
// assigned policy for a Windows domain.
func TestWindowsDocPolicyExampleLoads(t *testing.T) {
	c := loadDocExample(t, "../docs/windows.md", "## An assigned policy for a Windows domain")
	if c.Policy == nil || c.Policy.DefaultResponseKeyModule() != policy.KeyModuleIKEv1 {
		t.Fatalf("policy %+v", c.Policy)
	}
	if _, ok := c.Authentication["corp"]; !ok {
		t.Error("no kerberos method corp")
	}
}

// loadDocExample loads the first yaml block after marker in doc, with a
// keytab made up.
func loadDocExample(t *testing.T, doc, marker string) *Config {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), marker)
	_, block, ok2 := strings.Cut(after, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatalf("no yaml block after %q in %s", marker, doc)
	}
	dir := t.TempDir()
	block = strings.ReplaceAll(block, "/etc/krb5.keytab", filepath.Join(dir, "krb5.keytab"))
	if err := os.WriteFile(filepath.Join(dir, "krb5.keytab"), testKeytab(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "iked.yaml"), []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join(dir, "iked.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testKeytab is a keytab with the docs' hosts' keys.
func testKeytab(t *testing.T) []byte {
	t.Helper()
	k := keytab.New()
	for _, p := range []string{"host/web1.corp.example", "host/linux.corp.example"} {
		if err := k.AddEntry(p, "CORP.EXAMPLE", "a password", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
			t.Fatal(err)
		}
	}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
