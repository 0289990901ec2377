package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iked/iked/control"
)

// startDaemonEnv is startDaemon with extra environment variables and,
// when stderr is not nil, the daemon's standard error going there instead
// of d.log.
func startDaemonEnv(t *testing.T, name string, addr netip.AddrPort, config string, env []string, stderr *os.File) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{t: t, name: name, socket: filepath.Join(dir, "iked.sock"), metrics: freeTCP(t), addr: addr, log: &syncBuffer{}, done: make(chan error, 1)}
	config = strings.NewReplacer("CONTROL", d.socket, "METRICS", d.metrics).Replace(config)
	path := filepath.Join(dir, "iked.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(filepath.Join(binDir, "iked"), "--config", path)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stderr = d.log
	if stderr != nil {
		d.cmd.Stderr = stderr
	}
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
	waitUntil(t, name+"'s control socket", func() bool {
		_, err := os.Stat(d.socket)
		return err == nil
	})
	return d
}

// configPath is the daemon's configuration file.
func (d *daemon) configPath() string { return d.cmd.Args[len(d.cmd.Args)-1] }

// ikectlExit runs ikectl and returns stdout, stderr and the exit code.
func (d *daemon) ikectlExit(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "ikectl"), append(args, "--socket", d.socket)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	d.t.Fatal(err)
	return "", "", -1
}

// TestIkectlReload: `ikectl reload` waits for the daemon's answer. A
// broken file: exit 1, every error as file:line, and the old
// configuration serving on (the SA stays, the connection still
// negotiates). A good one: exit 0 and a summary of what changed — a
// connection added and one removed, the SA of the unchanged connection
// kept, the log level applied, an ike setting named as needing a
// restart; then a changed connection's SA terminated, and why.
func TestIkectlReload(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.6"), uint16(freePort(t, "127.0.0.6")))
	other := "  other:\n    remote: 127.0.0.9\n    auth: {method: psk, secret: \"another connection's key\"}\n"
	da := startDaemon(t, "alice", a, peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example", "")+other)
	db := startDaemon(t, "bob", b, strings.Replace(peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""),
		"esp_proposals: [aes256gcm16]", "esp_proposals: [aes256gcm16, aes128gcm16]", 1))
	if _, err := da.ikectl("initiate", "peer"); err != nil {
		t.Fatal(err)
	}
	before := da.sas()
	path := da.configPath()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// Two errors: both reported with their lines, nothing changes.
	bad := strings.Replace(string(good), "    local_id:", "    local_idd:", 1)
	bad = regexp.MustCompile(`retransmit_tries: \d+`).ReplaceAllString(bad, "retransmit_tries: many")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := da.ikectlExit("reload")
	if code != 1 || out != "" {
		t.Fatalf("refused reload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, want := range []string{"reload refused; the running configuration stays", path + ":6: ike.retransmit_tries: expected an integer",
		path + ":11: unknown key \"local_idd\""} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("refusal does not say %q:\n%s", want, errOut)
		}
	}
	if after := da.sas(); len(after) != 1 || after[0].SPIi != before[0].SPIi || after[0].State != "established" {
		t.Fatalf("SAs changed after a refused reload: %+v", after)
	}
	// The old configuration serves: the connection negotiates again.
	if _, err := da.ikectl("terminate", "peer"); err != nil {
		t.Fatal(err)
	}
	if _, err := da.ikectl("initiate", "peer"); err != nil {
		t.Fatalf("the old configuration no longer negotiates: %v", err)
	}
	before = da.sas()

	// A good file: "other" removed, "spare" added, "peer" unchanged (a
	// comment and a new position do not change it), log level info, an
	// ike setting that needs a restart.
	next := strings.Replace(string(good), other, "", 1)
	next = strings.Replace(next, "level: debug", "level: info", 1)
	next = strings.Replace(next, "retransmit_timeout: 300ms", "retransmit_timeout: 400ms", 1)
	next = strings.Replace(next, "connections:\n", "connections:\n  spare:  # added\n    remote: 127.0.0.10\n    auth: {method: psk, secret: \"a spare connection key\"}\n", 1)
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = da.ikectlExit("reload")
	if code != 0 {
		t.Fatalf("reload: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"reloaded " + path,
		"connections: 1 added, 0 changed, 0 updated, 1 removed, 1 unchanged",
		"added:     spare", "removed:   other",
		"IKE SAs: 1 kept, 0 terminated",
		"kept " + before[0].ID + " (peer): connection unchanged",
		"applied: log.level: debug -> info",
		"needs a restart (the running value stays): ike.retransmit_timeout: 300ms -> 400ms",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("reload summary does not say %q:\n%s", want, out)
		}
	}
	if after := da.sas(); len(after) != 1 || after[0].SPIi != before[0].SPIi {
		t.Fatalf("reload dropped the SA: %+v", after)
	}
	st, err := da.ikectl("status")
	if err != nil || !strings.Contains(st, "spare:") || strings.Contains(st, "other:") {
		t.Fatalf("status after reload: %v\n%s", err, st)
	}
	// The level applies: debug lines stop.
	mark := len(da.log.String())
	if _, err := da.ikectl("sas"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(da.log.String()[mark:], `"level":"DEBUG"`) {
		t.Fatalf("debug lines after log.level: info:\n%s", da.log.String()[mark:])
	}

	// Changing the connection's proposals ends its SA, saying why; with
	// start_action initiate it comes up again with the new ones.
	changed := strings.Replace(next, "esp_proposals: [aes256gcm16]", "esp_proposals: [aes128gcm16]\n    start_action: initiate", 1)
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = da.ikectlExit("reload", "--json")
	if code != 0 {
		t.Fatalf("reload: exit %d: %s", code, errOut)
	}
	var res control.ReloadResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("reload --json: %v\n%s", err, out)
	}
	if len(res.Changed) != 1 || res.Changed[0] != "peer" || len(res.Terminated) != 1 || res.Terminated[0].ID != before[0].ID ||
		!strings.Contains(res.Terminated[0].Reason, "connection changed") || len(res.Kept) != 0 {
		t.Fatalf("reload answer: %+v", res)
	}
	waitUntil(t, "the connection up again with the new proposal", func() bool {
		sas := da.sas()
		return len(sas) == 1 && sas[0].ID != before[0].ID && sas[0].State == "established" && len(sas[0].Children) == 1 &&
			sas[0].Children[0].Algorithms == "AES_GCM_16-128/NO_EXT_SEQ"
	})
	waitUntil(t, "bob to hold only the new SA", func() bool {
		sas := db.sas()
		return len(sas) == 1 && sas[0].SPIi == da.sas()[0].SPIi
	})
	// SIGHUP logs the same summary.
	_ = da.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "SIGHUP's reload", func() bool {
		return strings.Count(da.log.String(), `"msg":"configuration reloaded"`) == 3
	})
	da.stop()
	db.stop()
}

// notifyListener is systemd's end of the notify protocol: a unixgram
// socket collecting the daemon's datagrams.
type notifyListener struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
	more chan struct{}
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	n := &notifyListener{path: filepath.Join(t.TempDir(), "notify.sock"), more: make(chan struct{}, 1)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n.conn = c
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
			select {
			case n.more <- struct{}{}:
			default:
			}
		}
	}()
	return n
}

// all returns the datagrams received so far.
func (n *notifyListener) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// assignments counts the datagrams carrying the assignment kv.
func count(msgs []string, kv string) int {
	k := 0
	for _, m := range msgs {
		for _, line := range strings.Split(m, "\n") {
			if line == kv {
				k++
			}
		}
	}
	return k
}

// TestNotifySocket: iked under a real notify socket, as systemd runs a
// Type=notify service with WatchdogSec=: READY=1 once it serves (the
// control socket answers and the IKE port is bound), WATCHDOG=1 again and
// again, RELOADING=1 then READY=1 around `ikectl reload` and around
// SIGHUP, STOPPING=1 at SIGTERM, and nothing before READY=1.
func TestNotifySocket(t *testing.T) {
	n := listenNotify(t)
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.7"), 500)
	cfg := peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example", "")
	d := startDaemonEnv(t, "notified", a, cfg, []string{"NOTIFY_SOCKET=" + n.path, "WATCHDOG_USEC=400000"}, nil)
	waitUntil(t, "READY=1", func() bool { return count(n.all(), "READY=1") == 1 })
	first := n.all()[0]
	if !strings.Contains(first, "READY=1") || !strings.Contains(first, "STATUS=1 connections, 0 IKE SAs, 0 Child SAs") {
		t.Fatalf("first notification %q, want READY=1 with a STATUS", first)
	}
	// Ready means serving: the control socket answers, the port is taken.
	if _, err := d.ikectl("status"); err != nil {
		t.Fatal(err)
	}
	if c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a)); err == nil {
		c.Close()
		t.Fatalf("READY=1 sent before %s was bound", a)
	}
	// The watchdog is kicked every 200ms while the engine answers.
	waitUntil(t, "three WATCHDOG=1", func() bool { return count(n.all(), "WATCHDOG=1") >= 3 })

	reloads := func(want int) {
		t.Helper()
		waitUntil(t, "RELOADING=1 then READY=1", func() bool {
			msgs := n.all()
			return count(msgs, "RELOADING=1") == want && count(msgs, "READY=1") == want+1
		})
		msgs := n.all()
		last := -1
		for i, m := range msgs {
			if strings.Contains(m, "RELOADING=1") {
				last = i
				if !strings.Contains(m, "MONOTONIC_USEC=") {
					t.Fatalf("RELOADING=1 without MONOTONIC_USEC: %q", m)
				}
			}
		}
		readyAfter := false
		for _, m := range msgs[last+1:] {
			readyAfter = readyAfter || strings.Contains(m, "READY=1")
		}
		if !readyAfter {
			t.Fatalf("no READY=1 after the last RELOADING=1: %q", msgs)
		}
	}
	if out, errOut, code := d.ikectlExit("reload"); code != 0 {
		t.Fatalf("reload: %d %s %s", code, out, errOut)
	}
	reloads(1)
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	reloads(2)
	// A refused reload still ends with READY=1: the old configuration serves.
	if err := os.WriteFile(d.configPath(), []byte("listen: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, code := d.ikectlExit("reload"); code != 1 {
		t.Fatalf("broken reload: exit %d", code)
	}
	reloads(3)

	if n := count(n.all(), "STOPPING=1"); n != 0 {
		t.Fatalf("STOPPING=1 before SIGTERM")
	}
	d.stop()
	msgs := n.all()
	if count(msgs, "STOPPING=1") != 1 {
		t.Fatalf("no STOPPING=1 after SIGTERM: %q", msgs)
	}
	for _, m := range msgs[len(msgs)-1:] {
		if strings.Contains(m, "READY=1") {
			t.Fatalf("READY=1 after STOPPING=1: %q", msgs)
		}
	}
}

// TestJournalPriorities: with stderr a journal stream (JOURNAL_STREAM
// naming its device and inode, as systemd sets it) every line starts with
// its syslog priority, JSON stays JSON after it; format journal does the
// same on any stderr; format text on a plain stderr is unchanged.
func TestJournalPriorities(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		stream       bool
		line         *regexp.Regexp // the "iked started" line
	}{
		{"json under the journal", "json", true, regexp.MustCompile(`^<6>\{"time":.*"msg":"iked started"`)},
		{"text under the journal", "text", true, regexp.MustCompile(`^<6>level=INFO msg="iked started"`)},
		{"format journal", "journal", false, regexp.MustCompile(`^<6>level=INFO msg="iked started"`)},
		{"text", "text", false, regexp.MustCompile(`^time=\S+ level=INFO msg="iked started"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			var env []string
			if tc.stream {
				var st syscall.Stat_t
				if err := syscall.Fstat(int(w.Fd()), &st); err != nil {
					t.Fatal(err)
				}
				env = append(env, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
			}
			var out syncBuffer
			copied := make(chan struct{})
			go func() { _, _ = out.ReadFrom(r); close(copied) }()
			a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
			cfg := strings.Replace(peerConfig(a, netip.MustParseAddrPort("127.0.0.8:500"), "fqdn:a.example", "fqdn:b.example", ""),
				"log: {format: json, level: debug}", "log: {format: "+tc.format+", level: info}", 1)
			d := startDaemonEnv(t, "journal", a, cfg, env, w)
			w.Close()
			// An error line: a refused reload.
			if err := os.WriteFile(d.configPath(), []byte("bogus: 1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, _ = d.ikectlExit("reload")
			d.stop()
			<-copied
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			started, refused := false, false
			for _, l := range lines {
				started = started || tc.line.MatchString(l)
				if strings.Contains(l, "configuration refused") {
					refused = true
					if want := tc.format != "text" || tc.stream; strings.HasPrefix(l, "<3>") != want {
						t.Fatalf("error line %q: priority prefix <3> expected %v", l, want)
					}
				}
				if (tc.stream || tc.format == "journal") && !regexp.MustCompile(`^<[3467]>`).MatchString(l) {
					t.Fatalf("line without a priority: %q", l)
				}
			}
			if !started || !refused {
				t.Fatalf("log lacks the start line (%v) or the refusal (%v):\n%s", started, refused, out.String())
			}
		})
	}
}

// ReadFrom lets a syncBuffer collect a pipe.
func (s *syncBuffer) ReadFrom(r *os.File) (int64, error) {
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			_, _ = s.Write(buf[:k])
			n += int64(k)
		}
		if err != nil {
			return n, nil
		}
	}
}

// TestVersion: --version prints the version, the commit and the Go
// version; a release build sets them with -ldflags -X, and ikectl and
// `ikectl status` say the same.
func TestVersion(t *testing.T) {
	dir := t.TempDir()
	ld := "-X github.com/iked/iked/internal/buildinfo.version=9.8.7 -X github.com/iked/iked/internal/buildinfo.commit=0123456789abcdef0123456789abcdef01234567"
	for _, cmd := range []string{"iked", "ikectl"} {
		if out, err := exec.Command("go", "build", "-ldflags", ld, "-o", filepath.Join(dir, cmd), "../cmd/"+cmd).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", cmd, err, out)
		}
		out, err := exec.Command(filepath.Join(dir, cmd), "--version").Output()
		want := regexp.MustCompile(`^` + cmd + ` 9\.8\.7 \(commit 0123456789ab, go1\.\d+(\.\d+)? linux/\w+\)\n$`)
		if err != nil || !want.Match(out) {
			t.Fatalf("%s --version: %v %q", cmd, err, out)
		}
	}
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	d := startDaemon(t, "version", a, peerConfig(a, netip.MustParseAddrPort("127.0.0.8:500"), "fqdn:a.example", "fqdn:b.example", ""))
	st, err := d.ikectl("status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s control.Status
	if err := json.Unmarshal([]byte(st), &s); err != nil || s.Version == "" || s.GoVersion == "" || s.Commit == "" {
		t.Fatalf("status lacks the build: %v %s", err, st)
	}
	if got := d.metric(fmt.Sprintf(`iked_build_info{commit=%q,goversion=%q,version=%q}`, s.Commit, s.GoVersion, s.Version)); got != 1 {
		t.Fatalf("iked_build_info for %+v = %v", s, got)
	}
	d.stop()
}

// waitFor is waitUntil with a longer bound, for scripts and retries.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
