package interop

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iked/iked/auth/kerberos/kdctest"
)

// The policy matrix with the key module of Windows' connection security
// rules (issue 16, 22): the same assigned policies, negotiated with IKEv1
// (main mode and quick mode), or with auto (IKEv2 first, IKEv1 when the
// peer does not speak it), between two iked in namespaces.

const (
	kxIKEv1 = "{key_module: ikev1}"
	kxAuto  = "{key_module: auto}"
)

// ikeOnWire counts the IKE messages between A and B on the capture by
// their header's major version (1 or 2): on port 500, and on port 4500
// behind the non-ESP marker.
func (m *matrix) ikeOnWire() map[int]int {
	m.t.Helper()
	m.capture.Stop()
	frames, err := readPcap(m.capture.path)
	if err != nil {
		m.t.Fatal(err)
	}
	versions := map[int]int{}
	for _, f := range frames {
		if f.proto != unix.IPPROTO_UDP {
			continue
		}
		between := f.src == m.addrA && f.dst == m.addrB || f.src == m.addrB && f.dst == m.addrA
		if !between {
			continue
		}
		hdr := f.udp
		switch {
		case f.sport == 500 || f.dport == 500:
		case (f.sport == 4500 || f.dport == 4500) && len(hdr) >= 4 && hdr[0]|hdr[1]|hdr[2]|hdr[3] == 0:
			hdr = hdr[4:]
		default:
			continue
		}
		if len(hdr) >= 28 {
			versions[int(hdr[17]>>4)]++
		}
	}
	return versions
}

// wantVersionFlows waits until d counted at least atLeast negotiations of
// IKE version with outcome.
func (m *matrix) wantVersionFlows(d *iked, version, outcome string, atLeast float64) {
	m.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		metrics, err := d.Metrics()
		v, _ := metricValue(metrics, "iked_policy_flows_total", fmt.Sprintf(`outcome=%q,version=%q`, outcome, version))
		if err == nil && v >= atLeast {
			return
		}
		if time.Now().After(deadline) {
			m.t.Errorf("%s: iked_policy_flows_total{outcome=%q,version=%q} = %v, want at least %v (%v)", d.ns.name, outcome, version, v, atLeast, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wantNoVersionFlows checks that d counted no negotiation of version.
func (m *matrix) wantNoVersionFlows(d *iked, version string) {
	m.t.Helper()
	metrics, err := d.Metrics()
	v, ok := metricValue(metrics, "iked_policy_flows_total", fmt.Sprintf(`version=%q`, version))
	if err != nil || !ok || v != 0 {
		m.t.Errorf("%s: iked_policy_flows_total{version=%q} = %v (exported %v, %v), want 0", d.ns.name, version, v, ok, err)
	}
}

// wantSAsOf checks that d's SAs with Child SAs are all of one version
// (IKEv1's IDs are isakmp-N, IKEv2's ike-N) and authenticated by auth.
func (m *matrix) wantSAsOf(d *iked, prefix, auth string) {
	m.t.Helper()
	sas, err := d.SAs()
	if err != nil {
		m.t.Fatal(err)
	}
	n := 0
	for _, sa := range sas {
		if len(sa.Children) == 0 {
			continue
		}
		n++
		if !strings.HasPrefix(sa.ID, prefix) || sa.Auth != auth {
			m.t.Errorf("%s: SA %s authenticated by %s, want %sN by %s", d.ns.name, sa.ID, sa.Auth, prefix, auth)
		}
	}
	if n == 0 {
		m.t.Errorf("%s: no SA with IPsec SAs: %+v", d.ns.name, sas)
	}
}

// wantPeersSay checks that ikectl peers on d, for TCP to peer, prints
// every line of want.
func (m *matrix) wantPeersSay(d *iked, peer fmt.Stringer, want ...string) {
	m.t.Helper()
	out, err := d.ikectl(10*time.Second, "peers", peer.String(), "--protocol", "tcp", "--port", fmt.Sprint(matrixEchoPort))
	if err != nil {
		m.t.Fatalf("ikectl peers: %v\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			m.t.Errorf("ikectl peers on %s lacks %q:\n%s", d.ns.name, w, out)
		}
	}
}

func TestPolicyMatrixIKEv1(t *testing.T) {
	requireRoot(t)

	t.Run("RequireSecurityBothSidesIKEv1_TCPOnlyAsESPICMPClear", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: require, KeyExchange: kxIKEv1}, policyHost{Policy: require, KeyExchange: kxIKEv1})
		m.startCapture()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 10*time.Second)
		m.wantTCP(m.topo.S, m.addrA, matrixEchoPort, 5*time.Second)
		if got := m.pings(m.topo.I, m.addrB, 3); got != 3 {
			t.Errorf("%d of 3 pings answered: ICMP is permitted", got)
		}
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 || w.icmp == 0 {
			t.Errorf("want TCP only as ESP and ICMP in clear, got %+v%s", w, m.logs())
		}
		if v := m.ikeOnWire(); v[1] == 0 || v[2] != 0 {
			t.Errorf("IKE messages by major version %v: want IKEv1 only%s", v, m.logs())
		}
		m.wantSAsOf(m.a, "isakmp-", "psk")
		m.wantSAsOf(m.b, "isakmp-", "psk")
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "secured")
		m.wantPeersSay(m.a, m.addrB, "  key      ikev1", "(ikev1)")
		m.wantVersionFlows(m.a, "ikev1", "secured", 1)
		m.wantNoVersionFlows(m.a, "ikev2")
		m.wantPackets(m.a, "secured")
		m.wantPackets(m.a, "clear_permit")
		out, err := m.a.ikectl(10*time.Second, "policy")
		if err != nil || !strings.Contains(out, "    key     ikev1") || !strings.Contains(out, "key exchange: key module ikev1") {
			t.Errorf("ikectl policy does not show the key module: %v\n%s", err, out)
		}
	})

	t.Run("RequestSecurityIKEv1ToNoIPsec_ClearAfterTheFallbackDelay", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: request, KeyExchange: kxIKEv1}, policyHost{})
		m.startCapture()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 15*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] == 0 || w.esp != 0 {
			t.Errorf("want clear TCP and no ESP, got %+v", w)
		}
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "clear-fallback")
		m.wantVersionFlows(m.a, "ikev1", "clear_fallback", 1)
	})

	t.Run("RequireSecurityIKEv1NoCommonAuthMethod_FailsAndTheResponderSaysAuthenticationMismatch", func(t *testing.T) {
		cm, _ := newCertMaterial(t, certSetup{ikedKey: "p256", charonKey: "p256"})
		certAuth := "  site-cert: {method: cert, cert: cert.pem, key: key.pem, ca: [root.pem], intermediates: [inter.pem]}\n"
		m := newMatrix(t, policyHost{Policy: require, KeyExchange: kxIKEv1},
			policyHost{Policy: require, Auth: certAuth, Files: cm.ikedFiles, KeyExchange: kxIKEv1})
		m.startCapture()
		m.wantNoTCP(m.topo.I, m.addrB, matrixEchoPort, 6*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 {
			t.Errorf("clear TCP left A: %+v", w)
		}
		// IKEv1 offers the method inside the main mode proposals: B sees
		// the mismatch, A only that none of its proposals was taken.
		wantLog(t, "B", m.b.Log(), "authentication mismatch", `"offered":["psk"]`)
		m.wantVersionFlows(m.b, "ikev1", "auth_mismatch", 1)
		m.wantVersionFlows(m.a, "ikev1", "failed", 1)
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "not-secured")
		m.wantPeersSay(m.a, m.addrB, "no authentication method or algorithms in common")
	})

	t.Run("AutoToIKEv1Only_FallsBackToIKEv1", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: require, KeyExchange: kxAuto}, policyHost{Policy: require, KeyExchange: kxIKEv1})
		m.startCapture()
		// A tries IKEv2; B's IKEv2 has nothing for it (NO_PROPOSAL_CHOSEN),
		// so A goes on with IKEv1 at once.
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 15*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 {
			t.Errorf("want TCP only as ESP, got %+v%s", w, m.logs())
		}
		if v := m.ikeOnWire(); v[1] == 0 || v[2] == 0 {
			t.Errorf("IKE messages by major version %v: want IKEv2 tried, then IKEv1%s", v, m.logs())
		}
		wantLog(t, "A", m.a.Log(), "the peer does not speak IKEv2: negotiating with IKEv1")
		m.wantSAsOf(m.a, "isakmp-", "psk")
		m.wantVersionFlows(m.a, "ikev1", "secured", 1)
		m.wantPeersSay(m.a, m.addrB, "  key      auto, last negotiated with ikev1", "(ikev1)")
	})

	t.Run("IKEv1OnlyToAuto_TheAutoHostAnswersIKEv1", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: require, KeyExchange: kxIKEv1}, policyHost{Policy: require, KeyExchange: kxAuto})
		m.startCapture()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 10*time.Second)
		if v := m.ikeOnWire(); v[1] == 0 || v[2] != 0 {
			t.Errorf("IKE messages by major version %v: want IKEv1 only%s", v, m.logs())
		}
		m.wantSAsOf(m.b, "isakmp-", "psk")
		m.wantVerdict(m.b, m.addrA, matrixEchoPort, "secured")
	})

	t.Run("AutoToIKEv2_StaysWithIKEv2", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: require, KeyExchange: kxAuto}, policyHost{Policy: require})
		m.startCapture()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 10*time.Second)
		if v := m.ikeOnWire(); v[2] == 0 || v[1] != 0 {
			t.Errorf("IKE messages by major version %v: want IKEv2 only%s", v, m.logs())
		}
		m.wantSAsOf(m.a, "ike-", "psk")
		m.wantVersionFlows(m.a, "ikev2", "secured", 1)
		m.wantPeersSay(m.a, m.addrB, "  key      auto, last negotiated with ikev2", "(ikev2)")
	})
}

// TestPolicyKerberosIKEv1: TestPolicyKerberos with the key module of a
// Windows domain's rules: two hosts with secure-server-require-security,
// Kerberos only, the MIT KDC in B's namespace (exempt), negotiated with
// IKEv1's GSS-API method (65001). Then A's policy is reassigned to IKEv2
// while B runs auto: the IKEv1 SA goes, and the same kerberos method of
// B's same rule set answers IKEv2's private Kerberos method. One rule set
// serves a Windows peer (IKEv1) and an iked peer (IKEv2).
func TestPolicyKerberosIKEv1(t *testing.T) {
	requireRoot(t)
	kdctest.Require(t)
	topo := newTopology(t)
	kdcAddr := net.JoinHostPort(topo.CharonAddr.String(), krbKDCPort)
	kdc := kdctest.StartWith(t, krbRealm, kdctest.Options{Listen: kdcAddr, Wrap: []string{"ip", "netns", "exec", topo.S.name}})
	ktA := kdc.AddHost("host/"+krbHostI, filepath.Join(kdc.Dir, "a.keytab"))
	ktB := kdc.AddHost("host/"+krbHostS, filepath.Join(kdc.Dir, "b.keytab"))
	authA := "  corp: " + kerberosAuth(kdcAddr, ktA, "host/"+krbHostI, "host/"+krbHostS, []string{"@" + krbRealm}) + "\n"
	authB := "  corp: " + kerberosAuth(kdcAddr, ktB, "host/"+krbHostS, "host/"+krbHostI, []string{"@" + krbRealm}) + "\n"
	hostA := policyHost{Policy: require, Auth: authA, KeyExchange: kxIKEv1}
	m := newMatrixOn(t, topo, hostA, policyHost{Policy: require, Auth: authB, KeyExchange: kxAuto})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("KDC log:\n%s", kdc.Log())
		}
	})
	m.startCapture()
	m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 15*time.Second)
	w := m.wire()
	if w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 {
		t.Errorf("want the TCP connection only as ESP, got %+v%s", w, m.logs())
	}
	if w.clearTCP[88] == 0 {
		t.Errorf("no clear Kerberos exchange with the KDC on the wire: %+v", w)
	}
	if v := m.ikeOnWire(); v[1] == 0 || v[2] != 0 {
		t.Errorf("IKE messages by major version %v: want IKEv1 only%s", v, m.logs())
	}
	m.wantSAsOf(m.a, "isakmp-", "kerberos")
	m.wantSAsOf(m.b, "isakmp-", "kerberos")
	wantLog(t, "B", m.b.Log(), "ISAKMP SA established", `"peer_principal":"host/`+krbHostI+"@"+krbRealm+`"`)
	m.wantVerdict(m.a, m.addrB, matrixEchoPort, "secured")

	// A becomes an IKEv2 host: its IKEv1 SA no longer fits its policy.
	hostA.KeyExchange = ""
	m.reassign(m.a, m.addrA, hostA)
	waitFor(t, hangGuard, func() string {
		if n := len(m.sasOf(m.a)) + len(m.sasOf(m.b)); n != 0 {
			return fmt.Sprintf("%d SAs left after the reassignment", n)
		}
		return ""
	})
	m.startCapture()
	m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 15*time.Second)
	if v := m.ikeOnWire(); v[2] == 0 || v[1] != 0 {
		t.Errorf("after the reassignment, IKE messages by major version %v: want IKEv2 only%s", v, m.logs())
	}
	m.wantSAsOf(m.a, "ike-", "kerberos")
	m.wantSAsOf(m.b, "ike-", "kerberos")
}
