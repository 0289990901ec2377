package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// container is systemd booted as the service manager of a throwaway
// container (testdata/boot-systemd.sh): new PID, mount, network, UTS, IPC
// and cgroup namespaces, an overlay of the host's root, the package
// installed in it.
type container struct {
	t       *testing.T
	cmd     *exec.Cmd
	log     *syncBuffer
	pid     int // the container's systemd, as the host sees it
	base    string
	cgroup  string
	stopped bool
}

// unifiedCgroup is where the host mounts the cgroup v2 hierarchy.
func unifiedCgroup() string {
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st syscall.Statfs_t
		if syscall.Statfs(p, &st) == nil && st.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
			return p
		}
	}
	return ""
}

// bootContainer boots systemd with the package in it; dropIns are written
// to /etc/systemd/system/iked.service.d in the container first.
func bootContainer(t *testing.T, deb string, dropIns map[string]string) *container {
	t.Helper()
	cg := unifiedCgroup()
	if cg == "" {
		missing(t, "no cgroup v2 hierarchy mounted: systemd cannot run as a service manager here")
	}
	base, err := os.MkdirTemp("/var/tmp", "iked-systemd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &container{t: t, log: &syncBuffer{}, base: base, cgroup: filepath.Join(cg, filepath.Base(base))}
	t.Cleanup(c.destroy)
	dir := filepath.Join(base, "upper", "etc", "systemd", "system", "iked.service.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range dropIns {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script, err := filepath.Abs("testdata/boot-systemd.sh")
	if err != nil {
		t.Fatal(err)
	}
	// A cgroup of the test's own, which becomes the container's root.
	c.cmd = exec.Command("sh", "-c", `mkdir "$1" && echo $$ > "$1/cgroup.procs" && shift && exec "$@"`, "sh", c.cgroup,
		"unshare", "--pid", "--mount", "--net", "--uts", "--ipc", "--cgroup", "--fork", "--kill-child=SIGKILL", "--propagation", "private",
		script, base, deb)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute) // a hang guard: booting is quick
	for {
		// The container's PID 1 is unshare's child: read it only once the
		// shell has become unshare (before that its child is mkdir, gone
		// a moment later), and forget a process that went.
		if c.pid != 0 {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.pid)); err != nil {
				c.pid = 0
			}
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.cmd.Process.Pid)); c.pid == 0 && strings.TrimSpace(string(comm)) == "unshare" {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", c.cmd.Process.Pid, c.cmd.Process.Pid)); err == nil {
				if f := strings.Fields(string(b)); len(f) > 0 {
					c.pid, _ = strconv.Atoi(f[0])
				}
			}
		}
		if c.pid != 0 {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.pid)); strings.TrimSpace(string(comm)) == "systemd" {
				// Booted as far as the test needs: iked.service has
				// started (or failed, which the test then shows).
				if out, _ := c.exec("systemctl", "show", "--value", "-p", "ActiveState", "iked.service"); strings.TrimSpace(out) == "active" ||
					strings.TrimSpace(out) == "failed" {
					return c
				}
			}
		}
		if time.Now().After(deadline) {
			state, _ := c.exec("systemctl", "is-system-running")
			jobs, _ := c.exec("systemctl", "list-jobs", "--no-pager")
			t.Fatalf("iked.service did not start in 3 minutes (system %s)\njobs:\n%s\n%s", state, jobs, c.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exec runs a command in the container and returns its output.
func (c *container) exec(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.pid), "-a"}, args...)...).CombinedOutput()
	return string(out), err
}

// must runs a command in the container and fails the test on error.
func (c *container) must(args ...string) string {
	c.t.Helper()
	out, err := c.exec(args...)
	if err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// show returns a property of iked.service.
func (c *container) show(prop string) string {
	c.t.Helper()
	return strings.TrimSpace(c.must("systemctl", "show", "--value", "-p", prop, "iked.service"))
}

// destroy kills the container (its systemd, and with it everything in
// its PID namespace) and removes what it left.
func (c *container) destroy() {
	if c.cmd != nil && c.cmd.Process != nil && !c.stopped {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		_ = c.cmd.Wait()
		c.stopped = true
	}
	if c.t.Failed() {
		c.t.Logf("container console:\n%s", c.log.String())
	}
	// The container's cgroups, deepest first, once their processes are gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dirs []string
		_ = filepath.WalkDir(c.cgroup, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
		if _, err := os.Stat(c.cgroup); err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = os.RemoveAll(c.base)
}

// tunnelToPeer configures the container's iked with a connection to an
// iked in a namespace of the host, linked by a veth, restarts the unit,
// and pings through the SA the start action brings up.
func (c *container) tunnelToPeer() {
	t := c.t
	t.Helper()
	bin := t.TempDir()
	run(t, "go", "build", "-o", filepath.Join(bin, "iked"), "../cmd/iked")
	run(t, "go", "build", "-o", filepath.Join(bin, "ikectl"), "../cmd/ikectl")
	peer := newNetns(t, "sdpeer")
	n := os.Getpid()%200 + 20
	mine, theirs := fmt.Sprintf("10.96.%d.1", n), fmt.Sprintf("10.96.%d.2", n)
	run(t, "ip", "link", "add", "iked-sd-c", "netns", strconv.Itoa(c.pid), "type", "veth", "peer", "name", "iked-sd-p", "netns", peer.name)
	c.must("ip", "addr", "add", mine+"/24", "dev", "iked-sd-c")
	c.must("ip", "link", "set", "iked-sd-c", "up")
	run(t, "ip", "-n", peer.name, "addr", "add", theirs+"/24", "dev", "iked-sd-p")
	run(t, "ip", "-n", peer.name, "link", "set", "iked-sd-p", "up")

	conf := func(local, remote, inner, localNet, remoteNet, me, them, sock, start string) string {
		return fmt.Sprintf(`listen: ["%[1]s:500", "%[1]s:4500"]
control_socket: %[8]s
backend: userspace
userspace: {addresses: ["%[3]s/32"]}
connections:
  peer:
    local: %[1]s
    remote: %[2]s
    local_id: fqdn:%[6]s.example
    remote_id: fqdn:%[7]s.example
    auth: {method: psk, file: peer.psk}
    local_ts: [%[4]s]
    remote_ts: [%[5]s]
    start_action: %[9]s
`, local, remote, inner, localNet, remoteNet, me, them, sock, start)
	}
	const psk = "the systemd test's pre-shared key"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "peer.psk"), []byte(psk), 0o600); err != nil {
		t.Fatal(err)
	}
	peerConf := filepath.Join(dir, "iked.yaml")
	if err := os.WriteFile(peerConf, []byte(conf(theirs, mine, "10.2.0.1", "10.2.0.0/24", "10.1.0.0/24", "peer", "container",
		filepath.Join(dir, "iked.sock"), "none")), 0o600); err != nil {
		t.Fatal(err)
	}
	p := exec.Command("ip", "netns", "exec", peer.name, filepath.Join(bin, "iked"), "--config", peerConf)
	plog := &syncBuffer{}
	p.Stdout, p.Stderr = plog, plog
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Process.Kill()
		_ = p.Wait()
		if t.Failed() {
			t.Logf("peer log:\n%s", plog.String())
		}
	})

	// The container's side, as an administrator writes it: the secret
	// readable by the group iked only.
	c.must("sh", "-c", `umask 027 && printf %s "$1" > /etc/iked/peer.psk && printf %s "$2" > /etc/iked/iked.yaml && chgrp iked /etc/iked/peer.psk`,
		"sh", psk, conf(mine, theirs, "10.1.0.1", "10.1.0.0/24", "10.2.0.0/24", "container", "peer", "/run/iked/iked.sock", "initiate"))
	c.must("systemctl", "restart", "iked")
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := c.exec("ikectl", "sas")
		if strings.Contains(out, "established") && strings.Contains(out, "esp tunnel") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SA with the peer after 60s:\n%s\n%s", out, c.must("journalctl", "-u", "iked", "--no-pager"))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if out, err := c.exec("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", "10.1.0.1", "10.2.0.1"); err != nil || !strings.Contains(out, "3 received") {
		t.Fatalf("ping through the SA: %v\n%s\n%s", err, out, c.must("journalctl", "-u", "iked", "--no-pager"))
	}
	if out := c.must("ikectl", "sas"); !regexp.MustCompile(`in 252 B/3 pkts\s+out 252 B/3 pkts`).MatchString(out) {
		t.Fatalf("the Child SA did not count the three pings both ways:\n%s", out)
	}
}

// TestUnitUnderSystemd runs iked.service for real: systemd 252 as the
// service manager of a container, the package installed in it. The unit
// starts (Type=notify: active once iked says READY=1, with its STATUS=),
// iked runs as the user iked with CAP_NET_ADMIN and CAP_NET_BIND_SERVICE
// only; `systemctl reload` succeeds with a good file and fails with a bad
// one, whose file:line error journalctl -p err shows (info lines filtered
// out: journald got the priorities) while the same process serves on; the
// watchdog (10 s in a drop-in, so that the test is short) keeps a healthy
// iked alive over two periods and restarts a hung one (SIGSTOP); stop
// ends it cleanly. In between, the hardened unit carries a ping through an
// SA on the userspace data plane with a peer outside the container.
func TestUnitUnderSystemd(t *testing.T) {
	requireRoot(t)
	requireTools(t, "make", "git", "unshare", "nsenter", "ip")
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		missing(t, "systemd is not installed (Debian package systemd)")
	}
	deb, version, _ := buildDeb(t)
	c := bootContainer(t, deb, map[string]string{"watchdog.conf": "[Service]\nWatchdogSec=10s\n"})

	if st := c.show("ActiveState"); st != "active" {
		t.Fatalf("iked.service is %s\n%s", st, c.must("journalctl", "-u", "iked", "--no-pager"))
	}
	if typ, wd := c.show("Type"), c.show("WatchdogUSec"); typ != "notify" || wd != "10s" {
		t.Fatalf("Type=%s WatchdogUSec=%s", typ, wd)
	}
	if st := c.show("StatusText"); st != "0 connections, 0 IKE SAs, 0 Child SAs" {
		t.Fatalf("StatusText %q", st)
	}
	pid := c.show("MainPID")
	status := c.must("cat", "/proc/"+pid+"/status")
	uid := strings.TrimSpace(c.must("id", "-u", "iked"))
	for _, want := range []string{"Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid, "CapEff:\t0000000000001400", "CapBnd:\t0000000000001400",
		"CapAmb:\t0000000000001400", "NoNewPrivs:\t1"} {
		if !strings.Contains(status, want+"\n") {
			t.Fatalf("iked's credentials lack %q:\n%s", want, status)
		}
	}
	if out := c.must("ikectl", "status"); !strings.Contains(out, "iked "+version) {
		t.Fatalf("ikectl status:\n%s", out)
	}

	// Reload: good, then bad.
	c.must("systemctl", "reload", "iked")
	if out := c.must("journalctl", "-u", "iked", "-o", "cat", "--no-pager"); !strings.Contains(out, "IKE SAs: 0 kept, 0 terminated") ||
		!strings.Contains(out, `msg="configuration reloaded"`) {
		t.Fatalf("the reload's summary is not in the journal:\n%s", out)
	}
	c.must("sed", "-i", "s/^  level: info/  level: verbose/", "/etc/iked/iked.yaml")
	if out, err := c.exec("systemctl", "reload", "iked"); err == nil {
		t.Fatalf("systemctl reload succeeded with a broken configuration:\n%s", out)
	}
	errs := c.must("journalctl", "-u", "iked", "-p", "err", "-o", "cat", "--no-pager")
	if !strings.Contains(errs, `/etc/iked/iked.yaml:23: log.level: unknown value \"verbose\"`) || strings.Contains(errs, "iked started") {
		t.Fatalf("journalctl -p err:\n%s", errs)
	}
	if st, now := c.show("ActiveState"), c.show("MainPID"); st != "active" || now != pid {
		t.Fatalf("after a refused reload: %s, MainPID %s (was %s)", st, now, pid)
	}
	c.must("sed", "-i", "s/^  level: verbose/  level: info/", "/etc/iked/iked.yaml")

	// The watchdog: kicked while iked answers (two periods and more)...
	time.Sleep(22 * time.Second)
	if n, now := c.show("NRestarts"), c.show("MainPID"); n != "0" || now != pid {
		t.Fatalf("a healthy iked was restarted: NRestarts=%s MainPID %s (was %s)\n%s", n, now, pid, c.must("journalctl", "-u", "iked", "--no-pager"))
	}
	// ...and a hung one is killed and started again.
	c.must("kill", "-STOP", pid)
	deadline := time.Now().Add(90 * time.Second)
	for c.show("NRestarts") != "1" || c.show("ActiveState") != "active" {
		if time.Now().After(deadline) {
			t.Fatalf("the hung iked was not restarted\n%s", c.must("journalctl", "-u", "iked", "--no-pager"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if now := c.show("MainPID"); now == pid {
		t.Fatalf("restarted, yet the same MainPID %s", pid)
	}
	if out := c.must("journalctl", "-u", "iked", "-o", "cat", "--no-pager"); !strings.Contains(out, "Watchdog timeout") {
		t.Fatalf("the journal does not say the watchdog fired:\n%s", out)
	}

	// The hardened unit carries traffic: an SA with a peer outside the
	// container on the userspace data plane (TUN under DevicePolicy=closed,
	// the system call filter, two capabilities) and a ping through it.
	c.tunnelToPeer()

	c.must("systemctl", "stop", "iked")
	if st, res := c.show("ActiveState"), c.show("Result"); st != "inactive" || res != "success" {
		t.Fatalf("after stop: %s, result %s\n%s", st, res, c.must("journalctl", "-u", "iked", "--no-pager"))
	}
}
