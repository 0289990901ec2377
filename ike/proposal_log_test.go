package ike

import (
	"strings"
	"testing"
)

// TestRefusalNamesBothSides: a refused IKE or Child SA offer is logged
// with the peer's offer and the configured proposals by name, as charon
// logs them, in IKE_SA_INIT, in IKE_AUTH and in CREATE_CHILD_SA.
func TestRefusalNamesBothSides(t *testing.T) {
	t.Run("ike", func(t *testing.T) {
		var logB logLines
		p := newPair(t, func(ca, _ *Connection, _, cfgB *Config) {
			ca.IKEProposals = mustIKE(t, "aes256-sha1-modp2048")
			cfgB.Logger = logB.logger()
		})
		if _, err := p.a.Initiate(ctxT(t), "a-b"); err == nil || !strings.Contains(err.Error(), "NO_PROPOSAL_CHOSEN") {
			t.Fatalf("err = %v", err)
		}
		l := logB.find(t, "no acceptable proposal")
		const want = "offered AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048, configured AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519"
		if len(l) != 1 || !strings.Contains(l[0]["err"].(string), want) ||
			l[0]["offered"] != "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048" || l[0]["configured"] != "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519" {
			t.Fatalf("log %v, want %q", l, want)
		}
	})
	t.Run("esp-in-ike-auth", func(t *testing.T) {
		var logB logLines
		p := newPair(t, func(ca, cb *Connection, _, cfgB *Config) {
			ca.ESPProposals = mustESP(t, "aes128-sha1", "aes128-sha256-modp3072")
			cb.ESPProposals = mustESP(t, "aes256gcm16-x25519")
			cfgB.Logger = logB.logger()
		})
		infos, err := p.a.Initiate(ctxT(t), "a-b")
		if err != nil || len(infos[0].Children) != 0 {
			t.Fatalf("%v %+v: want the IKE SA without a Child SA", err, infos)
		}
		l := logB.find(t, "Child SA not created")
		const want = "no acceptable ESP proposal: offered AES_CBC-128/HMAC_SHA1_96/NO_EXT_SEQ | AES_CBC-128/HMAC_SHA2_256_128/NO_EXT_SEQ, configured AES_GCM_16-256/NO_EXT_SEQ"
		if len(l) != 1 || !strings.Contains(l[0]["err"].(string), want) {
			t.Fatalf("log %v, want %q", l, want)
		}
	})
	t.Run("create-child", func(t *testing.T) {
		var logB logLines
		p := newPair(t, func(ca, cb *Connection, _, cfgB *Config) {
			ca.Childless = ChildlessForce
			ca.ESPProposals = mustESP(t, "aes128-sha1-modp4096")
			cb.ESPProposals = mustESP(t, "aes256gcm16-x25519")
			cfgB.Logger = logB.logger()
		})
		if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.a.Initiate(ctxT(t), "a-b"); err == nil || !strings.Contains(err.Error(), "NO_PROPOSAL_CHOSEN") {
			t.Fatalf("Child SA: err = %v", err)
		}
		const want = "no acceptable ESP proposal: offered AES_CBC-128/HMAC_SHA1_96/MODP_4096/NO_EXT_SEQ, configured AES_GCM_16-256/CURVE_25519/NO_EXT_SEQ"
		if !strings.Contains(logB.w.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, logB.w.String())
		}
	})
}
