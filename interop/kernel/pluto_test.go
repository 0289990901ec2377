package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// libreswanEnv passes the guest the directory where the host unpacked
// Debian's libreswan package (dpkg -x: it conflicts with strongSwan, so it
// is never installed), or libreswanErrEnv why it could not.
const (
	libreswanEnv    = "IKED_KERNEL_LIBRESWAN"
	libreswanErrEnv = "IKED_KERNEL_LIBRESWAN_ERR"
)

// setUpLibreswan copies the unpacked libreswan into the guest's root,
// where pluto and the ipsec script look for their programs (the guest's
// root is an overlay: nothing reaches the host). Guest only.
func setUpLibreswan(t testing.TB) {
	t.Helper()
	src := os.Getenv(libreswanEnv)
	if src == "" {
		missingPeer(t, "libreswan 4.10 could not be unpacked on the host: %s", os.Getenv(libreswanErrEnv))
	}
	if _, err := os.Stat("/usr/libexec/ipsec/pluto"); err == nil {
		return
	}
	for _, cp := range [][2]string{{"usr/libexec/ipsec", "/usr/libexec/"}, {"usr/sbin/ipsec", "/usr/sbin/ipsec"}, {"etc/ipsec.d", "/etc/"}} {
		if out, err := exec.Command("cp", "-a", filepath.Join(src, cp[0]), cp[1]).CombinedOutput(); err != nil {
			t.Fatalf("copying libreswan's %s: %v: %s", cp[0], err, out)
		}
	}
	out, _ := exec.Command("ldd", "/usr/libexec/ipsec/pluto").CombinedOutput()
	if strings.Contains(string(out), "not found") {
		missingPeer(t, "pluto's libraries are missing (install libreswan's dependencies, see scripts/test.sh): %s", strings.TrimSpace(string(out)))
	}
	if err := os.MkdirAll("/var/lib/ipsec/nss", 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ipsec", "initnss", "--nssdir", "/var/lib/ipsec/nss").CombinedOutput(); err != nil {
		t.Fatalf("ipsec initnss: %v: %s", err, out)
	}
}

// pluto is a running libreswan pluto in a namespace (one at a time: its
// control socket is /run/pluto/pluto.ctl).
type pluto struct {
	t       testing.TB
	cmd     *exec.Cmd
	done    chan error
	exited  bool
	logPath string
}

// plutoConn is libreswan's connection "k".
type plutoConn struct {
	Left, Right     string // addresses: left is pluto's side
	LeftID, RightID string // @fqdn
	LeftSubnet      string // empty: the host
	RightSubnet     string
	Type            string // tunnel or transport
}

func startPluto(t testing.TB, ns *netns, c plutoConn) *pluto {
	t.Helper()
	setUpLibreswan(t)
	dir := t.TempDir()
	pl := &pluto{t: t, done: make(chan error, 1), logPath: filepath.Join(dir, "pluto.log")}
	subnets := ""
	if c.LeftSubnet != "" {
		subnets = fmt.Sprintf("    leftsubnet=%s\n    rightsubnet=%s\n", c.LeftSubnet, c.RightSubnet)
	}
	conf := fmt.Sprintf(`config setup
    logfile=%s
    logappend=no
    plutodebug=none
    nssdir=/var/lib/ipsec/nss
conn k
    ikev2=yes
    authby=secret
    left=%s
    leftid=%s
    right=%s
    rightid=%s
%s    type=%s
    ike=aes256-sha2_256-dh31
    esp=aes_gcm256
    auto=add
`, pl.logPath, c.Left, c.LeftID, c.Right, c.RightID, subnets, c.Type)
	if err := os.WriteFile("/etc/ipsec.conf", []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/etc/ipsec.secrets", []byte(fmt.Sprintf("%s %s : PSK %q\n", c.LeftID, c.RightID, testPSK)), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll("/run/pluto", 0o755)
	out, err := os.Create(filepath.Join(dir, "pluto.out"))
	if err != nil {
		t.Fatal(err)
	}
	pl.cmd = ns.command(context.Background(), "/usr/libexec/ipsec/pluto", "--config", "/etc/ipsec.conf", "--nofork")
	pl.cmd.Stdout, pl.cmd.Stderr = out, out
	if err := pl.cmd.Start(); err != nil {
		t.Fatalf("starting pluto: %v", err)
	}
	go func() { pl.done <- pl.cmd.Wait(); out.Close() }()
	t.Cleanup(pl.stop)
	waitFor(t, 60*time.Second, "pluto's control socket", func() string {
		select {
		case err := <-pl.done:
			pl.exited = true
			b, _ := os.ReadFile(filepath.Join(dir, "pluto.out"))
			t.Fatalf("pluto exited: %v\n%s\n%s", err, b, pl.Log())
		default:
		}
		if _, err := os.Stat("/run/pluto/pluto.ctl"); err != nil {
			return err.Error()
		}
		return ""
	})
	for _, args := range [][]string{{"whack", "--listen"}, {"auto", "--add", "k"}} {
		if out, err := pl.ipsec(args...); err != nil {
			t.Fatalf("ipsec %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return pl
}

func (pl *pluto) ipsec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ipsec", args...).CombinedOutput()
	return string(out), err
}

func (pl *pluto) stop() {
	if !pl.exited {
		_ = pl.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-pl.done:
		case <-time.After(15 * time.Second):
			_ = pl.cmd.Process.Kill()
			<-pl.done
		}
		pl.exited = true
	}
	if pl.t.Failed() {
		pl.t.Logf("pluto log:\n%s", pl.Log())
	}
}

// Log returns pluto's log.
func (pl *pluto) Log() string {
	b, _ := os.ReadFile(pl.logPath)
	return string(b)
}

// testLibreswan: iked (xfrm) and libreswan 4.10's pluto, which installs
// its SAs through XFRM too, with Child SAs both ways: iked initiates a
// tunnel between subnets, pluto a transport-mode one; pings cross and
// both kernels count them on the SAs iked reports.
func testLibreswan(t *testing.T) {
	t.Run("iked-initiates-tunnel", func(t *testing.T) {
		p := newPair(t, false)
		startPluto(t, p.B, plutoConn{Left: p.BOut.String(), Right: p.AOut.String(), LeftID: "@b.kernel.test", RightID: "@a.kernel.test",
			LeftSubnet: p.BNet.String(), RightSubnet: p.ANet.String(), Type: "tunnel"})
		a := startIked(t, p.A, "A", ikedOptions{Listen: listenOn(p.AOut), Conns: []conn{{Name: "k", Local: p.AOut.String(), Remote: p.BOut.String(),
			LocalID: idA, RemoteID: idB, IKE: []string{"aes256-sha256-x25519"}, ESP: []string{"aes256gcm16"},
			LocalTS: []string{p.ANet.String()}, RemoteTS: []string{p.BNet.String()}}}})
		a.Initiate("k")
		a.established(1)
		pingBoth(t, p, p.AIn, p.BIn, 3)
		checkWithKernels(t, p, a, 6)
	})
	t.Run("pluto-initiates-transport", func(t *testing.T) {
		p := newPair(t, false)
		a := startIked(t, p.A, "A", ikedOptions{Listen: listenOn(p.AOut), Conns: []conn{{Name: "k", Local: p.AOut.String(), Remote: "%any",
			LocalID: idA, RemoteID: idB, IKE: []string{"aes256-sha256-x25519"}, ESP: []string{"aes256gcm16"}, Mode: "transport"}}})
		pl := startPluto(t, p.B, plutoConn{Left: p.BOut.String(), Right: p.AOut.String(), LeftID: "@b.kernel.test", RightID: "@a.kernel.test",
			Type: "transport"})
		if out, err := pl.ipsec("auto", "--up", "k"); err != nil {
			t.Fatalf("ipsec auto --up k: %v\n%s", err, out)
		}
		a.established(1)
		pingBoth(t, p, p.AOut, p.BOut, 3)
		checkWithKernels(t, p, a, 6)
		if out, _ := pl.ipsec("trafficstatus"); !strings.Contains(out, "inBytes=") {
			t.Errorf("ipsec trafficstatus: %s", out)
		} else {
			t.Logf("pluto: %s", strings.TrimSpace(out))
		}
	})
}

// checkWithKernels: the Child SA between iked (A) and a peer in B carried
// n packets each way, by iked's count and both kernels'.
func checkWithKernels(t *testing.T, p *pair, a *iked, n uint64) {
	t.Helper()
	ca := childOf(t, a)
	aOut, aIn := stateBySPI(t, p.A, ca.SPIOut), stateBySPI(t, p.A, ca.SPIIn)
	bIn, bOut := stateBySPI(t, p.B, ca.SPIOut), stateBySPI(t, p.B, ca.SPIIn)
	t.Logf("iked: %s\nkernel A: %v / %v\nkernel B: %v / %v", describe(a.SAs()), aOut, aIn, bOut, bIn)
	if aOut.Packets != n || bIn.Packets != n || bOut.Packets != n || aIn.Packets != n || ca.PacketsOut != n || ca.PacketsIn != n {
		t.Errorf("want %d packets each way in iked and both kernels", n)
	}
	if ca.BytesOut != aOut.Bytes || aOut.Bytes != bIn.Bytes || ca.BytesIn != aIn.Bytes || aIn.Bytes != bOut.Bytes {
		t.Errorf("octets differ: iked out %d in %d; kernel A out %d in %d; kernel B in %d out %d",
			ca.BytesOut, ca.BytesIn, aOut.Bytes, aIn.Bytes, bIn.Bytes, bOut.Bytes)
	}
}
