// Package e2e runs the built iked and ikectl binaries as a user would: real
// processes, real UDP sockets on loopback, the control socket and the
// metrics endpoint.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "iked-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, cmd := range []string{"iked", "ikectl"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "../cmd/"+cmd).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", cmd, err, out)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a UDP port free on addr at the time of the call.
func freePort(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.ListenPacket("udp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemon is a running iked process.
type daemon struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	socket  string
	metrics string
	addr    netip.AddrPort
	log     *syncBuffer
	done    chan error
}

// startDaemon writes config (with CONTROL and METRICS placeholders filled)
// and starts iked on it, waiting for its control socket.
func startDaemon(t *testing.T, name string, addr netip.AddrPort, config string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{t: t, name: name, socket: filepath.Join(dir, "iked.sock"), metrics: freeTCP(t), addr: addr, log: &syncBuffer{}, done: make(chan error, 1)}
	config = strings.NewReplacer("CONTROL", d.socket, "METRICS", d.metrics).Replace(config)
	path := filepath.Join(dir, "iked.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(filepath.Join(binDir, "iked"), "--config", path)
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, d.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(d.socket); err == nil {
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("%s exited: %v\n%s", name, err, d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no control socket after 60s\n%s", name, d.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ikectl runs ikectl against the daemon and returns its stdout.
func (d *daemon) ikectl(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "ikectl"), append([]string{"--socket", d.socket}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ikectl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (d *daemon) sas() []ike.SAInfo {
	d.t.Helper()
	out, err := d.ikectl("sas", "--json")
	if err != nil {
		d.t.Fatal(err)
	}
	var sas []ike.SAInfo
	if err := json.Unmarshal([]byte(out), &sas); err != nil {
		d.t.Fatalf("ikectl sas --json: %v\n%s", err, out)
	}
	return sas
}

// metric returns the value of one series from /metrics, e.g.
// `iked_packets_dropped_total{reason="malformed"}`: the sum of the series
// of that name whose labels include the given ones (whatever further
// labels, such as version, they carry); 0 when absent.
func (d *daemon) metric(series string) float64 {
	d.t.Helper()
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	name, labels, _ := strings.Cut(series, "{")
	var want []string
	if labels = strings.TrimSuffix(labels, "}"); labels != "" {
		want = strings.Split(labels, ",")
	}
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		n, ls, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		have := strings.Split(strings.TrimSuffix(ls, "}"), ",")
		match := true
		for _, w := range want {
			match = match && slices.Contains(have, w)
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			d.t.Fatal(err)
		}
		sum += f
	}
	return sum
}

// stop sends SIGTERM and waits for exit status 0.
func (d *daemon) stop() {
	d.t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			d.t.Fatalf("%s exited with %v\n%s", d.name, err, d.log.String())
		}
	case <-time.After(60 * time.Second): // a hang guard: Deletes to a gone peer take their retransmissions
		d.t.Fatalf("%s did not exit after SIGTERM", d.name)
	}
}

// waitUntil polls cond until it holds; the deadline is a hang guard, long
// enough for a loaded machine, never the thing asserted.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const pskSecret = "e2e test pre-shared key"

func peerConfig(local, remote netip.AddrPort, localID, remoteID, extra string) string {
	return fmt.Sprintf(`listen: ["%s"]
control_socket: CONTROL
backend: memory
metrics_listen: METRICS
log: {format: json, level: debug}
ike: {retransmit_timeout: 300ms, retransmit_tries: 5}
connections:
  peer:
    local: %s
    remote: %s
    local_id: %s
    remote_id: %s
    auth: {method: psk, secret: %q}
    ike_proposals: [aes256gcm16-prfsha256-x25519]
    esp_proposals: [aes256gcm16]
%s`, local, local.Addr(), remote, localID, remoteID, pskSecret, extra)
}

// TestTwoDaemons: two iked processes negotiate over loopback; both report
// the same SAs through ikectl; terminate and shutdown remove everything.
func TestTwoDaemons(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(freePort(t, "127.0.0.2")))
	ts := "    local_ts: [LOCAL]\n    remote_ts: [REMOTE]\n"
	da := startDaemon(t, "alice", a, peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example",
		strings.NewReplacer("LOCAL", "10.1.0.0/24", "REMOTE", "10.2.0.0/24").Replace(ts)))
	db := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example",
		strings.NewReplacer("LOCAL", "10.2.0.0/24", "REMOTE", "10.1.0.0/24").Replace(ts)))

	if out, err := da.ikectl("initiate", "--new", "peer"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "established") {
		t.Fatalf("initiate output: %s", out)
	}
	sa, sb := da.sas(), db.sas()
	if len(sa) != 1 || len(sb) != 1 {
		t.Fatalf("alice has %d IKE SAs, bob %d", len(sa), len(sb))
	}
	x, y := sa[0], sb[0]
	if x.State != "established" || y.State != "established" || x.Role != "initiator" || y.Role != "responder" {
		t.Fatalf("states/roles: %s/%s %s/%s", x.State, x.Role, y.State, y.Role)
	}
	if x.SPIi != y.SPIi || x.SPIr != y.SPIr || x.SPIi == "" || x.SPIr == strings.Repeat("0", 16) {
		t.Fatalf("IKE SPIs differ: %s_%s vs %s_%s", x.SPIi, x.SPIr, y.SPIi, y.SPIr)
	}
	// Initiating a connection that is up shows its SA instead of making a
	// second one (from either side, as swanctl --initiate).
	for _, c := range []struct {
		d  *daemon
		id string
	}{{da, x.ID}, {db, y.ID}} {
		d := c.d
		out, err := d.ikectl("initiate", "peer")
		if err != nil || !strings.Contains(out, c.id+"  peer  established") {
			t.Fatalf("%s: initiate on the established connection: %v\n%s", d.name, err, out)
		}
	}
	if len(da.sas()) != 1 || len(db.sas()) != 1 {
		t.Fatalf("a second initiate made another IKE SA: alice %d, bob %d", len(da.sas()), len(db.sas()))
	}
	if x.Algorithms != "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519" || y.Algorithms != x.Algorithms {
		t.Fatalf("IKE algorithms %q vs %q", x.Algorithms, y.Algorithms)
	}
	if x.LocalID != "fqdn:alice.example" || x.RemoteID != "fqdn:bob.example" || y.RemoteID != "fqdn:alice.example" || x.Auth != "psk" {
		t.Fatalf("identities: %+v / %+v", x, y)
	}
	if len(x.Children) != 1 || len(y.Children) != 1 {
		t.Fatalf("Child SAs: %d / %d", len(x.Children), len(y.Children))
	}
	cx, cy := x.Children[0], y.Children[0]
	if cx.SPIIn != cy.SPIOut || cx.SPIOut != cy.SPIIn || cx.Algorithms != "AES_GCM_16-256/NO_EXT_SEQ" || cy.Algorithms != cx.Algorithms {
		t.Fatalf("Child SAs do not pair: %+v / %+v", cx, cy)
	}
	if strings.Join(cx.LocalTS, ",") != "10.1.0.0/24" || strings.Join(cy.LocalTS, ",") != "10.2.0.0/24" || cx.Mode != "tunnel" || cx.Protocol != "esp" {
		t.Fatalf("Child SA selectors/mode: %+v / %+v", cx, cy)
	}
	if got := da.metric(`iked_handshakes_completed_total{role="initiator"}`); got != 1 {
		t.Fatalf("alice completed handshakes metric = %v", got)
	}
	if got := db.metric(`iked_child_sas`); got != 1 {
		t.Fatalf("bob child SAs metric = %v", got)
	}

	// Terminate by connection name: both sides remove every SA.
	if out, err := da.ikectl("terminate", "peer"); err != nil || !strings.Contains(out, "1") {
		t.Fatalf("terminate: %q %v", out, err)
	}
	if n := len(da.sas()); n != 0 {
		t.Fatalf("alice kept %d SAs", n)
	}
	waitUntil(t, "bob to remove the SA", func() bool { return len(db.sas()) == 0 })
	if got := db.metric(`iked_child_sas`); got != 0 {
		t.Fatalf("bob still counts %v Child SAs", got)
	}

	// SIGTERM on a daemon with an SA sends a Delete: the peer removes it too.
	if _, err := db.ikectl("initiate", "--new", "peer"); err != nil {
		t.Fatal(err)
	}
	if len(da.sas()) != 1 {
		t.Fatal("alice did not get the SA bob initiated")
	}
	db.stop()
	waitUntil(t, "alice to remove the SA after bob's shutdown", func() bool { return len(da.sas()) == 0 })
	if !strings.Contains(db.log.String(), `"reason":"shutdown"`) {
		t.Fatalf("bob's log does not record the shutdown delete:\n%s", db.log.String())
	}
	da.stop()
}

// TestIkectlWithoutDaemon: one clear line, exit status 1.
func TestIkectlWithoutDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	var errb bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "ikectl"), "--socket", sock, "sas")
	cmd.Stderr = &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v", err)
	}
	msg := strings.TrimSpace(errb.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "not running") {
		t.Fatalf("stderr %q", msg)
	}
}

// TestCheckConfig: a bad file is refused with file:line.
func TestCheckConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("listen: [\"127.0.0.1:500\"]\nconnections:\n  x:\n    remote: 127.0.0.2\n    remote_adress: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "iked"), "--check-config", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), path+":5:") {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
}
