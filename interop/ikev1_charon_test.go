package interop

import (
	"strings"
	"testing"
)

// IKEv1 against charon 5.9.8 (swanctl version = 1): Main Mode and Quick
// Mode, both directions, with the SAs compared as for IKEv2.

const (
	v1IKE     = "aes256-sha256-modp2048"
	v1ESP     = "aes256-sha256"
	v1WantIKE = "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
	v1WantESP = "AES_CBC-256/HMAC_SHA2_256_128/NO_EXT_SEQ"
)

// v1Edit makes a pair speak IKEv1 with CBC proposals.
func v1Edit(more func(*ikedConn, *charonConn)) func(*ikedConn, *charonConn) {
	return func(ic *ikedConn, cc *charonConn) {
		ic.Version, cc.Version = "ikev1", 1
		ic.IKEProposals, cc.IKEProposals = []string{v1IKE}, []string{v1IKE}
		ic.ESPProposals, cc.ESPProposals = []string{v1ESP}, []string{v1ESP}
		if more != nil {
			more(ic, cc)
		}
	}
}

func TestIKEv1CharonInitiatesPSK(t *testing.T) {
	p := newPair(t, v1Edit(nil))
	out, err := p.charon.Initiate(childName, connName)
	if err != nil {
		t.Fatalf("charon initiate: %v\n%s", err, out)
	}
	checkEstablished(t, p, true, v1WantIKE, v1WantESP)
	if out, err := p.charon.Terminate(connName); err != nil {
		t.Fatalf("charon terminate: %v\n%s", err, out)
	}
	waitGone(t, p)
	t.Logf("%d encrypted IKEv1 messages of iked's decrypt", checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String()))
}

func TestIKEv1IkedInitiatesPSK(t *testing.T) {
	p := newPairOpts(t, v1Edit(nil), func(io *ikedOptions, _ *charonOptions) { io.Metrics = true })
	out, err := p.iked.Initiate(connName)
	if err != nil {
		t.Fatalf("iked initiate: %v\n%s", err, out)
	}
	checkEstablished(t, p, false, v1WantIKE, v1WantESP)
	// The metrics tell the IKEv1 SAs from IKEv2 ones.
	m, err := p.iked.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		name, labels string
		want         float64
	}{
		{"iked_ike_sas", `state="established",version="ikev1"`, 1},
		{"iked_ike_sas", `state="established",version="ikev2"`, 0},
		{"iked_child_sas", `version="ikev1"`, 1},
		{"iked_handshakes_completed_total", `role="initiator",version="ikev1"`, 1},
	} {
		if v, ok := metricValue(m, w.name, w.labels); !ok || v != w.want {
			t.Errorf("%s{%s} = %v (found %v), want %v", w.name, w.labels, v, ok, w.want)
		}
	}
	if out, err := p.iked.Terminate(connName); err != nil {
		t.Fatalf("iked terminate: %v\n%s", err, out)
	}
	waitGone(t, p)
	t.Logf("%d encrypted IKEv1 messages of iked's decrypt", checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String()))
}

// TestIKEv1CharonCertificates: Main Mode with signatures and
// certificates (an intermediate CA below the root) both ways: RSA
// (method 3) and ECDSA P-256 (RFC 4754, method 9), the SAs equal on both
// sides and iked's messages decrypting.
func TestIKEv1CharonCertificates(t *testing.T) {
	for _, kc := range []struct{ name, key, wantAuth string }{
		{"rsa2048", "rsa2048", "rsa-sig"},
		{"ecdsa-p256", "p256", "ecdsa-sig"},
	} {
		for _, dir := range directions {
			t.Run(kc.name+"/"+dir.name, func(t *testing.T) {
				p, _ := newCertPair(t, certSetup{ikedKey: kc.key, charonKey: kc.key}, v1Edit(nil), nil)
				establish(t, p, dir.charonInitiates)
				is, _ := checkEstablished(t, p, dir.charonInitiates, v1WantIKE, v1WantESP)
				if is.Auth != kc.wantAuth {
					t.Errorf("iked auth %s, want %s", is.Auth, kc.wantAuth)
				}
				if !strings.Contains(p.charon.Log(), "authentication of 'iked.example' with") {
					t.Errorf("charon did not log iked's signature check")
				}
				checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
			})
		}
	}
}

// TestIKEv1CharonFragmentation: with certificates, iked's fragment_size
// 576 and charon's fragmentation = force, Main Mode's certificate messages
// cross as IKE fragments (payload 132) both ways, and Main Mode completes.
func TestIKEv1CharonFragmentation(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p, _ := newCertPair(t, certSetup{ikedKey: "rsa2048", charonKey: "rsa2048"}, v1Edit(func(_ *ikedConn, cc *charonConn) {
				cc.Fragmentation = "force"
			}), func(io *ikedOptions, _ *charonOptions) { io.FragmentSize = 576 })
			establish(t, p, dir.charonInitiates)
			checkEstablished(t, p, dir.charonInitiates, v1WantIKE, v1WantESP)
			out, err := p.cap.tshark(nil, "-Y", "isakmp.typepayload == 132", "-T", "fields", "-e", "ip.src", "-e", "frame.len")
			if err != nil {
				t.Fatal(err)
			}
			from := map[string]int{}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(l)
				if len(f) == 2 {
					from[f[0]]++
				}
			}
			if from[p.topo.IkedAddr.String()] < 2 || from[p.topo.CharonAddr.String()] < 2 {
				t.Errorf("IKE fragments by sender: %v, want several from each", from)
			}
			if !strings.Contains(p.charon.Log(), "received fragment") && !strings.Contains(p.charon.Log(), "reassembled fragmented IKE message") {
				t.Logf("charon's log names no reassembly")
			}
		})
	}
}
