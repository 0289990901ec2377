package config

import (
	"strings"
	"testing"
)

// longAuth is a PSK long enough not to be warned about.
const longAuth = "    auth: {method: psk, secret: \"0123456789abcdef0123456789\"}\n"

// TestDeprecatedAlgorithmsWarned: SHA-1 named in a connection's proposals
// is accepted with a warning at its line; the defaults carry none; the
// IKEv1-only legacy algorithms and the ones iked does not implement are
// refused saying so, not as "unknown".
func TestDeprecatedAlgorithmsWarned(t *testing.T) {
	cfg, err := parseIn(t, conn("    remote: 192.0.2.1\n"+longAuth+
		"    ike_proposals: [aes256gcm16-prfsha256-x25519, aes256-sha1-modp3072]\n"+
		"    esp_proposals: [aes256gcm16, aes128-sha1]\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`s.yaml:5: ike_proposals: "aes256-sha1-modp3072" uses the deprecated HMAC_SHA1_96, PRF_HMAC_SHA1`,
		`s.yaml:6: esp_proposals: "aes128-sha1" uses the deprecated HMAC_SHA1_96`,
	}
	if strings.Contains(got[0], "first") {
		t.Errorf("advice to put a proposal first when one is: %q", got[0])
	}
	if len(got) != len(want) {
		t.Fatalf("warnings %q, want %d", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %q, want it to start with %q", got[i], want[i])
		}
	}
	if c := cfg.Connections[0]; c.IKEProposals[1].String() != "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_3072" {
		t.Errorf("proposal %s", c.IKEProposals[1])
	}

	cfg, err = parseIn(t, conn("    remote: 192.0.2.1\n"+longAuth+"    esp_proposals: [aes128-sha1]\n"), nil, nil)
	if err != nil || len(cfg.Warnings) != 1 || !strings.HasSuffix(cfg.Warnings[0].Msg, "put a proposal without it first") {
		t.Fatalf("SHA-1 first: %v, warnings %v", err, cfg.Warnings)
	}
	cfg, err = parseIn(t, conn("    remote: 192.0.2.1\n"+longAuth), nil, nil)
	if err != nil || len(cfg.Warnings) != 0 {
		t.Fatalf("defaults: %v, warnings %v", err, cfg.Warnings)
	}
	for _, d := range append(DefaultIKEProposals(), DefaultESPProposals()...) {
		for _, w := range []string{"sha1", "modp1024", "3des"} {
			for _, kw := range strings.Split(d, "-") {
				if kw == w || kw == "prf"+w {
					t.Errorf("default proposal %q names %s", d, w)
				}
			}
		}
	}

	for src, frags := range map[string][]string{
		"    ike_proposals: [3des-sha256-modp2048]\n":   {`s.yaml:5: ike_proposals: legacy algorithm "3des" is deprecated and not supported in IKE proposal`, "enable it with version: ikev1 and allow_legacy: true"},
		"    esp_proposals: [aes128-md5]\n":             {`s.yaml:5: esp_proposals: algorithm "md5" in proposal "aes128-md5" is not supported: broken`},
		"    ike_proposals: [aes128-sha256-modp1536]\n": {`"modp1536"`, "is not supported: too weak"},
	} {
		_, err := parseIn(t, conn("    remote: 192.0.2.1\n"+longAuth+src), nil, nil)
		wantRefused(t, err, 5, frags)
		if strings.Contains(err.Error(), "unknown algorithm") {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func TestChildlessKey(t *testing.T) {
	for v, want := range map[string]string{"": ChildlessAllow, "never": ChildlessNever, "prefer": ChildlessPrefer, "force": ChildlessForce, "allow": ChildlessAllow} {
		src := "    remote: 192.0.2.1\n" + longAuth
		if v != "" {
			src += "    childless: " + v + "\n"
		}
		cfg, err := parseIn(t, conn(src), nil, nil)
		if err != nil {
			t.Fatalf("childless %q: %v", v, err)
		}
		if got := cfg.Connections[0].Childless; got != want {
			t.Errorf("childless %q: %q", v, got)
		}
	}
	_, err := parseIn(t, conn("    remote: 192.0.2.1\n"+longAuth+"    childless: yes\n"), nil, nil)
	wantRefused(t, err, 5, []string{"childless", "allow", "never", "prefer", "force"})
}

// TestDeprecatedWarnedOnce: an IKEv1 connection's SHA-1 is IKEv1's legacy
// check's business (allow_legacy, its own warning), not warned of twice.
func TestDeprecatedWarnedOnce(t *testing.T) {
	cfg, err := parseIn(t, conn("    remote: 192.0.2.1\n"+longAuth+
		"    version: ikev1\n    allow_legacy: true\n    ike_proposals: [aes256-sha1-modp2048]\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].Msg, "allowed by allow_legacy") {
		t.Errorf("warnings %v, want only the legacy one", cfg.Warnings)
	}
}
