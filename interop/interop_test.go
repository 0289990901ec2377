package interop

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

const (
	interopPSK = "interop test pre-shared key, long enough"
	ikedID     = "fqdn:iked.example"
	charonID   = "fqdn:charon.example"
	connName   = "interop"
	childName  = "net"
)

// pair is iked and charon in their namespaces, configured as peers, with a
// capture of the link on charon's side.
type pair struct {
	topo   *topology
	cap    *capture
	iked   *iked
	charon *charon
	ic     ikedConn
	cc     charonConn
}

// newPair builds the topology, starts the capture, iked and charon with
// matching connections (PSK, AES-GCM-256/X25519, 10.1.0.0/24 on iked's
// side, 10.2.0.0/24 on charon's) after edit has adjusted them. When the
// test fails, the capture is printed, IKE decrypted with iked's key log.
func newPair(t *testing.T, edit func(*ikedConn, *charonConn)) *pair {
	t.Helper()
	return newPairOpts(t, edit, nil)
}

// newPairOpts is newPair with a hook that adjusts the daemons' options
// (iked's engine tunables, charon's retransmission settings) after the
// connections are set.
func newPairOpts(t *testing.T, edit func(*ikedConn, *charonConn), opts func(*ikedOptions, *charonOptions)) *pair {
	t.Helper()
	return startCharonPair(t, charonPairSetup{filter: "udp", edit: edit, opts: opts})
}

// verbose reports whether INTEROP_VERBOSE is set: then the capture and the
// daemons' logs are printed for passing tests too.
func verbose() bool { return os.Getenv("INTEROP_VERBOSE") != "" }

// hangGuard bounds a wait for something that must eventually happen: it
// only turns a hang into a failure, so it is long enough for a loaded
// 2-vCPU machine, and nothing a test asserts depends on it.
const hangGuard = 60 * time.Second

// waitFor polls cond every 20ms until it returns "" or the timeout
// expires; then it fails with cond's last complaint. The timeout is a hang
// guard, never the thing asserted: it is at least hangGuard, since a loaded
// machine may take long for what an idle one does at once (a test that
// means "within T" measures T itself).
func waitFor(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	timeout = max(timeout, hangGuard)
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// idValue is an identity in iked's notation without its type prefix, as
// charon prints it: "fqdn:a.example" is "a.example", "dn:C=CH, CN=a" is
// "C=CH, CN=a".
func idValue(id string) string {
	for _, prefix := range []string{"fqdn:", "dn:", "email:", "ip:"} {
		if v, ok := strings.CutPrefix(id, prefix); ok {
			return v
		}
	}
	return id
}

// algParts splits an algorithm string such as
// "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519" into its parts.
func algParts(s string) []string { return strings.Split(s, "/") }

// sameParts compares two algorithm strings part by part and describes the
// first difference.
func sameParts(what, iked, charon string) string {
	a, b := algParts(iked), algParts(charon)
	if len(a) != len(b) {
		return fmt.Sprintf("%s: iked %q has %d parts, charon %q %d", what, iked, len(a), charon, len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("%s part %d: iked %q, charon %q (iked %q, charon %q)", what, i+1, a[i], b[i], iked, charon)
		}
	}
	return ""
}

// checkEstablished asserts that charon and iked each hold exactly one
// established IKE SA with one installed Child SA, and that both describe
// the same SAs: IKE SPIs, roles, algorithms, Child SA SPIs (paired in/out),
// algorithms and traffic selectors.
func checkEstablished(t *testing.T, p *pair, charonInitiated bool, wantIKE, wantESP string) (ike.SAInfo, charonIKESA) {
	t.Helper()
	csas := p.charon.mustListSAs()
	if len(csas) != 1 {
		t.Fatalf("charon lists %d IKE SAs, want 1: %+v", len(csas), csas)
	}
	cs := csas[0]
	if cs.State != "ESTABLISHED" {
		t.Fatalf("charon IKE SA state %s, want ESTABLISHED", cs.State)
	}
	if len(cs.Children) != 1 || cs.Children[0].State != "INSTALLED" {
		t.Fatalf("charon Child SAs: %+v, want one INSTALLED", cs.Children)
	}
	if cs.Initiator != charonInitiated {
		t.Fatalf("charon initiator = %v, want %v", cs.Initiator, charonInitiated)
	}

	// iked may record the SA a moment after charon (the responder
	// installs after sending its last message), so poll briefly.
	var is ike.SAInfo
	waitFor(t, 5*time.Second, func() string {
		sas, err := p.iked.SAs()
		if err != nil {
			return err.Error()
		}
		if len(sas) != 1 {
			return fmt.Sprintf("iked lists %d IKE SAs, want 1: %+v", len(sas), sas)
		}
		is = sas[0]
		if is.State != "established" || len(is.Children) != 1 {
			return fmt.Sprintf("iked IKE SA %s with %d Child SAs, want established with 1", is.State, len(is.Children))
		}
		return ""
	})
	wantRole := "responder"
	if !charonInitiated {
		wantRole = "initiator"
	}
	if is.Role != wantRole {
		t.Errorf("iked role %s, want %s", is.Role, wantRole)
	}
	if is.SPIi != spiHex(cs.SPIi, 16) || is.SPIr != spiHex(cs.SPIr, 16) {
		t.Errorf("IKE SPIs differ: iked %s_i %s_r, charon %s_i %s_r", is.SPIi, is.SPIr, cs.SPIi, cs.SPIr)
	}
	if msg := sameParts("IKE algorithms", is.Algorithms, cs.Algorithms()); msg != "" {
		t.Error(msg)
	}
	if is.Algorithms != wantIKE {
		t.Errorf("iked IKE algorithms %q, want %q", is.Algorithms, wantIKE)
	}
	// The identities iked is configured with (ikedID and charonID unless
	// a test changed them, e.g. to charon's subject DN).
	wantLocal, wantRemote := p.ic.LocalID, p.ic.RemoteID
	if is.LocalID != wantLocal || is.RemoteID != wantRemote {
		t.Errorf("iked identities %s === %s, want %s === %s", is.LocalID, is.RemoteID, wantLocal, wantRemote)
	}
	if !strings.HasSuffix(cs.LocalID, idValue(wantRemote)) || !strings.HasSuffix(cs.RemoteID, idValue(wantLocal)) {
		t.Errorf("charon identities %s === %s, want %s === %s", cs.LocalID, cs.RemoteID, idValue(wantRemote), idValue(wantLocal))
	}

	ic, cc := is.Children[0], cs.Children[0]
	if ic.SPIIn != spiHex(cc.SPIOut, 8) || ic.SPIOut != spiHex(cc.SPIIn, 8) {
		t.Errorf("Child SA SPIs do not pair: iked in %s out %s, charon in %s out %s", ic.SPIIn, ic.SPIOut, cc.SPIIn, cc.SPIOut)
	}
	if msg := sameParts("ESP algorithms", ic.Algorithms, cc.Algorithms()); msg != "" {
		t.Error(msg)
	}
	if ic.Algorithms != wantESP {
		t.Errorf("iked ESP algorithms %q, want %q", ic.Algorithms, wantESP)
	}
	if ic.Mode != "tunnel" || cc.Mode != "TUNNEL" || ic.Protocol != "esp" || cc.Protocol != "ESP" {
		t.Errorf("Child SA mode/protocol: iked %s/%s, charon %s/%s", ic.Mode, ic.Protocol, cc.Mode, cc.Protocol)
	}
	if strings.Join(ic.LocalTS, ",") != ikedInnerNet || strings.Join(ic.RemoteTS, ",") != charonInnerNet {
		t.Errorf("iked traffic selectors %v === %v", ic.LocalTS, ic.RemoteTS)
	}
	if strings.Join(cc.LocalTS, ",") != charonInnerNet || strings.Join(cc.RemoteTS, ",") != ikedInnerNet {
		t.Errorf("charon traffic selectors %v === %v", cc.LocalTS, cc.RemoteTS)
	}
	return is, cs
}

// TestCharonInitiates: charon initiates to iked with a PSK, AES-GCM-256,
// X25519 and ESP AES-GCM-256; both list the same established SAs, and the
// keys are proven on the wire.
func TestCharonInitiates(t *testing.T) {
	p := newPair(t, nil)
	out, err := p.charon.Initiate(childName, connName)
	if err != nil {
		t.Fatalf("charon initiate: %v\n%s", err, out)
	}
	is, cs := checkEstablished(t, p, true, "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-256/NO_EXT_SEQ")
	t.Logf("charon %s[%s] %s:%s === %s:%s nat-any=%v; iked %s %s === %s nat_remote=%v",
		cs.Name, cs.UniqueID, cs.LocalHost, cs.LocalPort, cs.RemoteHost, cs.RemotePort, cs.NATAny,
		is.ID, is.LocalAddr, is.RemoteAddr, is.NATRemote)

	if out, err := p.charon.Terminate(connName); err != nil {
		t.Fatalf("charon terminate: %v\n%s", err, out)
	}
	waitGone(t, p)
	checkWireDecrypts(t, p.cap, p.iked)
}

// waitGone waits until neither daemon lists an IKE SA.
func waitGone(t *testing.T, p *pair) {
	t.Helper()
	waitFor(t, 5*time.Second, func() string {
		csas, err := p.charon.ListSAs()
		if err != nil {
			return err.Error()
		}
		isas, err := p.iked.SAs()
		if err != nil {
			return err.Error()
		}
		if len(csas) != 0 || len(isas) != 0 {
			return fmt.Sprintf("after terminate charon lists %d IKE SAs, iked %d", len(csas), len(isas))
		}
		return ""
	})
}

// TestIkedInitiates: iked initiates to charon with the same proposals.
func TestIkedInitiates(t *testing.T) {
	p := newPair(t, nil)
	out, err := p.iked.Initiate(connName)
	if err != nil {
		t.Fatalf("iked initiate: %v\n%s", err, out)
	}
	is, cs := checkEstablished(t, p, false, "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-256/NO_EXT_SEQ")
	t.Logf("charon %s[%s] %s:%s === %s:%s nat-any=%v; iked %s %s === %s nat_remote=%v",
		cs.Name, cs.UniqueID, cs.LocalHost, cs.LocalPort, cs.RemoteHost, cs.RemotePort, cs.NATAny,
		is.ID, is.LocalAddr, is.RemoteAddr, is.NATRemote)
	if out, err := p.iked.Terminate(connName); err != nil {
		t.Fatalf("iked terminate: %v\n%s", err, out)
	}
	waitGone(t, p)
	checkWireDecrypts(t, p.cap, p.iked)
}
