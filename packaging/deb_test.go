// Package packaging holds what installs iked as a service (the systemd
// unit, the Debian package's nfpm configuration and maintainer scripts,
// completions, the man pages' generator) and the tests that install it.
package packaging

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// missing skips a test that needs something this machine lacks, or fails
// it under CI=true, where everything the suite needs is installed.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root (dpkg -i, network namespaces, setpriv)")
	}
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "%s is not installed", tool)
		}
	}
}

// run runs a command and returns its combined output, failing the test on
// error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestSystemdAnalyzeVerify: the unit, rendered with the paths `make
// install` gives it (binaries built here), passes systemd-analyze verify
// without a single warning.
func TestSystemdAnalyzeVerify(t *testing.T) {
	requireTools(t, "systemd-analyze")
	dir := t.TempDir()
	for _, cmd := range []string{"iked", "ikectl"} {
		run(t, "go", "build", "-o", filepath.Join(dir, cmd), "../cmd/"+cmd)
	}
	in, err := os.ReadFile("systemd/iked.service.in")
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.NewReplacer("@SBINDIR@", dir, "@BINDIR@", dir, "@SYSCONFDIR@", dir).Replace(string(in))
	path := filepath.Join(dir, "iked.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	// The man pages the unit names are installed by the package, not here.
	verify(t, path, "--man=no")
	for _, want := range []string{"Type=notify", "WatchdogSec=", "ExecReload=" + dir + "/ikectl --socket /run/iked/iked.sock reload",
		"User=iked", "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE\n", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE\n",
		"ProtectSystem=strict", "ProtectHome=yes", "NoNewPrivileges=yes", "RuntimeDirectory=iked", "StateDirectory=iked"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
}

// verify runs systemd-analyze verify on a unit file and fails on any
// output: systemd reports unknown keys and bad values as warnings with
// exit status 0.
func verify(t *testing.T, path string, opts ...string) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", append(append([]string{"verify"}, opts...), path)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
}

// TestDebianPackage builds the package with `make deb` in a fresh clone,
// installs it with dpkg, and checks what an administrator meets:
// iked --version names the version and commit, the installed example
// configuration passes --check-config, the installed unit verifies, the
// installed iked starts on it as the user iked with only CAP_NET_ADMIN
// and CAP_NET_BIND_SERVICE (READY=1 on a notify socket, ikectl answers),
// two such daemons bring up an SA on the userspace data plane that
// carries a ping, and the package purges without a trace.
func TestDebianPackage(t *testing.T) {
	requireRoot(t)
	requireTools(t, "dpkg", "make", "git", "ip", "setpriv", "ping", "systemd-analyze", "systemd-tmpfiles")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing(t, "/dev/net/tun: %v", err)
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "iked").Output(); err == nil && strings.Contains(string(out), "installed") {
		missing(t, "a package iked is installed on this machine already; the test would replace it")
	}
	deb, version, commit := buildDeb(t)

	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "iked").CombinedOutput(); err != nil {
			t.Logf("dpkg --purge iked: %v\n%s", err, out)
		}
	})
	run(t, "dpkg", "-i", deb)

	// What the package installed, and how.
	u, err := user.Lookup("iked")
	if err != nil {
		t.Fatalf("no system user iked after installation: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid >= 1000 || uid == 0 {
		t.Fatalf("user iked has uid %d, not a system uid", uid)
	}
	for path, want := range map[string]string{"/etc/iked": "drwxr-x--- 0:" + u.Gid, "/etc/iked/iked.yaml": "-rw-r----- 0:" + u.Gid,
		"/var/lib/iked": "drwxr-x--- " + u.Uid + ":" + u.Gid, "/usr/sbin/iked": "-rwxr-xr-x 0:0", "/usr/bin/ikectl": "-rwxr-xr-x 0:0",
		"/lib/systemd/system/iked.service": "-rw-r--r-- 0:0", "/usr/share/man/man8/iked.8.gz": "-rw-r--r-- 0:0",
		"/usr/share/man/man8/ikectl.8.gz": "-rw-r--r-- 0:0", "/usr/share/man/man5/iked.yaml.5.gz": "-rw-r--r-- 0:0",
		"/usr/share/bash-completion/completions/ikectl": "-rw-r--r-- 0:0", "/usr/share/zsh/vendor-completions/_ikectl": "-rw-r--r-- 0:0",
		"/usr/share/doc/iked/copyright": "-rw-r--r-- 0:0"} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("not installed: %v", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%s %d:%d", fi.Mode(), st.Uid, st.Gid); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	if out := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "iked"); !strings.Contains(out, "/etc/iked/iked.yaml") {
		t.Errorf("/etc/iked/iked.yaml is not a conffile: %q", out)
	}
	if out := run(t, "file", "-L", "/usr/sbin/iked", "/usr/bin/ikectl"); strings.Count(out, "statically linked") != 2 {
		t.Errorf("the binaries are not static:\n%s", out)
	}

	// iked --version: the version and the commit the package was made of.
	want := fmt.Sprintf("iked %s (commit %s", version, commit[:12])
	if out := run(t, "/usr/sbin/iked", "--version"); !strings.HasPrefix(out, want) {
		t.Fatalf("iked --version: %q, want %q…", out, want)
	}
	if out := run(t, "/usr/bin/ikectl", "--version"); !strings.HasPrefix(out, "ikectl "+version+" (commit "+commit[:12]) {
		t.Fatalf("ikectl --version: %q", out)
	}
	if out := run(t, "/usr/sbin/iked", "--check-config", "/etc/iked/iked.yaml"); strings.TrimSpace(out) != "/etc/iked/iked.yaml: OK (0 connections)" {
		t.Fatalf("check-config of the example: %q", out)
	}
	verify(t, "/lib/systemd/system/iked.service")
	if out := run(t, "man", "-w", "iked.yaml"); !strings.Contains(out, "/usr/share/man/man5/iked.yaml.5.gz") {
		t.Errorf("man -w iked.yaml: %q", out)
	}

	// The control socket's directory, as systemd-tmpfiles makes it at boot.
	run(t, "systemd-tmpfiles", "--create", "/usr/lib/tmpfiles.d/iked.conf")
	if fi, err := os.Stat("/run/iked"); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Fatalf("/run/iked after systemd-tmpfiles: %v", err)
	}

	t.Run("example config as user iked", func(t *testing.T) {
		ns := newNetns(t, "a")
		d := startAsIked(t, ns, "/etc/iked/iked.yaml", uid, gid)
		out := run(t, "/usr/bin/ikectl", "status")
		if !strings.Contains(out, "no connections configured") || !strings.Contains(out, "(commit "+commit[:12]) {
			t.Fatalf("ikectl status:\n%s", out)
		}
		d.stop(t)
	})

	t.Run("userspace SA and ping as user iked", func(t *testing.T) {
		a, b := newNetns(t, "a"), newNetns(t, "b")
		n := os.Getpid()%200 + 20
		aAddr, bAddr := fmt.Sprintf("10.97.%d.1", n), fmt.Sprintf("10.97.%d.2", n)
		run(t, "ip", "-n", a.name, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", b.name)
		run(t, "ip", "-n", a.name, "addr", "add", aAddr+"/24", "dev", "veth-a")
		run(t, "ip", "-n", b.name, "addr", "add", bAddr+"/24", "dev", "veth-b")
		run(t, "ip", "-n", a.name, "link", "set", "veth-a", "up")
		run(t, "ip", "-n", b.name, "link", "set", "veth-b", "up")
		dir := sharedDir(t)
		conf := func(name, local, remote, localNet, remoteNet, inner string) string {
			path := filepath.Join(dir, name+".yaml")
			cfg := fmt.Sprintf(`listen: ["%[1]s:500", "%[1]s:4500"]
control_socket: /run/iked/test-%[6]s.sock
backend: userspace
userspace: {addresses: ["%[5]s/32"]}
connections:
  tunnel:
    local: %[1]s
    remote: %[2]s
    local_id: fqdn:%[6]s.example
    remote_id: "%[7]s"
    auth: {method: psk, secret: "the package test's pre-shared key"}
    local_ts: [%[3]s]
    remote_ts: [%[4]s]
`, local, remote, localNet, remoteNet, inner, name, "%any")
			if err := os.WriteFile(path, []byte(cfg), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, 0, gid); err != nil {
				t.Fatal(err)
			}
			return path
		}
		db := startAsIked(t, b, conf("b", bAddr, aAddr, "10.2.0.0/24", "10.1.0.0/24", "10.2.0.1"), uid, gid)
		da := startAsIked(t, a, conf("a", aAddr, bAddr, "10.1.0.0/24", "10.2.0.0/24", "10.1.0.1"), uid, gid)
		if out, err := exec.Command("/usr/bin/ikectl", "initiate", "tunnel", "--socket", "/run/iked/test-a.sock").CombinedOutput(); err != nil {
			t.Fatalf("initiate: %v\n%s\n--- a:\n%s\n--- b:\n%s", err, out, da.log.String(), db.log.String())
		}
		out, err := exec.Command("ip", "netns", "exec", a.name, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", "10.1.0.1", "10.2.0.1").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "3 received") {
			t.Fatalf("ping through the SA: %v\n%s\n--- a:\n%s\n--- b:\n%s", err, out, da.log.String(), db.log.String())
		}
		sas := run(t, "/usr/bin/ikectl", "--socket", "/run/iked/test-b.sock", "sas")
		if !regexp.MustCompile(`in 252 B/3 pkts\s+out 252 B/3 pkts`).MatchString(sas) {
			t.Fatalf("bob's Child SA did not count the three pings both ways:\n%s", sas)
		}
		da.stop(t)
		db.stop(t)
	})

	run(t, "dpkg", "--purge", "iked")
	for _, path := range []string{"/etc/iked", "/var/lib/iked", "/run/iked", "/usr/sbin/iked", "/usr/bin/ikectl",
		"/lib/systemd/system/iked.service", "/etc/systemd/system/multi-user.target.wants/iked.service", "/usr/lib/tmpfiles.d/iked.conf"} {
		if _, err := os.Lstat(path); err == nil {
			t.Errorf("%s is left after dpkg --purge", path)
		}
	}
}

// sharedDir is a temporary directory the user iked can enter (t.TempDir's
// parent is private to root).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "iked-pkg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The package, built once for the tests that install it.
var (
	debOnce                     sync.Once
	debPath, debVersion, debSHA string
	debErr                      error
)

// cloneDir holds the fresh clone buildDeb builds in; TestMain removes it.
var cloneDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if cloneDir != "" {
		os.RemoveAll(cloneDir)
	}
	os.Exit(code)
}

// buildDeb clones the repository (its committed HEAD, as CI and a user
// get it), runs `make deb` in the clone, and returns the package, its
// version and the commit it was built from.
func buildDeb(t *testing.T) (path, version, commit string) {
	t.Helper()
	debOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			debErr = err
			return
		}
		if cloneDir, err = os.MkdirTemp("", "iked-clone-"); err != nil {
			debErr = err
			return
		}
		clone := filepath.Join(cloneDir, "iked")
		if out, err := exec.Command("git", "clone", "--quiet", root, clone).CombinedOutput(); err != nil {
			debErr = fmt.Errorf("git clone: %v\n%s", err, out)
			return
		}
		start := time.Now()
		mk := exec.Command("make", "deb")
		mk.Dir = clone
		if out, err := mk.CombinedOutput(); err != nil {
			debErr = fmt.Errorf("make deb: %v\n%s", err, out)
			return
		}
		t.Logf("make deb in a fresh clone took %v", time.Since(start).Round(time.Second))
		debVersion = strings.TrimSpace(runIn(t, clone, "./packaging/version.sh"))
		debSHA = strings.TrimSpace(runIn(t, clone, "git", "rev-parse", "HEAD"))
		debs, _ := filepath.Glob(filepath.Join(clone, "build", "*.deb"))
		if len(debs) != 1 || filepath.Base(debs[0]) != "iked_"+debVersion+"_"+runtime.GOARCH+".deb" {
			debErr = fmt.Errorf("make deb made %v, want one iked_%s_%s.deb", debs, debVersion, runtime.GOARCH)
			return
		}
		debPath = debs[0]
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debPath, debVersion, debSHA
}

func runIn(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out)
}

// netns is a network namespace made for one test.
type netns struct{ name string }

func newNetns(t *testing.T, tag string) *netns {
	t.Helper()
	ns := &netns{name: fmt.Sprintf("iked-pkg-%s-%d", tag, os.Getpid())}
	run(t, "ip", "netns", "add", ns.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.name).Run() })
	run(t, "ip", "-n", ns.name, "link", "set", "lo", "up")
	return ns
}

// ikedProc is an installed iked running as the user iked.
type ikedProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

// startAsIked starts the installed iked in ns as the user iked with only
// the capabilities iked.service grants (setpriv sets what systemd's
// User=, AmbientCapabilities=, CapabilityBoundingSet= and
// NoNewPrivileges= set), under a notify socket, and waits for READY=1. It
// checks the process's credentials.
func startAsIked(t *testing.T, ns *netns, config string, uid, gid int) *ikedProc {
	t.Helper()
	sock := filepath.Join(sharedDir(t), "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	caps := "-all,+net_admin,+net_bind_service"
	d := &ikedProc{log: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command("ip", "netns", "exec", ns.name, "setpriv", "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--init-groups",
		"--inh-caps", caps, "--ambient-caps", caps, "--bounding-set", caps, "--no-new-privs",
		"/usr/sbin/iked", "--config", config)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
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
			t.Logf("iked (%s) log:\n%s", config, d.log.String())
		}
	})
	ready := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				return
			}
			if m := string(buf[:n]); strings.Contains(m, "READY=1") {
				ready <- m
				return
			}
		}
	}()
	select {
	case <-ready:
	case err := <-d.done:
		t.Fatalf("iked exited before READY=1: %v\n%s", err, d.log.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("no READY=1 after 20s\n%s", d.log.String())
	}
	// ip netns exec execs setpriv, which execs iked: the same process.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	const want = "0000000000001400" // CAP_NET_ADMIN (12) and CAP_NET_BIND_SERVICE (10)
	for _, line := range []string{fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", uid, uid, uid, uid), "CapEff:\t" + want, "CapPrm:\t" + want,
		"CapBnd:\t" + want, "CapAmb:\t" + want, "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), line+"\n") {
			t.Fatalf("iked's credentials lack %q:\n%s", line, status)
		}
	}
	return d
}

// stop sends SIGTERM and wants exit status 0.
func (d *ikedProc) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("iked exited with %v\n%s", err, d.log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("iked did not exit after SIGTERM\n%s", d.log.String())
	}
}

// syncBuffer collects a process's output while the test reads it.
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

// TestMakeInstall: `make install` with PREFIX and DESTDIR puts the
// binaries, the unit (with the paths of that prefix), the example
// configuration, the man pages and the completions in place, and never
// replaces an existing configuration.
func TestMakeInstall(t *testing.T) {
	requireTools(t, "make", "git")
	dest := t.TempDir()
	mk := exec.Command("make", "install", "PREFIX=/opt/iked", "DESTDIR="+dest)
	mk.Dir = ".."
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"opt/iked/sbin/iked", "opt/iked/bin/ikectl", "opt/iked/lib/systemd/system/iked.service", "opt/iked/etc/iked/iked.yaml",
		"opt/iked/share/man/man8/iked.8", "opt/iked/share/man/man8/ikectl.8", "opt/iked/share/man/man5/iked.yaml.5",
		"opt/iked/share/bash-completion/completions/ikectl", "opt/iked/share/zsh/vendor-completions/_ikectl"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "opt/iked/lib/systemd/system/iked.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/opt/iked/sbin/iked --config /opt/iked/etc/iked/iked.yaml") ||
		!strings.Contains(string(unit), "ExecReload=/opt/iked/bin/ikectl") {
		t.Fatalf("the unit's paths are not the prefix's:\n%s", unit)
	}
	out, err := exec.Command(filepath.Join(dest, "opt/iked/sbin/iked"), "--check-config", filepath.Join(dest, "opt/iked/etc/iked/iked.yaml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK (0 connections)") {
		t.Fatalf("the installed example: %v %s", err, out)
	}
	conf := filepath.Join(dest, "opt/iked/etc/iked/iked.yaml")
	if err := os.WriteFile(conf, []byte("connections:\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	again := exec.Command("make", "install", "PREFIX=/opt/iked", "DESTDIR="+dest)
	again.Dir = ".."
	if out, err := again.CombinedOutput(); err != nil {
		t.Fatalf("make install again: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(conf); string(b) != "connections:\n" {
		t.Fatal("make install replaced an existing configuration")
	}
}
