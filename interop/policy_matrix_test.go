package interop

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iked/iked/auth/kerberos/kdctest"
)

// The Windows policy matrix (issue 5): two hosts in network namespaces,
// each running iked with the userspace data plane and an assigned policy
// (or no IPsec at all), real TCP connections and pings between them, and
// a capture on the wire that says whether each flow went as ESP or in
// clear. Every case names its promise.

const (
	matrixPSK      = "a long enough lab secret"
	matrixEchoPort = 8080
	telnetPort     = 23
)

// policyHost is one side of a matrix case.
type policyHost struct {
	// Policy is the assigned policy's name; empty means no iked at all.
	Policy string
	// Auth is the authentication section's body; empty means one PSK
	// method named lab.
	Auth string
	// Extra is more YAML (filter lists and policies).
	Extra string
	// Files are written next to the configuration (certificates).
	Files map[string][]byte
	// KeyExchange is policy.key_exchange (a YAML flow mapping, e.g.
	// "{key_module: ikev1}"); empty for the default (IKEv2).
	KeyExchange string
}

func (h policyHost) yaml() string {
	auth := h.Auth
	if auth == "" {
		auth = fmt.Sprintf("  lab: {method: psk, secret: %s}\n", yamlQuote(matrixPSK))
	}
	kx := ""
	if h.KeyExchange != "" {
		kx = "  key_exchange: " + h.KeyExchange + "\n"
	}
	return "authentication:\n" + auth + h.Extra + "policy:\n  assign: " + h.Policy + "\n  retry_after: 5s\n" + kx
}

// matrix is a running case: A in the first namespace, B in the second.
type matrix struct {
	t       *testing.T
	topo    *topology
	a, b    *iked // nil for a host without IPsec
	addrA   netip.Addr
	addrB   netip.Addr
	capture *capture
}

func newMatrix(t *testing.T, a, b policyHost) *matrix {
	t.Helper()
	requireTUN(t)
	requireTools(t, "nft", "tcpdump", "ping")
	return newMatrixOn(t, newTopology(t), a, b)
}

// newMatrixOn is newMatrix on an existing topology.
func newMatrixOn(t *testing.T, topo *topology, a, b policyHost) *matrix {
	t.Helper()
	requireTUN(t)
	requireTools(t, "nft", "tcpdump", "ping")
	m := &matrix{t: t, topo: topo, addrA: topo.IkedAddr, addrB: topo.CharonAddr}
	for _, ns := range []*netns{topo.I, topo.S} {
		for _, port := range []int{matrixEchoPort, telnetPort} {
			echoServer(t, ns, port)
		}
	}
	start := func(ns *netns, addr netip.Addr, h policyHost) *iked {
		if h.Policy == "" {
			return nil
		}
		return startIked(t, ns, policyIked(addr, h.yaml(), h.Files))
	}
	m.a = start(topo.I, m.addrA, a)
	m.b = start(topo.S, m.addrB, b)
	return m
}

// echoServer answers each TCP connection on port in ns with "pong:" and
// what it read.
func echoServer(t *testing.T, ns *netns, port int) {
	t.Helper()
	var ln net.Listener
	if err := inNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("echo server in %s: %v", ns.name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				_, _ = c.Write(append([]byte("pong:"), buf[:n]...))
			}()
		}
	}()
}

// tcp connects from ns to dst:port, sends a line and reads the echo.
func tcp(ns *netns, dst netip.Addr, port int, timeout time.Duration) error {
	var c net.Conn
	if err := inNS(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(dst, uint16(port)).String(), timeout)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("hello")); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(b) != "pong:hello" {
		return fmt.Errorf("echo answered %q", b)
	}
	return nil
}

func (m *matrix) wantTCP(from *netns, dst netip.Addr, port int, timeout time.Duration) {
	m.t.Helper()
	if err := m.tcpWithin(from, dst, port, timeout); err != nil {
		m.t.Fatalf("TCP %s -> %s:%d failed: %v%s", from.name, dst, port, err, m.logs())
	}
}

// tcpWithin is tcp with a timeout of at least hangGuard: a connection
// that must succeed may take long on a busy machine (the negotiation its
// first SYN waits for, a SYN retransmitted after the fallback delay).
func (m *matrix) tcpWithin(from *netns, dst netip.Addr, port int, timeout time.Duration) error {
	return tcp(from, dst, port, max(timeout, hangGuard))
}

func (m *matrix) wantNoTCP(from *netns, dst netip.Addr, port int, wait time.Duration) {
	m.t.Helper()
	err := tcp(from, dst, port, wait)
	if err == nil {
		m.t.Fatalf("TCP %s -> %s:%d succeeded; the policy must stop it%s", from.name, dst, port, m.logs())
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		// A refused connection would mean a clear RST got through.
		if !errors.Is(err, unix.ECONNREFUSED) {
			m.t.Logf("TCP %s -> %s:%d: %v", from.name, dst, port, err)
		}
	}
}

// pings sends count pings and returns how many were answered.
func (m *matrix) pings(from *netns, dst netip.Addr, count int) int {
	out, _ := from.command(m.t.Context(), "ping", "-n", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", dst.String()).CombinedOutput()
	var sent, got int
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "packets transmitted") {
			fmt.Sscanf(line, "%d packets transmitted, %d received", &sent, &got)
		}
	}
	return got
}

// startCapture captures everything on A's veth from now on.
func (m *matrix) startCapture() {
	m.capture = startCaptureFilter(m.t, m.topo.I, "veth-i", "")
}

// onWire counts what the capture saw between A and B: clear TCP segments
// (by port), ICMP packets, and ESP-in-UDP packets.
type onWire struct {
	clearTCP map[uint16]int // by the server port (the lower one)
	icmp     int
	esp      int
	clear    []string // the clear TCP segments, for failure messages
}

func (m *matrix) wire() onWire {
	m.t.Helper()
	m.capture.Stop() // with every frame of what the case did: see Stop
	frames, err := readPcap(m.capture.path)
	if err != nil {
		m.t.Fatal(err)
	}
	w := onWire{clearTCP: map[uint16]int{}}
	for _, f := range frames {
		between := f.src == m.addrA && f.dst == m.addrB || f.src == m.addrB && f.dst == m.addrA
		if !between {
			continue
		}
		switch {
		case f.proto == unix.IPPROTO_TCP:
			w.clearTCP[min(f.sport, f.dport)]++
			w.clear = append(w.clear, fmt.Sprintf("%s:%d > %s:%d flags %#x", f.src, f.sport, f.dst, f.dport, tcpFlags(f)))
		case f.proto == unix.IPPROTO_ICMP:
			w.icmp++
		default:
			if _, _, ok := f.esp(); ok {
				w.esp++
			}
		}
	}
	return w
}

// tcpFlags returns a captured TCP segment's flags.
func tcpFlags(f frame) byte {
	ip := f.data[14:]
	ihl := int(ip[0]&0xf) * 4
	if len(ip) < ihl+14 {
		return 0
	}
	return ip[ihl+13]
}

func (m *matrix) logs() string {
	var b strings.Builder
	for _, d := range []*iked{m.a, m.b} {
		if d != nil {
			fmt.Fprintf(&b, "\n--- %s log:\n%s", d.ns.name, d.Log())
		}
	}
	return b.String()
}

// peerVerdict asks host d what happens to TCP traffic to peer.
func (m *matrix) peerVerdict(d *iked, peer netip.Addr, port int) string {
	m.t.Helper()
	out, err := d.ikectl(10*time.Second, "peers", peer.String(), "--protocol", "tcp", "--port", fmt.Sprint(port))
	if err != nil {
		m.t.Fatalf("ikectl peers: %v\n%s", err, out)
	}
	first, _, _ := strings.Cut(out, "\n")
	return strings.TrimSpace(strings.TrimPrefix(first, peer.String()+":"))
}

func (m *matrix) wantVerdict(d *iked, peer netip.Addr, port int, want string) {
	m.t.Helper()
	if got := m.peerVerdict(d, peer, port); got != want {
		out, _ := d.ikectl(10*time.Second, "peers", peer.String())
		m.t.Errorf("ikectl peers on %s says %q for %s, want %q:\n%s", d.ns.name, got, peer, want, out)
	}
}

func (m *matrix) wantFlows(d *iked, outcome string, atLeast float64) {
	m.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		metrics, err := d.Metrics()
		v, _ := metricValue(metrics, "iked_policy_flows_total", fmt.Sprintf(`outcome=%q`, outcome))
		if err == nil && v >= atLeast {
			return
		}
		if time.Now().After(deadline) {
			m.t.Errorf("%s: iked_policy_flows_total{outcome=%q} = %v, want at least %v (%v)", d.ns.name, outcome, v, atLeast, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *matrix) wantPackets(d *iked, outcome string) {
	m.t.Helper()
	metrics, err := d.Metrics()
	if v, ok := metricValue(metrics, "iked_policy_packets_total", fmt.Sprintf(`outcome=%q`, outcome)); err != nil || !ok || v == 0 {
		m.t.Errorf("%s: iked_policy_packets_total{outcome=%q} = %v (%v)", d.ns.name, outcome, v, err)
	}
}

// wantReleased: d held the packets that started a negotiation and sent
// them through the new SA (the first SYN did not wait for a retransmission).
func (m *matrix) wantReleased(d *iked) {
	m.t.Helper()
	metrics, err := d.Metrics()
	if v, ok := metricValue(metrics, "iked_dataplane_events_total", `event="acquire_released"`); err != nil || !ok || v == 0 {
		m.t.Errorf("%s: iked_dataplane_events_total{event=\"acquire_released\"} = %v (%v)", d.ns.name, v, err)
	}
}

const (
	respondOnly = "client-respond-only"
	request     = "server-request-security"
	require     = "secure-server-require-security"
)

func TestPolicyMatrix(t *testing.T) {
	requireRoot(t)
	t.Run("RespondOnlyBothSides_TrafficStaysClear", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: respondOnly}, policyHost{Policy: respondOnly})
		m.startCapture()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 5*time.Second)
		if m.pings(m.topo.I, m.addrB, 3) != 3 {
			t.Error("pings lost")
		}
		w := m.wire()
		if w.clearTCP[matrixEchoPort] == 0 || w.esp != 0 || w.icmp == 0 {
			t.Errorf("want clear TCP and ICMP, no ESP; got %+v", w)
		}
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "clear-no-rule")
	})

	t.Run("RespondOnlyToRequestSecurity_SecuredOnceTheServerAnswers", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: respondOnly}, policyHost{Policy: request})
		// A's first SYN goes in clear and B accepts it unsecured; B's
		// answer needs security, so B negotiates and A's default response
		// rule answers. From then on the flow is ESP.
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 10*time.Second)
		m.startCapture()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 5*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 {
			t.Errorf("after B answered: want only ESP for TCP, got %+v%s", w, m.logs())
		}
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "secured")
		m.wantVerdict(m.b, m.addrA, matrixEchoPort, "secured")
		m.wantFlows(m.b, "secured", 1)
	})

	t.Run("RespondOnlyToRequireSecurity_Secured", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: respondOnly}, policyHost{Policy: require})
		m.startCapture()
		// B starts: its SYN must be secured, A answers its negotiation.
		m.wantTCP(m.topo.S, m.addrA, matrixEchoPort, 10*time.Second)
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 5*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 {
			t.Errorf("want only ESP for TCP, got %+v%s", w, m.logs())
		}
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "secured")
	})

	t.Run("RequestSecurityBothSides_TCPSecuredICMPClear", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: request}, policyHost{Policy: request})
		m.startCapture()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 10*time.Second)
		if m.pings(m.topo.I, m.addrB, 3) != 3 {
			t.Error("pings lost: ICMP is permitted")
		}
		w := m.wire()
		// Not one clear TCP segment: the first SYN waits for the SA
		// instead of leaving in clear.
		if w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 || w.icmp == 0 {
			t.Errorf("want TCP only as ESP and ICMP in clear, got %+v%s", w, m.logs())
		}
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "secured")
		m.wantFlows(m.a, "secured", 1)
		m.wantPackets(m.a, "secured")
		m.wantPackets(m.a, "clear_permit")
		m.wantReleased(m.a)
	})

	t.Run("RequestSecurityToNoIPsec_ClearAfterTheFallbackDelay", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: request}, policyHost{})
		m.startCapture()
		start := time.Now()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 15*time.Second)
		if took := time.Since(start); took < 3*time.Second {
			t.Errorf("TCP went through after %s, before the 3s fallback delay", took)
		}
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 5*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] == 0 || w.esp != 0 {
			t.Errorf("want clear TCP and no ESP, got %+v", w)
		}
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "clear-fallback")
		m.wantFlows(m.a, "clear_fallback", 1)
		m.wantPackets(m.a, "clear_fallback")
	})

	t.Run("RequireSecurityToNoIPsec_TCPFailsICMPPasses", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: require}, policyHost{})
		m.startCapture()
		m.wantNoTCP(m.topo.I, m.addrB, matrixEchoPort, 6*time.Second)
		// B's connection arrives in clear and is accepted, but A answers
		// only through IPsec, which B does not speak.
		m.wantNoTCP(m.topo.S, m.addrA, matrixEchoPort, 4*time.Second)
		if got := m.pings(m.topo.I, m.addrB, 3); got != 3 {
			t.Errorf("%d of 3 pings answered: ICMP is exempt", got)
		}
		w := m.wire()
		if w.icmp == 0 || w.esp != 0 {
			t.Errorf("want clear ICMP and no ESP, got %+v", w)
		}
		// Only B's SYNs are on the wire: A never sent a clear segment.
		if w.clearTCP[matrixEchoPort] == 0 {
			t.Errorf("B's SYNs are missing from the capture: %+v", w)
		}
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "not-secured")
		m.wantPackets(m.a, "clear_accepted")
	})

	t.Run("RequireSecurityBothSidesNoCommonAuthMethod_FailsAsAuthenticationMismatch", func(t *testing.T) {
		cm, _ := newCertMaterial(t, certSetup{ikedKey: "p256", charonKey: "p256"})
		certAuth := "  site-cert: {method: cert, cert: cert.pem, key: key.pem, ca: [root.pem], intermediates: [inter.pem]}\n"
		m := newMatrix(t, policyHost{Policy: require}, policyHost{Policy: require, Auth: certAuth, Files: cm.ikedFiles})
		m.startCapture()
		m.wantNoTCP(m.topo.I, m.addrB, matrixEchoPort, 6*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 {
			t.Errorf("clear TCP left A: %+v", w)
		}
		wantLog(t, "A", m.a.Log(), "authentication mismatch")
		wantLog(t, "B", m.b.Log(), "authentication mismatch")
		m.wantFlows(m.a, "auth_mismatch", 1)
		m.wantFlows(m.b, "auth_mismatch", 1)
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "not-secured")
	})

	t.Run("RequestSecurityToAPeerThatAnswersButFails_NoFallbackToClear", func(t *testing.T) {
		cm, _ := newCertMaterial(t, certSetup{ikedKey: "p256", charonKey: "p256"})
		certAuth := "  site-cert: {method: cert, cert: cert.pem, key: key.pem, ca: [root.pem], intermediates: [inter.pem]}\n"
		m := newMatrix(t, policyHost{Policy: request}, policyHost{Policy: require, Auth: certAuth, Files: cm.ikedFiles})
		m.startCapture()
		m.wantNoTCP(m.topo.I, m.addrB, matrixEchoPort, 6*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 {
			t.Errorf("A fell back to clear with a peer that answers IKE: %+v%s", w, m.logs())
		}
		m.wantFlows(m.a, "auth_mismatch", 1)
	})

	t.Run("NegotiateWithoutAcceptUnsecured_InboundClearTrafficIsDropped", func(t *testing.T) {
		strict := `policies:
  strict:
    rules: [{filter_list: all-ip, action: negotiate, accept_unsecured: false}]
`
		m := newMatrix(t, policyHost{Policy: "strict", Extra: strict}, policyHost{})
		m.wantNoTCP(m.topo.S, m.addrA, matrixEchoPort, 3*time.Second)
		m.wantPackets(m.a, "refused")
		if got := m.pings(m.topo.S, m.addrA, 2); got != 0 {
			t.Errorf("%d clear pings answered: ICMP is not exempt in this policy", got)
		}
	})

	t.Run("CustomPolicyBlockTelnetPermitRest_Port23DroppedRestPasses", func(t *testing.T) {
		custom := `filter_lists:
  telnet:
    filters:
      - {source: me, destination: any, protocol: tcp, destination_port: 23}
      - {source: any, destination: me, protocol: tcp, destination_port: 23}
policies:
  no-telnet:
    rules:
      - {filter_list: telnet, action: block}
      - {filter_list: all-ip, action: permit}
`
		m := newMatrix(t, policyHost{Policy: "no-telnet", Extra: custom}, policyHost{Policy: respondOnly})
		m.startCapture()
		m.wantNoTCP(m.topo.I, m.addrB, telnetPort, 3*time.Second)
		m.wantNoTCP(m.topo.S, m.addrA, telnetPort, 3*time.Second)
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 5*time.Second)
		m.wantTCP(m.topo.S, m.addrA, matrixEchoPort, 5*time.Second)
		if got := m.pings(m.topo.I, m.addrB, 3); got != 3 {
			t.Errorf("%d of 3 pings answered", got)
		}
		w := m.wire()
		if w.clearTCP[matrixEchoPort] == 0 || w.esp != 0 {
			t.Errorf("want clear TCP on %d and no ESP, got %+v", matrixEchoPort, w)
		}
		m.wantVerdict(m.a, m.addrB, telnetPort, "blocked")
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "clear-permit")
		m.wantPackets(m.a, "blocked")
	})
}

// reassign rewrites d's policy section and sends SIGHUP.
func (m *matrix) reassign(d *iked, addr netip.Addr, h policyHost) {
	m.t.Helper()
	cfg := ikedConfig(d.socket, d.keyLog, ikedOptions{
		Listen:  []string{addr.String() + ":500", addr.String() + ":4500"},
		Backend: "userspace", Metrics: true, Userspace: &ikedUserspace{TUN: "iked0"},
		RetransmitTimeout: time.Second, RetransmitTries: 2, Extra: h.yaml(),
	})
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		m.t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		m.t.Fatal(err)
	}
}

func (m *matrix) sasOf(d *iked) []string {
	m.t.Helper()
	sas, err := d.SAs()
	if err != nil {
		m.t.Fatal(err)
	}
	var ids []string
	for _, sa := range sas {
		ids = append(ids, sa.ID)
	}
	return ids
}

func TestPolicyReload(t *testing.T) {
	requireRoot(t)
	m := newMatrix(t, policyHost{Policy: request}, policyHost{Policy: request})
	m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 10*time.Second)
	before := m.sasOf(m.a)
	if len(before) != 1 {
		t.Fatalf("SAs before the reload: %v", before)
	}

	t.Run("ToAPolicyThatStillAllowsTheSA_KeepsItAndTrafficStaysSecured", func(t *testing.T) {
		m.reassign(m.a, m.addrA, policyHost{Policy: respondOnly})
		waitFor(t, 10*time.Second, func() string {
			if !strings.Contains(m.a.Log(), `"previous":"server-request-security"`) {
				return "no reload logged yet"
			}
			return ""
		})
		if after := m.sasOf(m.a); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Fatalf("SAs %v became %v", before, after)
		}
		m.startCapture()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 5*time.Second)
		if w := m.wire(); w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 {
			t.Errorf("after the reload: want only ESP, got %+v", w)
		}
	})

	t.Run("ToAPolicyThatBlocksThePeer_DeletesTheSAOnBothSides", func(t *testing.T) {
		block := fmt.Sprintf(`filter_lists:
  b:
    filters: [{source: me, destination: %s}]
policies:
  block-b:
    rules: [{filter_list: b, action: block}]
`, m.addrB)
		m.reassign(m.a, m.addrA, policyHost{Policy: "block-b", Extra: block})
		waitFor(t, 10*time.Second, func() string {
			if n := len(m.sasOf(m.a)) + len(m.sasOf(m.b)); n != 0 {
				return fmt.Sprintf("%d SAs left", n)
			}
			return ""
		})
		m.wantNoTCP(m.topo.I, m.addrB, matrixEchoPort, 3*time.Second)
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "blocked")
	})

	t.Run("ToABrokenFile_RefusedWithItsLineAndThePolicyStays", func(t *testing.T) {
		m.reassign(m.a, m.addrA, policyHost{Policy: "no-such-policy"})
		waitFor(t, 10*time.Second, func() string {
			if !strings.Contains(m.a.Log(), "configuration refused; the running one stays") {
				return "no refusal logged"
			}
			return ""
		})
		line := wantLog(t, "A", m.a.Log(), "configuration refused", `policy.assign: no policy named \"no-such-policy\"`)
		if !strings.Contains(line, "iked.yaml:") {
			t.Errorf("the refusal does not give file:line: %s", line)
		}
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "blocked")
	})
}

// TestPolicyKerberos: two hosts with secure-server-require-security,
// authenticated by Kerberos only, the MIT KDC of the realm in B's
// namespace. Everything between the hosts must be secured, yet the
// initiator must reach the KDC before any SA exists: the KDC (named by the
// methods' kdcs) is exempt, so its exchange crosses in clear and the TCP
// connection then runs through a Kerberos-authenticated SA.
func TestPolicyKerberos(t *testing.T) {
	requireRoot(t)
	kdctest.Require(t)
	topo := newTopology(t)
	kdcAddr := net.JoinHostPort(topo.CharonAddr.String(), krbKDCPort)
	kdc := kdctest.StartWith(t, krbRealm, kdctest.Options{Listen: kdcAddr, Wrap: []string{"ip", "netns", "exec", topo.S.name}})
	ktA := kdc.AddHost("host/"+krbHostI, filepath.Join(kdc.Dir, "a.keytab"))
	ktB := kdc.AddHost("host/"+krbHostS, filepath.Join(kdc.Dir, "b.keytab"))
	authA := "  corp: " + kerberosAuth(kdcAddr, ktA, "host/"+krbHostI, "host/"+krbHostS, []string{"@" + krbRealm}) + "\n"
	authB := "  corp: " + kerberosAuth(kdcAddr, ktB, "host/"+krbHostS, "host/"+krbHostI, []string{"@" + krbRealm}) + "\n"
	m := newMatrixOn(t, topo, policyHost{Policy: require, Auth: authA}, policyHost{Policy: require, Auth: authB})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("KDC log:\n%s", kdc.Log())
		}
	})
	m.startCapture()
	m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 15*time.Second)
	w := m.wire()
	if w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 {
		t.Errorf("want the TCP connection only as ESP, got %+v", w)
	}
	if w.clearTCP[88] == 0 {
		t.Errorf("no clear Kerberos exchange with the KDC on the wire: %+v", w)
	}
	sas, err := m.a.SAs()
	if err != nil || len(sas) != 1 || sas[0].Auth != "kerberos" {
		t.Fatalf("A's SAs: %+v %v", sas, err)
	}
	m.wantVerdict(m.a, m.addrB, matrixEchoPort, "secured")
	if st := m.peerVerdict(m.a, m.addrB, 88); st != "exempt" {
		t.Errorf("ikectl peers says %q for the KDC's port, want exempt", st)
	}
}

// TestPolicyTunnelRule: a rule with a tunnel endpoint on each side (the
// hosts' inner addresses, 10.1.0.1 and 10.2.0.1, reached through the
// other host): TCP between the inner addresses is negotiated as a
// tunnel-mode SA between the outer ones, both sides answering only their
// tunnel endpoint, and nothing of it crosses in clear.
func TestPolicyTunnelRule(t *testing.T) {
	requireRoot(t)
	topo := newTopology(t)
	for _, r := range [][]string{
		{"-n", topo.I.name, "route", "add", charonInnerNet, "dev", "veth-i", "src", ikedInnerHost},
		{"-n", topo.S.name, "route", "add", ikedInnerNet, "dev", "veth-s", "src", charonInnerHost},
	} {
		if err := ipCmd(r...); err != nil {
			t.Fatal(err)
		}
	}
	site := func(src, dst string, tunnel netip.Addr) string {
		return fmt.Sprintf(`filter_lists:
  far-side:
    filters: [{source: %s, destination: %s}]
policies:
  site:
    rules: [{filter_list: far-side, action: negotiate, tunnel: %s}]
`, src, dst, tunnel)
	}
	m := newMatrixOn(t, topo,
		policyHost{Policy: "site", Extra: site(ikedInnerHost, charonInnerHost, topo.CharonAddr)},
		policyHost{Policy: "site", Extra: site(charonInnerHost, ikedInnerHost, topo.IkedAddr)})
	m.startCapture()
	m.wantTCP(m.topo.I, netip.MustParseAddr(charonInnerHost), matrixEchoPort, 10*time.Second)
	m.capture.Stop()
	frames, err := readPcap(m.capture.path)
	if err != nil {
		t.Fatal(err)
	}
	inner := map[netip.Addr]bool{netip.MustParseAddr(ikedInnerHost): true, netip.MustParseAddr(charonInnerHost): true}
	var clear, esp int
	for _, f := range frames {
		if inner[f.src] || inner[f.dst] {
			clear++
		}
		if _, _, ok := f.esp(); ok && f.src == m.addrA || ok && f.src == m.addrB {
			esp++
		}
	}
	if clear != 0 || esp == 0 {
		t.Errorf("inner traffic: %d clear frames, %d ESP frames; want only ESP%s", clear, esp, m.logs())
	}
	sas, err := m.a.SAs()
	if err != nil || len(sas) != 1 || len(sas[0].Children) != 1 {
		t.Fatalf("A's SAs: %+v %v", sas, err)
	}
	c := sas[0].Children[0]
	if c.Mode != "tunnel" || strings.Join(c.LocalTS, ",") != ikedInnerHost+"/32" || strings.Join(c.RemoteTS, ",") != charonInnerHost+"/32" {
		t.Errorf("Child SA %s %v === %v, want tunnel %s/32 === %s/32", c.Mode, c.LocalTS, c.RemoteTS, ikedInnerHost, charonInnerHost)
	}
}
