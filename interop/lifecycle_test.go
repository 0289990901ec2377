package interop

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// payloadDelete is the Delete payload type.
const payloadDelete = "42"

// TestDelete: whichever side initiated, a delete from either side (charon
// swanctl --terminate --ike, iked ikectl terminate) removes the IKE SA and
// its Child SA on both; the peer is told with an INFORMATIONAL carrying a
// Delete payload, which is answered.
func TestDelete(t *testing.T) {
	for _, dir := range directions {
		for _, deleter := range []struct {
			name     string
			byCharon bool
		}{{"charon-deletes", true}, {"iked-deletes", false}} {
			t.Run(dir.name+"/"+deleter.name, func(t *testing.T) {
				p := newPair(t, nil)
				establish(t, p, dir.charonInitiates)
				is, cs := checkEstablished(t, p, dir.charonInitiates, "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-256/NO_EXT_SEQ")
				terminate(t, p, deleter.byCharon)
				if deleter.byCharon {
					wantLog(t, "iked", p.iked.Log(), "peer deleted the IKE SA", is.SPIi)
					wantLog(t, "iked", p.iked.Log(), "CHILD SA removed", is.Children[0].SPIIn)
				} else {
					wantLog(t, "charon", p.charon.Log(), "received DELETE for IKE_SA "+connName+"["+cs.UniqueID+"]")
					wantLog(t, "charon", p.charon.Log(), "IKE_SA "+connName+"["+cs.UniqueID+"] state change: ESTABLISHED => DELETING")
				}
				proof := checkWireDecrypts(t, p.cap, p.iked)
				from := p.topo.IkedAddr.String()
				if deleter.byCharon {
					from = p.topo.CharonAddr.String()
				}
				var req, resp bool
				for _, f := range proof.Frames {
					if f.Exchange != "INFORMATIONAL" {
						continue
					}
					if !f.Response && f.Src == from && slices.Contains(f.Inner, payloadDelete) {
						req = true
					}
					if f.Response && f.Src != from && req {
						resp = true
					}
				}
				if !req || !resp {
					t.Fatalf("no INFORMATIONAL request with D from %s and its response captured (request %v, response %v):\n%s",
						from, req, resp, describeFrames(proof.Frames))
				}
			})
		}
	}
}

// dpdChecks is how many answered liveness checks TestDPD waits for: with
// dpd_delay 1s, about three seconds.
const dpdChecks = 3

// TestDPD: charon runs liveness checks (dpd_delay 1s). iked answers them:
// charon has several empty INFORMATIONAL exchanges answered (each copy of
// a request is answered: on a loaded machine an answer may come after
// charon's 1 s retransmission timeout, and the retransmission is answered
// from iked's cache), never gives up on one, and both sides still hold the
// same established SAs.
func TestDPD(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := newPair(t, func(_ *ikedConn, cc *charonConn) { cc.DPDDelay = time.Second })
			establish(t, p, dir.charonInitiates)
			const algs, esp = "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-256/NO_EXT_SEQ"
			before, _ := checkEstablished(t, p, dir.charonInitiates, algs, esp)
			var answered []string
			waitFor(t, 6*time.Second, func() string {
				answered = logLines(p.charon.Log(), "parsed INFORMATIONAL response", "[ ]")
				if len(answered) < dpdChecks {
					return fmt.Sprintf("charon had %d liveness checks answered, want %d", len(answered), dpdChecks)
				}
				return ""
			})
			log := p.charon.Log()
			sent := logLines(log, "sending DPD request")
			if len(sent) < dpdChecks {
				t.Errorf("charon logged %d DPD requests, want >= %d", len(sent), dpdChecks)
			}
			for _, bad := range []string{"giving up", "deleting IKE_SA", "state change: ESTABLISHED"} {
				for _, l := range logLines(log, bad) {
					t.Errorf("charon: %s", l)
				}
			}
			after, _ := checkEstablished(t, p, dir.charonInitiates, algs, esp)
			if after.SPIi != before.SPIi || after.SPIr != before.SPIr || after.Children[0].SPIIn != before.Children[0].SPIIn {
				t.Errorf("SAs changed during DPD: before %s_i %s_r child %s, after %s_i %s_r child %s",
					before.SPIi, before.SPIr, before.Children[0].SPIIn, after.SPIi, after.SPIr, after.Children[0].SPIIn)
			}
			t.Logf("charon: %d DPD requests sent, %d answered", len(sent), len(answered))
			terminate(t, p, true)
			proof := checkWireDecrypts(t, p.cap, p.iked)
			// On the wire: charon's empty INFORMATIONAL requests, each
			// answered by iked.
			charon := p.topo.CharonAddr.String()
			var reqs, resps int
			for _, f := range proof.Frames {
				if f.Exchange == "INFORMATIONAL" && len(f.Inner) == 0 {
					if !f.Response && f.Src == charon {
						reqs++
					} else if f.Response && f.Src != charon {
						resps++
					}
				}
			}
			if reqs < dpdChecks || resps < reqs {
				t.Fatalf("captured %d empty INFORMATIONAL requests from charon and %d answers, want >= %d, all answered:\n%s",
					reqs, resps, dpdChecks, describeFrames(proof.Frames))
			}
		})
	}
}
