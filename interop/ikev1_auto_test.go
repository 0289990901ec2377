package interop

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// version auto: iked answers whichever version the peer speaks, and as
// initiator tries IKEv2 first and falls back to IKEv1.

// TestAutoCharon: an auto connection against charon speaking only IKEv1
// and only IKEv2, in both roles: the right version is negotiated each
// time (IKEv1 SAs are listed as isakmp-N, IKEv2 ones as ike-N).
func TestAutoCharon(t *testing.T) {
	for _, peer := range []struct {
		name     string
		version  int
		wantID   string
		wantIKE  string
		fallback bool
	}{
		{"ikev1-peer", 1, "isakmp-", v1WantIKE, true},
		{"ikev2-peer", 2, "ike-", "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048", false},
	} {
		for _, dir := range directions {
			t.Run(peer.name+"/"+dir.name, func(t *testing.T) {
				p := newPair(t, func(ic *ikedConn, cc *charonConn) {
					ic.Version, cc.Version = "auto", peer.version
					ic.IKEProposals, cc.IKEProposals = []string{v1IKE}, []string{v1IKE}
					ic.ESPProposals, cc.ESPProposals = []string{v1ESP}, []string{v1ESP}
				})
				establish(t, p, dir.charonInitiates)
				var id, alg string
				waitFor(t, 10*time.Second, func() string {
					sas, err := p.iked.SAs()
					if err != nil || len(sas) != 1 || sas[0].State != "established" || len(sas[0].Children) != 1 {
						return "iked has no established SA with its Child SA"
					}
					id, alg = sas[0].ID, sas[0].Algorithms
					return ""
				})
				if !strings.HasPrefix(id, peer.wantID) || alg != peer.wantIKE {
					t.Errorf("iked's SA %s (%s), want an %sN SA with %s", id, alg, peer.wantID, peer.wantIKE)
				}
				cs := p.charon.mustListSAs()
				if len(cs) != 1 || cs[0].Raw["version"] != strconv.Itoa(peer.version) {
					t.Errorf("charon's SAs %+v, want one of version %d", cs, peer.version)
				}
				fellBack := strings.Contains(p.iked.Log(), "falling back to IKEv1")
				if !dir.charonInitiates && fellBack != peer.fallback {
					t.Errorf("iked fell back to IKEv1: %v, want %v", fellBack, peer.fallback)
				}
			})
		}
	}
}

// TestAutoRacoon: racoon speaks only IKEv1 and ignores IKEv2 requests: an
// auto connection gets no IKEv2 answer and falls back to IKEv1.
func TestAutoRacoon(t *testing.T) {
	p := newRacoonPair(t, func(ic *ikedConn, _ *racoonOptions) { ic.Version = "auto" })
	if out, err := p.iked.Initiate(connName); err != nil {
		t.Fatalf("iked initiate: %v\n%s", err, out)
	}
	checkRacoonEstablished(t, p, "initiator", v1WantIKE, v1WantESP)
	if !strings.Contains(p.iked.Log(), "falling back to IKEv1") {
		t.Error("iked did not log the fallback")
	}
}
