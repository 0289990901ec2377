package config

import (
	"errors"
	"strings"
	"testing"

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
