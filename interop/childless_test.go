package interop

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// IKEv2 payload and notify types (RFC 7296 §3.2, RFC 6023) as tshark shows
// them.
const (
	payloadSA          = "33"
	payloadTSi         = "44"
	notifyChildless    = "16418" // CHILDLESS_IKEV2_SUPPORTED
	exchangeCreateSA   = "CREATE_CHILD_SA"
	exchangeIKEAuth    = "IKE_AUTH"
	exchangeIKESAInit  = "IKE_SA_INIT"
	exchangeInformatio = "INFORMATIONAL"
)

// waitChildless waits until charon and iked each list one established IKE
// SA without Child SAs.
func waitChildless(t *testing.T, p *pair) {
	t.Helper()
	waitFor(t, 10*time.Second, func() string {
		csas, err := p.charon.ListSAs()
		if err != nil {
			return err.Error()
		}
		isas, err := p.iked.SAs()
		if err != nil {
			return err.Error()
		}
		if len(csas) != 1 || csas[0].State != "ESTABLISHED" || len(csas[0].Children) != 0 {
			return fmt.Sprintf("charon lists %+v, want one ESTABLISHED IKE SA without Child SAs", csas)
		}
		if len(isas) != 1 || isas[0].State != "established" || len(isas[0].Children) != 0 {
			return fmt.Sprintf("iked lists %+v, want one established IKE SA without Child SAs", isas)
		}
		return ""
	})
}

// TestChildless (RFC 6023): a childless IKE SA set up by iked (childless:
// force) and by charon (swanctl --initiate --ike, no child), and on top
// of it, later, the Child SA that ikectl initiate creates with
// CREATE_CHILD_SA, from either role. On the wire: iked's IKE_SA_INIT
// response announces CHILDLESS_IKEV2_SUPPORTED, the IKE_AUTH request
// carries no SA and no TS, and the Child SA comes in a CREATE_CHILD_SA
// exchange that iked started.
func TestChildless(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := newPair(t, func(ic *ikedConn, _ *charonConn) {
				if !dir.charonInitiates {
					ic.Childless = "force"
				}
			})
			if dir.charonInitiates {
				if out, err := p.charon.InitiateIKE(connName); err != nil {
					t.Fatalf("charon initiate --ike: %v\n%s", err, out)
				}
				wantLog(t, "iked", p.iked.Log(), "peer initiated a childless IKE SA")
			} else {
				out, err := p.iked.Initiate(connName)
				if err != nil {
					t.Fatalf("iked initiate: %v\n%s", err, out)
				}
				wantLog(t, "iked", p.iked.Log(), "IKE SA established without a Child SA (childless")
			}
			waitChildless(t, p)

			// Later, ikectl creates the Child SA on the established IKE SA
			// (initiate reports a connection that is up and adds what is
			// missing; no --new).
			if out, err := p.iked.ikectl(30*time.Second, "initiate", connName); err != nil {
				t.Fatalf("ikectl initiate on the childless IKE SA: %v\n%s", err, out)
			}
			checkEstablished(t, p, dir.charonInitiates, "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-256/NO_EXT_SEQ")
			terminate(t, p, dir.charonInitiates)
			proof := checkWireDecrypts(t, p.cap, p.iked)

			iked := p.topo.IkedAddr.String()
			var initResp, authReq, createReq []ikeFrame
			for _, f := range proof.Frames {
				switch {
				case f.Exchange == exchangeIKESAInit && f.Response:
					initResp = append(initResp, f)
				case f.Exchange == exchangeIKEAuth && !f.Response:
					authReq = append(authReq, f)
				case f.Exchange == exchangeCreateSA && !f.Response:
					createReq = append(createReq, f)
				}
			}
			if dir.charonInitiates && (len(initResp) != 1 || !slices.Contains(initResp[0].Notifies, notifyChildless)) {
				t.Errorf("iked's IKE_SA_INIT response does not announce CHILDLESS_IKEV2_SUPPORTED (16418):\n%s", describeFrames(proof.Frames))
			}
			if len(authReq) != 1 || slices.Contains(authReq[0].Inner, payloadSA) || slices.Contains(authReq[0].Inner, payloadTSi) {
				t.Errorf("IKE_AUTH request is not childless (no SA, no TSi):\n%s", describeFrames(proof.Frames))
			}
			if len(createReq) != 1 || createReq[0].Src != iked || !slices.Contains(createReq[0].Inner, payloadSA) {
				t.Errorf("want one CREATE_CHILD_SA request from iked with an SA payload:\n%s", describeFrames(proof.Frames))
			}
		})
	}
}

// TestChildlessRefusedByNever: iked with childless: never does not
// announce support and refuses charon's IKE-only initiation (charon 5.9.8
// sends the childless IKE_AUTH without waiting for the announcement) with
// INVALID_SYNTAX, as charon itself does; iked's own childless: force
// initiation against a charon with childless = never fails before
// IKE_AUTH, saying why.
func TestChildlessRefusedByNever(t *testing.T) {
	t.Run("charon-initiates", func(t *testing.T) {
		p := newPair(t, func(ic *ikedConn, _ *charonConn) { ic.Childless = "never" })
		if out, err := p.charon.InitiateIKE(connName); err == nil {
			t.Fatalf("charon's childless initiation succeeded against childless: never:\n%s", out)
		}
		waitGone(t, p)
		wantLog(t, "iked", p.iked.Log(), "IKE_AUTH failed", "refuses (childless: never)", `"notify":"INVALID_SYNTAX"`)
		wantLog(t, "charon", p.charon.Log(), "received INVALID_SYNTAX notify error")
		if frames, _, err := ikeFrames(p.cap, nil); err != nil {
			t.Fatal(err)
		} else {
			for _, f := range frames {
				if f.Exchange == exchangeIKESAInit && f.Response && slices.Contains(f.Notifies, notifyChildless) {
					t.Errorf("iked announced CHILDLESS_IKEV2_SUPPORTED with childless: never")
				}
			}
		}
	})
	t.Run("iked-initiates", func(t *testing.T) {
		p := newPair(t, func(ic *ikedConn, cc *charonConn) { ic.Childless, cc.Childless = "force", "never" })
		out, err := p.iked.Initiate(connName)
		if err == nil || !strings.Contains(err.Error(), "did not announce CHILDLESS_IKEV2_SUPPORTED") {
			t.Fatalf("iked initiate: %v\n%s", err, out)
		}
		// iked gives up after IKE_SA_INIT, as charon does in its place;
		// charon keeps the half-open SA until its own timeout.
		if sas, err := p.iked.SAs(); err != nil || len(sas) != 0 {
			t.Fatalf("iked lists %+v, %v", sas, err)
		}
		for _, s := range p.charon.mustListSAs() {
			if s.State == "ESTABLISHED" {
				t.Fatalf("charon established %+v", s)
			}
		}
	})
}
