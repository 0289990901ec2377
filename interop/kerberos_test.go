package interop

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/iked/iked/auth/kerberos/kdctest"
)

// This file proves iked's Kerberos authentication between namespaces: two
// iked processes (backend userspace) authenticate with Kerberos only,
// through a real MIT KDC, and carry pings through the Child SA.

const (
	krbRealm   = "IKED.TEST"
	krbHostI   = "iked-i.example.test"
	krbHostS   = "iked-s.example.test"
	krbKDCPort = "88"
)

// kerberosAuth renders iked's auth: {method: kerberos, ...} for the
// ikedConn.Auth field. service may be empty (a responder needs none).
func kerberosAuth(kdc, keytab, principal, service string, allowed []string) string {
	kv := []string{
		"method: kerberos",
		"realm: " + yamlQuote(krbRealm),
		"kdcs: " + yamlList([]string{kdc}),
		"keytab: " + yamlQuote(keytab),
		"principal: " + yamlQuote(principal),
	}
	if service != "" {
		kv = append(kv, "service: "+yamlQuote(service))
	}
	kv = append(kv, "allowed: "+yamlList(allowed), "max_skew: 2m")
	return "{" + strings.Join(kv, ", ") + "}"
}

// TestKerberosNamespaces: iked in I (initiator, 10.1.0.1 on its TUN) and
// iked in S (responder, 10.2.0.1), backend userspace, authenticate with
// Kerberos only. The MIT KDC of realm IKED.TEST runs in S on the veth
// address, so the initiator fetches its TGT and its ticket for
// host/iked-s.example.test over the veth, outside the tunnel (the traffic
// selectors are the inner /24s). Both sides report a Kerberos IKE SA with
// the same SPIs and one Child SA; five pings from 10.1.0.1 to 10.2.0.1 go
// through it, as the Child SA counters and a capture of the veth show
// (ESP in UDP only, besides IKE and the Kerberos exchange); the KDC logged
// the service ticket it issued to the initiator's address.
func TestKerberosNamespaces(t *testing.T) {
	requireRoot(t)
	requireTUN(t)
	requireTools(t, "ping", "tcpdump", "tshark")
	kdctest.Require(t)

	topo := newTopology(t)
	moveInnerHost(t, topo.I, "veth-i", ikedInnerHost)
	moveInnerHost(t, topo.S, "veth-s", charonInnerHost)
	iAddr, sAddr := topo.IkedAddr.String(), topo.CharonAddr.String()
	kdcAddr := net.JoinHostPort(sAddr, krbKDCPort)

	// The KDC lives in S, listening on S's veth address: the responder
	// reaches it locally, the initiator over the veth. Started after the
	// topology, it is stopped before the namespaces are deleted.
	kdc := kdctest.StartWith(t, krbRealm, kdctest.Options{Listen: kdcAddr, Wrap: []string{"ip", "netns", "exec", topo.S.name}})
	t.Cleanup(func() {
		if t.Failed() || verbose() {
			t.Logf("KDC log:\n%s", kdc.Log())
		}
	})
	ktI := kdc.AddHost("host/"+krbHostI, filepath.Join(kdc.Dir, "iked-i.keytab"))
	ktS := kdc.AddHost("host/"+krbHostS, filepath.Join(kdc.Dir, "iked-s.keytab"))

	// Two captures of veth-i: IKE and ESP (everything but the KDC's
	// port), and the Kerberos exchange.
	capESP := startCaptureFilter(t, topo.I, "veth-i", "not port "+krbKDCPort)
	capKRB := startCaptureFilter(t, topo.I, "veth-i", "port "+krbKDCPort)

	const esp, wantESP = "aes256gcm16", "AES_GCM_16-256/NO_EXT_SEQ"
	// The initiator names the responder's service principal; the
	// responder needs none, and allows only the initiator's principal.
	authI := kerberosAuth(kdcAddr, ktI, "host/"+krbHostI, "host/"+krbHostS, []string{"host/" + krbHostS + "@" + krbRealm})
	authS := kerberosAuth(kdcAddr, ktS, "host/"+krbHostS, "", []string{"host/" + krbHostI + "@" + krbRealm})
	ci, cs := ikedPeers(iAddr, sAddr, esp)
	ci.LocalID, ci.RemoteID, ci.PSK, ci.Auth = "fqdn:"+krbHostI, "fqdn:"+krbHostS, "", authI
	cs.LocalID, cs.RemoteID, cs.PSK, cs.Auth = "fqdn:"+krbHostS, "fqdn:"+krbHostI, "", authS
	var di *iked
	t.Cleanup(func() {
		if t.Failed() || verbose() {
			var prefs []string
			if di != nil {
				prefs = di.KeyLogPrefs()
			}
			t.Logf("capture on veth-i (IKE, ESP):\n%s", capESP.Summary(prefs))
			t.Logf("capture on veth-i (Kerberos):\n%s", capKRB.Summary(nil))
		}
	})
	ds := startIked(t, topo.S, userspaceIked(sAddr, charonInnerHost, cs))
	di = startIked(t, topo.I, userspaceIked(iAddr, ikedInnerHost, ci))
	if out, err := di.Initiate(connName); err != nil {
		t.Fatalf("initiator: %v\n%s", err, out)
	} else if !strings.Contains(out, "established") {
		t.Fatalf("ikectl initiate: %s", out)
	}

	si, ic := oneChild(t, "initiator", di, wantESP)
	ss, sc := oneChild(t, "responder", ds, wantESP)
	if si.Auth != "kerberos" || ss.Auth != "kerberos" {
		t.Errorf("auth: initiator %q, responder %q, want kerberos on both", si.Auth, ss.Auth)
	}
	if si.Role != "initiator" || ss.Role != "responder" {
		t.Errorf("roles: %q / %q", si.Role, ss.Role)
	}
	if si.SPIi != ss.SPIi || si.SPIr != ss.SPIr {
		t.Errorf("IKE SPIs differ: initiator %s/%s, responder %s/%s", si.SPIi, si.SPIr, ss.SPIi, ss.SPIr)
	}
	if si.RemoteID != "fqdn:"+krbHostS || ss.RemoteID != "fqdn:"+krbHostI {
		t.Errorf("identities: initiator sees %s, responder sees %s", si.RemoteID, ss.RemoteID)
	}
	if ic.SPIOut != sc.SPIIn || ic.SPIIn != sc.SPIOut {
		t.Fatalf("Child SA SPIs do not pair: initiator in %s out %s, responder in %s out %s", ic.SPIIn, ic.SPIOut, sc.SPIIn, sc.SPIOut)
	}
	t.Logf("IKE SA %s_i %s_r, auth %s/%s; Child SA %s/%s", si.SPIi, si.SPIr, si.Auth, ss.Auth, ic.SPIOut, ic.SPIIn)

	// The KDC issued the initiator's ticket for the responder, to the
	// initiator's veth address.
	kdcLog := kdc.Log()
	issued := false
	for _, l := range strings.Split(kdcLog, "\n") {
		if strings.Contains(l, "TGS_REQ") && strings.Contains(l, iAddr+": ISSUE") &&
			strings.Contains(l, "host/"+krbHostI+"@"+krbRealm+" for host/"+krbHostS+"@"+krbRealm) {
			issued = true
			t.Logf("KDC: %s", strings.TrimSpace(l))
		}
	}
	if !issued {
		t.Errorf("the KDC log shows no service ticket for host/%s@%s issued to %s", krbHostS, krbRealm, iAddr)
	}

	// Five pings through the tunnel: each side's Child SA carried five
	// echo requests and five replies.
	ping(t, topo.I, ikedInnerHost, charonInnerHost, pingCount)
	wantCounters(t, "initiator", di, pingCount)
	wantCounters(t, "responder", ds, pingCount)

	// Kerberos counters: one successful authentication on each side, no
	// failure.
	for _, side := range []struct {
		role string
		d    *iked
	}{{"initiator", di}, {"responder", ds}} {
		m, err := side.d.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := metricValue(m, "iked_kerberos_authentications_total", `error="",result="success",role="`+side.role+`"`); !ok || v != 1 {
			t.Errorf("%s: iked_kerberos_authentications_total success %v (present %v), want 1", side.role, v, ok)
		}
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "iked_kerberos_authentications_total{") && strings.Contains(l, `result="failure"`) && !strings.HasSuffix(l, " 0") {
				t.Errorf("%s: %s", side.role, l)
			}
		}
	}

	// On the wire: only ESP in UDP between the veth addresses besides IKE
	// (decrypted, the ESP holds the pings) ...
	wireCheck(t, capESP, di.KeyLogPrefs(), topo.IkedAddr, topo.CharonAddr, spiValue(t, ic.SPIOut), spiValue(t, ic.SPIIn), pingCount)
	// ... and the initiator's Kerberos exchange, TCP to the KDC on S's
	// veth address, outside the tunnel.
	capKRB.Stop()
	frames, err := readPcap(capKRB.path)
	if err != nil {
		t.Fatal(err)
	}
	var toKDC, fromKDC, other int
	for _, f := range frames {
		switch {
		case !f.src.IsValid():
		case f.proto == unix.IPPROTO_TCP && f.src == topo.IkedAddr && f.dst == topo.CharonAddr:
			toKDC++
		case f.proto == unix.IPPROTO_TCP && f.src == topo.CharonAddr && f.dst == topo.IkedAddr:
			fromKDC++
		default:
			other++
		}
	}
	t.Logf("Kerberos on veth-i: %d TCP segments to the KDC, %d from it, %d other", toKDC, fromKDC, other)
	if toKDC == 0 || fromKDC == 0 || other != 0 {
		t.Errorf("the initiator's Kerberos exchange did not cross the veth as TCP to %s: %d to, %d from, %d other", kdcAddr, toKDC, fromKDC, other)
	}
}
