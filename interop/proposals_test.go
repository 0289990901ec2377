package interop

import (
	"testing"
)

// proposalCase configures iked and charon with the same single IKE and
// ESP proposal (both use strongSwan's notation) and names what both must
// then report.
type proposalCase struct {
	name     string
	ike, esp string
	wantIKE  string // iked's (and charon's) notation of the IKE SA's algorithms
	wantESP  string
}

// proposalCases cover, in each direction, every IKE transform iked
// offers (encryption aes128, aes192, aes256, aes128gcm16, aes256gcm16,
// chacha20poly1305; integrity sha256, sha384, sha512; PRF prfsha256,
// prfsha384, prfsha512; DH modp2048, ecp256, ecp384, ecp521, x25519) and
// the ESP families (AES-GCM 128/256, AES-CBC with HMAC-SHA2, ChaCha20-
// Poly1305).
var proposalCases = []proposalCase{
	{
		name: "aes128-sha256-modp2048/esp-aes128-sha256",
		ike:  "aes128-sha256-prfsha256-modp2048", esp: "aes128-sha256",
		wantIKE: "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
		wantESP: "AES_CBC-128/HMAC_SHA2_256_128/NO_EXT_SEQ",
	},
	{
		name: "aes192-sha384-ecp384/esp-aes256-sha512",
		ike:  "aes192-sha384-prfsha384-ecp384", esp: "aes256-sha512",
		wantIKE: "AES_CBC-192/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
		wantESP: "AES_CBC-256/HMAC_SHA2_512_256/NO_EXT_SEQ",
	},
	{
		name: "aes256-sha512-ecp521/esp-aes256gcm16",
		ike:  "aes256-sha512-prfsha512-ecp521", esp: "aes256gcm16",
		wantIKE: "AES_CBC-256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/ECP_521",
		wantESP: "AES_GCM_16-256/NO_EXT_SEQ",
	},
	{
		name: "aes128gcm16-prfsha256-ecp256/esp-aes128gcm16",
		ike:  "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16",
		wantIKE: "AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_256",
		wantESP: "AES_GCM_16-128/NO_EXT_SEQ",
	},
	{
		name: "aes256gcm16-prfsha384-x25519/esp-aes128-sha256",
		ike:  "aes256gcm16-prfsha384-x25519", esp: "aes128-sha256",
		wantIKE: "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519",
		wantESP: "AES_CBC-128/HMAC_SHA2_256_128/NO_EXT_SEQ",
	},
	{
		name: "chacha20poly1305-prfsha512-x25519/esp-chacha20poly1305",
		ike:  "chacha20poly1305-prfsha512-x25519", esp: "chacha20poly1305",
		wantIKE: "CHACHA20_POLY1305/PRF_HMAC_SHA2_512/CURVE_25519",
		wantESP: "CHACHA20_POLY1305/NO_EXT_SEQ",
	},
}

// directions are the two ways round: charon initiates to iked (iked
// responds and selects), iked initiates to charon (charon selects).
var directions = []struct {
	name            string
	charonInitiates bool
}{
	{"charon-initiates", true},
	{"iked-initiates", false},
}

// TestProposals negotiates each proposal case in both directions: the SAs
// establish, charon and iked report the same SPIs and the expected
// algorithms, the keys are proven on the wire, and a delete removes the
// SAs on both sides.
func TestProposals(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			for _, pc := range proposalCases {
				t.Run(pc.name, func(t *testing.T) {
					p := newPair(t, func(ic *ikedConn, cc *charonConn) {
						ic.IKEProposals, cc.IKEProposals = []string{pc.ike}, []string{pc.ike}
						ic.ESPProposals, cc.ESPProposals = []string{pc.esp}, []string{pc.esp}
					})
					establish(t, p, dir.charonInitiates)
					checkEstablished(t, p, dir.charonInitiates, pc.wantIKE, pc.wantESP)
					terminate(t, p, dir.charonInitiates)
					checkWireDecrypts(t, p.cap, p.iked)
				})
			}
		})
	}
}

// establish has charon (swanctl --initiate) or iked (ikectl initiate)
// initiate the connection and fails if that does not succeed.
func establish(t *testing.T, p *pair, charonInitiates bool) {
	t.Helper()
	if charonInitiates {
		if out, err := p.charon.Initiate(childName, connName); err != nil {
			t.Fatalf("charon initiate: %v\n%s", err, out)
		}
		return
	}
	if out, err := p.iked.Initiate(connName); err != nil {
		t.Fatalf("iked initiate: %v\n%s", err, out)
	}
}

// terminate deletes the IKE SA from charon's side (swanctl --terminate)
// or iked's (ikectl terminate) and waits until neither lists it.
func terminate(t *testing.T, p *pair, byCharon bool) {
	t.Helper()
	if byCharon {
		if out, err := p.charon.Terminate(connName); err != nil {
			t.Fatalf("charon terminate: %v\n%s", err, out)
		}
	} else if out, err := p.iked.Terminate(connName); err != nil {
		t.Fatalf("iked terminate: %v\n%s", err, out)
	}
	waitGone(t, p)
}
