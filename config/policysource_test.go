package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

func TestPolicySourceLDAP(t *testing.T) {
	dir := t.TempDir()
	kt := filepath.Join(dir, "host.keytab")
	k := keytab.New()
	if err := k.AddEntry("host/left.ad.example.test", "AD.EXAMPLE.TEST", "a password", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		t.Fatal(err)
	}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kt, b, 0o600); err != nil {
		t.Fatal(err)
	}
	good := `authentication:
  corp: {method: kerberos, keytab: host.keytab, realm: AD.EXAMPLE.TEST, kdcs: [10.80.0.1], principal: host/left.ad.example.test, allowed: ["@AD.EXAMPLE.TEST"]}
policy:
  source: ldap
  ldap: {domain: ad.example.test, dcs: [10.80.0.1], spn: ldap/dc1.ad.example.test, policy: "Server (Request Security)", interval: 30s, cache: ` + filepath.Join(dir, "cache.json") + `}
`
	path := filepath.Join(dir, "iked.yaml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := cfg.PolicySource
	if cfg.Policy != nil || ps == nil || ps.LDAP.Policy != "Server (Request Security)" || ps.LDAP.AuthName != "corp" || ps.LDAP.Interval != 30*time.Second ||
		len(ps.KDCs) != 1 || len(ps.SecurityMethods) != 2 || ps.Authentication[0] != "corp" {
		t.Fatalf("got %+v", ps)
	}
	for _, c := range []struct{ yaml, want string }{
		{strings.Replace(good, "source: ldap", "source: ldap\n  assign: client-respond-only", 1), "exclude each other"},
		{strings.Replace(good, `policy: "Server (Request Security)", `, "", 1), "give policy (the ipsecPolicy's DN, ipsecID or name) or gpo"},
		{strings.Replace(good, "spn: ldap/dc1.ad.example.test, ", "", 1), "is an address: spn must name"},
		{strings.Replace(good, "method: kerberos", "method: psk, secret: a-long-enough-secret-here", 1), "add a kerberos method"},
		{strings.Replace(good, "source: ldap", "source: ftp", 1), "policy.source"},
		{strings.Replace(good, `policy: "Server (Request Security)", `, `policy: "Server (Request Security)", gpo: "{31B2F340-016D-11D2-945F-00C04FB984F9}", `, 1), "one of them"},
	} {
		if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "iked.yaml:") {
			t.Errorf("want %q with file:line, got %v", c.want, err)
		}
	}
}
