package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/iked/iked/transform"
)

func TestVersion(t *testing.T) {
	cfg, err := Parse([]byte(conn("    remote: 192.0.2.1\n"+okAuth)+"  b:\n    remote: 192.0.2.2\n"+okAuth+"    version: ikev1\n"+
		"  c:\n    remote: 192.0.2.3\n"+okAuth+"    version: auto\n"), "iked.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := cfg.Connection("a"), cfg.Connection("b"), cfg.Connection("c")
	if a.Version != VersionIKEv2 || !a.SpeaksIKEv2() || a.SpeaksIKEv1() || len(a.IKEv1Proposals) != 0 {
		t.Errorf("a: %s %v", a.Version, a.IKEv1ProposalStrings)
	}
	if b.Version != VersionIKEv1 || b.SpeaksIKEv2() || !b.SpeaksIKEv1() {
		t.Errorf("b: version %s", b.Version)
	}
	// ikev1: IKEv1's defaults, also as the connection's proposals.
	if strings.Join(b.IKEv1ProposalStrings, ",") != strings.Join(DefaultIKEv1Proposals(), ",") ||
		strings.Join(b.IKEProposalStrings, ",") != strings.Join(DefaultIKEv1Proposals(), ",") ||
		strings.Join(b.IKEv1ESPProposalStrings, ",") != strings.Join(DefaultIKEv1ESPProposals(), ",") {
		t.Errorf("b proposals %v / %v / %v", b.IKEv1ProposalStrings, b.IKEProposalStrings, b.IKEv1ESPProposalStrings)
	}
	// auto: each version's own defaults.
	if strings.Join(c.IKEProposalStrings, ",") != strings.Join(DefaultIKEProposals(), ",") ||
		strings.Join(c.IKEv1ProposalStrings, ",") != strings.Join(DefaultIKEv1Proposals(), ",") {
		t.Errorf("c proposals %v / %v", c.IKEProposalStrings, c.IKEv1ProposalStrings)
	}
	for _, w := range cfg.Warnings {
		if strings.Contains(w.Msg, "legacy") {
			t.Errorf("warning %v", w)
		}
	}
}

func TestVersionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		line int
		want []string
	}{
		{"bad version", "    version: ikev3\n", 5, []string{"version", "ikev3"}},
		{"IKEv2 algorithm in IKEv1", "    version: ikev1\n    ike_proposals: [aes256gcm16-prfsha256-x25519]\n", 6,
			[]string{"ike_proposals", `"aes256gcm16" is not available in IKEv1`}},
		{"auto needs both", "    version: auto\n    ike_proposals: [aes256gcm16-prfsha256-x25519]\n", 6,
			[]string{"not available in IKEv1", "version auto uses it for IKEv2 and IKEv1 alike"}},
		{"legacy refused", "    version: ikev1\n    ike_proposals: [3des-sha1-modp1024]\n", 6,
			[]string{`"3des-sha1-modp1024" uses the legacy 3DES`, "MODP_1024", "Windows 2003 default main mode", "allow_legacy: true"}},
		{"legacy ESP refused", "    version: ikev1\n    esp_proposals:\n      - aes128-sha256\n      - 3des-sha1\n", 8,
			[]string{"esp_proposals", "3DES", "allow_legacy"}},
		{"legacy in IKEv2", "    ike_proposals: [3des-sha1-modp1024]\n    allow_legacy: true\n", 5,
			[]string{"only available in IKEv1 proposals"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(conn("    remote: 192.0.2.1\n"+okAuth+tc.body)), "iked.yaml", "")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v", err)
			}
			if e.Line != tc.line {
				t.Errorf("line %d, want %d (%v)", e.Line, tc.line, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
}

// TestLegacyAllowed: the Windows 2003 default main mode is configurable
// with allow_legacy, and each use is warned about at its line.
func TestLegacyAllowed(t *testing.T) {
	cfg, err := Parse([]byte(conn("    remote: 192.0.2.1\n"+okAuth+"    version: ikev1\n    allow_legacy: true\n"+
		"    ike_proposals: [aes256-sha256-modp2048, 3des-sha1-modp1024]\n    esp_proposals: [3des-sha1]\n")), "iked.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connection("a")
	if !c.AllowLegacy || len(c.IKEv1Proposals) != 2 || c.IKEv1Proposals[1].Encr[0].ID != transform.EncrDES3 {
		t.Fatalf("connection %+v", c.IKEv1Proposals)
	}
	var legacy []string
	for _, w := range cfg.Warnings {
		if strings.Contains(w.Msg, "legacy") {
			legacy = append(legacy, w.String())
		}
	}
	if len(legacy) != 2 || !strings.HasPrefix(legacy[0], "iked.yaml:7: ") ||
		!strings.Contains(legacy[0], "3des-sha1-modp1024") || !strings.HasPrefix(legacy[1], "iked.yaml:8: ") {
		t.Errorf("warnings %q", legacy)
	}
}
