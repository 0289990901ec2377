package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/iked/iked/ike"
)

// needRoot skips (outside CI) or fails (in CI) a test that needs root.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs root: %s", why)
	}
	t.Skipf("needs root: %s", why)
}

// asUser runs a copy of ikectl under dir as uid (group gid, further groups
// groups) and returns its exit code, stdout and stderr. The credentials
// are switched by the kernel between fork and exec
// (syscall.SysProcAttr.Credential): no account is needed.
func asUser(t *testing.T, ikectl string, uid, gid uint32, groups []uint32, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(ikectl, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ikectl %s as uid %d: %v", strings.Join(args, " "), uid, err)
	}
	return code, out.String(), errb.String()
}

// openPath makes the directories above a daemon's control socket
// traversable by other users (t.TempDir makes them 0700), as /run/iked is.
func openPath(t *testing.T, socket string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(socket), filepath.Dir(filepath.Dir(socket))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestControlSocketAsUnprivilegedUser runs ikectl as users that are not
// root against daemons run as root: with control_socket_group, a member
// of the group lists SAs and status but may not initiate, terminate or
// rekey; a user outside the group cannot connect; without the option the
// socket is 0600 root's and nobody else gets in.
func TestControlSocketAsUnprivilegedUser(t *testing.T) {
	needRoot(t, "to run the daemon as root and ikectl as other users")
	// Numeric IDs without accounts; unlikely to collide with real ones.
	base := uint32(47000 + os.Getpid()%1000*2)
	monitor, stranger, group := base, base+1, base

	// ikectl where the other users can execute it.
	bin := t.TempDir()
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ikectl := filepath.Join(bin, "ikectl")
	copyFile(t, filepath.Join(binDir, "ikectl"), ikectl, 0o755)

	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(freePort(t, "127.0.0.2")))
	da := startDaemon(t, "alice", a, peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example", ""))
	db := startDaemon(t, "bob", b, fmt.Sprintf("control_socket_group: \"%d\"\nvici_socket: CONTROL.vici\n", group)+
		peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""))
	openPath(t, da.socket)
	openPath(t, db.socket)

	// The sockets: alice's 0600 root:root, bob's 0660 root:group.
	for _, c := range []struct {
		d    *daemon
		mode os.FileMode
		gid  uint32
	}{{da, 0o600, uint32(os.Getegid())}, {db, 0o660, group}} {
		fi, err := os.Lstat(c.d.socket)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != c.mode || st.Uid != 0 || st.Gid != c.gid {
			t.Fatalf("%s's socket: mode %04o owner %d:%d, want %04o 0:%d", c.d.name, fi.Mode().Perm(), st.Uid, st.Gid, c.mode, c.gid)
		}
	}

	// The VICI socket (swanctl's way in) is the daemon's user's only,
	// whatever control_socket_group says.
	vici := db.socket + ".vici"
	if fi, err := os.Lstat(vici); err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("vici socket: %v %v", fi, err)
	}
	if swanctl, err := exec.LookPath("swanctl"); err == nil {
		cmd := exec.Command(swanctl, "--list-sas", "--uri", "unix://"+vici)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: monitor, Gid: monitor, Groups: []uint32{group}}}
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "ermission denied") {
			t.Fatalf("swanctl as the monitoring user: %v\n%s", err, out)
		}
		if out, err := exec.Command(swanctl, "--list-sas", "--uri", "unix://"+vici).CombinedOutput(); err != nil {
			t.Fatalf("swanctl as root: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("swanctl (strongswan-swanctl) is missing")
	}

	if _, err := da.ikectl("initiate", "peer"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bob to hold the SA", func() bool { return len(db.sas()) == 1 })
	id := db.sas()[0].ID

	// The member of the group reads.
	code, out, errOut := asUser(t, ikectl, monitor, monitor, []uint32{group}, "--socket", db.socket, "sas", "--json")
	var sas []ike.SAInfo
	if code != 0 || json.Unmarshal([]byte(out), &sas) != nil || len(sas) != 1 || sas[0].RemoteID != "fqdn:alice.example" {
		t.Fatalf("sas as the monitoring user: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := asUser(t, ikectl, monitor, monitor, []uint32{group}, "--socket", db.socket, "status"); code != 0 || !strings.Contains(out, "peer") {
		t.Fatalf("status as the monitoring user: exit %d\n%s%s", code, out, errOut)
	}
	// ... and changes nothing.
	for _, args := range [][]string{{"terminate", "peer"}, {"terminate", id}, {"initiate", "peer"}, {"rekey", id}} {
		code, out, errOut := asUser(t, ikectl, monitor, monitor, []uint32{group}, append([]string{"--socket", db.socket}, args...)...)
		if code != 1 || !strings.Contains(errOut, "changes state, which needs root or iked's own user") {
			t.Errorf("%s as the monitoring user: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	if got := db.sas(); len(got) != 1 || got[0].ID != id {
		t.Fatalf("bob's SA changed under refused requests: %+v", got)
	}
	if !strings.Contains(db.log.String(), "control request refused") {
		t.Error("refused requests are not logged")
	}

	// A user outside the group, and anyone but root on alice's socket,
	// cannot connect.
	for _, c := range []struct {
		socket string
		uid    uint32
		groups []uint32
	}{{db.socket, stranger, nil}, {da.socket, monitor, []uint32{group}}} {
		code, _, errOut := asUser(t, ikectl, c.uid, c.uid, c.groups, "--socket", c.socket, "sas")
		if code != 1 || !strings.Contains(errOut, "permission denied on control socket "+c.socket) {
			t.Errorf("uid %d on %s: exit %d, %s", c.uid, c.socket, code, errOut)
		}
	}

	// Root may do everything.
	if out, err := db.ikectl("terminate", "peer"); err != nil || !strings.Contains(out, "terminated 1 IKE SA") {
		t.Fatalf("terminate as root: %q %v", out, err)
	}
}

// copyFile copies src to dst with mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
