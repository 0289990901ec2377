package interop

import (
	"strings"
	"testing"
)

// The algorithms peers still propose that iked's defaults leave out:
// HMAC-SHA1-96 and PRF-HMAC-SHA1 (deprecated, RFC 8247/8221 MUST-),
// MODP-3072 and MODP-4096 (groups 15 and 16), and Curve448 (group 32).
// A connection that names them negotiates them with charon in both
// directions; one that does not refuses charon's offer cleanly, naming
// both sides' proposals.
var extraAlgorithmCases = []proposalCase{
	{
		name: "aes256-sha1-modp3072/esp-aes128-sha1",
		ike:  "aes256-sha1-modp3072", esp: "aes128-sha1",
		wantIKE: "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_3072",
		wantESP: "AES_CBC-128/HMAC_SHA1_96/NO_EXT_SEQ",
	},
	{
		name: "aes128-sha1-modp4096/esp-aes256-sha1",
		ike:  "aes128-sha1-modp4096", esp: "aes256-sha1",
		wantIKE: "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_4096",
		wantESP: "AES_CBC-256/HMAC_SHA1_96/NO_EXT_SEQ",
	},
	{
		name: "aes256-sha256-prfsha1-modp3072/esp-aes256gcm16",
		ike:  "aes256-sha256-prfsha1-modp3072", esp: "aes256gcm16",
		wantIKE: "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA1/MODP_3072",
		wantESP: "AES_GCM_16-256/NO_EXT_SEQ",
	},
	{
		name: "aes256gcm16-prfsha384-curve448/esp-aes256gcm16",
		ike:  "aes256gcm16-prfsha384-curve448", esp: "aes256gcm16",
		wantIKE: "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_448",
		wantESP: "AES_GCM_16-256/NO_EXT_SEQ",
	},
}

// TestExtraAlgorithms negotiates each case with charon in both
// directions, both sides naming the same proposal: the SAs establish with
// the expected algorithms on both sides, the keys are proven on the wire
// (tshark decrypts HMAC-SHA1-96 with the key log's names), and iked warned
// at start about the deprecated algorithms its configuration names.
func TestExtraAlgorithms(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			for _, pc := range extraAlgorithmCases {
				t.Run(pc.name, func(t *testing.T) {
					p := newPair(t, func(ic *ikedConn, cc *charonConn) {
						ic.IKEProposals, cc.IKEProposals = []string{pc.ike}, []string{pc.ike}
						ic.ESPProposals, cc.ESPProposals = []string{pc.esp}, []string{pc.esp}
					})
					establish(t, p, dir.charonInitiates)
					checkEstablished(t, p, dir.charonInitiates, pc.wantIKE, pc.wantESP)
					terminate(t, p, dir.charonInitiates)
					checkWireDecrypts(t, p.cap, p.iked)
					if strings.Contains(pc.ike, "sha1") {
						wantLog(t, "iked", p.iked.Log(), `"level":"WARN"`, "configuration: ike_proposals", "uses the deprecated")
					}
					if strings.Contains(pc.esp, "sha1") {
						wantLog(t, "iked", p.iked.Log(), `"level":"WARN"`, "configuration: esp_proposals", "uses the deprecated HMAC_SHA1_96")
					}
				})
			}
		})
	}
}

// ikedDefaultsConfigured is how iked names its default proposals when it
// refuses an offer (ike_proposals and esp_proposals left out).
const (
	ikedDefaultIKE = "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519 | AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
	ikedDefaultESP = "AES_GCM_16-256/NO_EXT_SEQ | AES_CBC-256/HMAC_SHA2_256_128/NO_EXT_SEQ"
)

// TestExtraAlgorithmsNotNamed: iked with its default proposals meets
// charon offering only SHA-1 or MODP-3072/4096. charon initiating is
// refused by iked with NO_PROPOSAL_CHOSEN, logged with both sides by name
// (IKE in IKE_SA_INIT; ESP in IKE_AUTH, where the IKE SA stays and the
// Child SA is refused); iked initiating is refused by charon. No SA is
// left behind in either case, and the failure is counted.
func TestExtraAlgorithmsNotNamed(t *testing.T) {
	for _, c := range []struct {
		name, ike, esp string
		ikedSays       string // iked's refusal as responder
	}{
		{"ike-sha1", "aes256-sha1-modp2048", "aes256gcm16",
			"no acceptable IKE proposal: offered AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048, configured " + ikedDefaultIKE},
		{"ike-modp3072", "aes256-sha256-modp3072", "aes256gcm16",
			"no acceptable IKE proposal: offered AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_3072, configured " + ikedDefaultIKE},
		{"ike-modp4096", "aes128gcm16-prfsha256-modp4096", "aes256gcm16",
			"no acceptable IKE proposal: offered AES_GCM_16-128/PRF_HMAC_SHA2_256/MODP_4096, configured " + ikedDefaultIKE},
		{"esp-sha1", "aes256gcm16-prfsha256-x25519", "aes128-sha1",
			"no acceptable ESP proposal: offered AES_CBC-128/HMAC_SHA1_96/NO_EXT_SEQ, configured " + ikedDefaultESP},
	} {
		for _, dir := range directions {
			t.Run(c.name+"/"+dir.name, func(t *testing.T) {
				p := newPairOpts(t, func(ic *ikedConn, cc *charonConn) {
					ic.IKEProposals, ic.ESPProposals = nil, nil // iked's defaults
					cc.IKEProposals, cc.ESPProposals = []string{c.ike}, []string{c.esp}
				}, func(io *ikedOptions, _ *charonOptions) { io.Metrics = true })
				espOnly := strings.HasPrefix(c.name, "esp-")
				if dir.charonInitiates {
					if out, err := p.charon.Initiate(childName, connName); err == nil {
						t.Fatalf("charon initiate succeeded:\n%s", out)
					}
					if espOnly {
						wantLog(t, "charon", p.charon.Log(), "received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built")
					} else {
						wantLog(t, "charon", p.charon.Log(), "received NO_PROPOSAL_CHOSEN notify error")
					}
					if espOnly {
						wantLog(t, "iked", p.iked.Log(), "Child SA not created", c.ikedSays)
					} else {
						wantLog(t, "iked", p.iked.Log(), "IKE_SA_INIT: no acceptable proposal", c.ikedSays)
						wantMetric(t, p.iked, "iked_handshakes_failed_total", `reason="no_proposal_chosen"`, 1)
					}
					wantMetric(t, p.iked, "iked_notifies_sent_total", `type="NO_PROPOSAL_CHOSEN"`, 1)
				} else {
					out, err := p.iked.Initiate(connName)
					if espOnly {
						// The IKE SA is up; charon refused the Child SA.
						wantLog(t, "iked", p.iked.Log(), "Child SA not created", "NO_PROPOSAL_CHOSEN")
						wantLog(t, "charon", p.charon.Log(), "no acceptable proposal found")
					} else {
						if err == nil || !strings.Contains(err.Error(), "NO_PROPOSAL_CHOSEN") {
							t.Fatalf("iked initiate: %v\n%s", err, out)
						}
						wantLog(t, "charon", p.charon.Log(), "received proposals unacceptable")
						wantMetric(t, p.iked, "iked_handshakes_failed_total", `reason="no_proposal_chosen"`, 1)
					}
				}
				if espOnly {
					// The IKE SA stays on both sides (§1.2), without a
					// Child SA; a delete removes it.
					waitChildless(t, p)
					terminate(t, p, false)
				}
				waitGone(t, p)
			})
		}
	}
}
