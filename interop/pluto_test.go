package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// libreswan 4.10's pluto as an IKEv1 peer. Its Debian package conflicts
// with strongSwan's, so it is never installed: `apt-get download` fetches
// it (with the runtime libraries and certutil strongSwan's machine lacks)
// and `dpkg -x` unpacks it into a cache directory, IKED_LIBRESWAN_PREFIX
// or the user cache directory's iked/libreswan-4.10. pluto execs the
// compiled-in /usr/libexec/ipsec/addconn at start: the unpacked tree is
// bind-mounted there, in pluto's private mount namespace only.

var plutoSetup struct {
	once   sync.Once
	prefix string
	err    error
}

// plutoDebs are the packages unpacked for pluto.
var plutoDebs = []string{"libreswan", "libldns3", "libevent-pthreads-2.1-7", "libnss3-tools"}

// requirePluto returns the prefix of the unpacked libreswan.
func requirePluto(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	plutoSetup.once.Do(func() {
		prefix := os.Getenv("IKED_LIBRESWAN_PREFIX")
		if prefix == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				plutoSetup.err = err
				return
			}
			prefix = filepath.Join(cache, "iked", "libreswan-4.10")
		}
		plutoSetup.prefix = prefix
		if _, err := os.Stat(filepath.Join(prefix, "usr/libexec/ipsec/pluto")); err == nil {
			return
		}
		dl, err := os.MkdirTemp("", "iked-libreswan-debs")
		if err != nil {
			plutoSetup.err = err
			return
		}
		defer os.RemoveAll(dl)
		cmd := exec.Command("apt-get", append([]string{"download"}, plutoDebs...)...)
		cmd.Dir = dl
		if out, err := cmd.CombinedOutput(); err != nil {
			plutoSetup.err = fmt.Errorf("apt-get download %s: %v\n%s", strings.Join(plutoDebs, " "), err, out)
			return
		}
		debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
		for _, d := range debs {
			if out, err := exec.Command("dpkg", "-x", d, prefix).CombinedOutput(); err != nil {
				plutoSetup.err = fmt.Errorf("dpkg -x %s: %v\n%s", d, err, out)
				return
			}
		}
	})
	if plutoSetup.err != nil {
		missing(t, "libreswan: %v", plutoSetup.err)
	}
	return plutoSetup.prefix
}

// plutoConn is libreswan's connection "interop"; left is pluto's side.
type plutoConn struct {
	Left, Right       string
	LeftID, RightID   string // libreswan syntax: an address, @fqdn, or a DN
	LeftSubnet        string // empty: the host
	RightSubnet       string
	Type              string // tunnel or transport
	AuthBy            string // secret or rsasig
	PSK               string
	IKE, ESP          string // e.g. aes256-sha2_256;modp2048
	LeftCert          string // NSS nickname with rsasig
	IKELifetime       string
	SALifetime        string
	DPDDelay, DPDWait string
}

// pluto is a running pluto in a namespace.
type pluto struct {
	t       *testing.T
	prefix  string
	dir     string
	logPath string
	ctl     string
	cmd     *exec.Cmd
	done    chan error
	exited  bool
}

func (p *pluto) lib() string { return filepath.Join(p.prefix, "usr/lib/x86_64-linux-gnu") }

// startPluto writes ipsec.conf and ipsec.secrets, makes an NSS database
// (with files, as "name.p12" PKCS#12 bundles or "name.crt" CA
// certificates, imported), and starts pluto in ns, waiting for its
// control socket.
func startPluto(t *testing.T, ns *netns, c plutoConn, files map[string][]byte) *pluto {
	t.Helper()
	prefix := requirePluto(t)
	dir := t.TempDir()
	p := &pluto{t: t, prefix: prefix, dir: dir, logPath: filepath.Join(dir, "pluto.log"), ctl: filepath.Join(dir, "run", "pluto.ctl"), done: make(chan error, 1)}
	for _, d := range []string{"nss", "ipsec.d", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	opt := func(k, v string) string {
		if v == "" {
			return ""
		}
		return fmt.Sprintf("\t%s=%s\n", k, v)
	}
	conf := fmt.Sprintf("config setup\n\tplutodebug=all\n\tlogfile=%s\n\tlogtime=yes\n\tuniqueids=no\n\tdnssec-enable=no\n\tikev1-policy=accept\n\n", p.logPath) +
		"conn interop\n\tikev2=no\n\tauto=add\n" +
		opt("left", c.Left) + opt("leftid", c.LeftID) + opt("leftsubnet", c.LeftSubnet) + opt("leftcert", c.LeftCert) +
		opt("right", c.Right) + opt("rightid", c.RightID) + opt("rightsubnet", c.RightSubnet) +
		opt("type", c.Type) + opt("authby", c.AuthBy) + opt("ike", c.IKE) + opt("esp", c.ESP) +
		opt("ikelifetime", c.IKELifetime) + opt("salifetime", c.SALifetime) + opt("dpddelay", c.DPDDelay) + opt("dpdtimeout", c.DPDWait)
	if c.AuthBy == "rsasig" {
		conf += "\trightrsasigkey=%cert\n\tleftrsasigkey=%cert\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "ipsec.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := ""
	if c.PSK != "" {
		secrets = fmt.Sprintf("%s %s : PSK %q\n", c.LeftID, c.RightID, c.PSK)
	}
	if err := os.WriteFile(filepath.Join(dir, "ipsec.secrets"), []byte(secrets), 0o600); err != nil {
		t.Fatal(err)
	}
	nss := "sql:" + filepath.Join(dir, "nss")
	p.tool(t, "usr/bin/certutil", "-N", "-d", nss, "--empty-password")
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(name) {
		case ".p12":
			p.tool(t, "usr/bin/pk12util", "-i", path, "-d", nss, "-W", "")
		case ".crt":
			p.tool(t, "usr/bin/certutil", "-A", "-d", nss, "-n", strings.TrimSuffix(name, ".crt"), "-t", "CT,,", "-i", path)
		}
	}
	f, err := os.Create(filepath.Join(dir, "pluto.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	script := fmt.Sprintf(`mkdir -p /usr/libexec/ipsec && mount --bind %[1]s/usr/libexec/ipsec /usr/libexec/ipsec && `+
		`exec %[1]s/usr/libexec/ipsec/pluto --nofork --config %[2]s/ipsec.conf --secretsfile %[2]s/ipsec.secrets `+
		`--nssdir %[2]s/nss --ipsecdir %[2]s/ipsec.d --rundir %[2]s/run --no-dnssec`, prefix, dir)
	p.cmd = ns.command(context.Background(), "sh", "-c", script)
	p.cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+p.lib())
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting pluto: %v", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(p.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(p.ctl); err == nil {
			break
		}
		select {
		case err := <-p.done:
			p.exited = true
			out, _ := os.ReadFile(filepath.Join(dir, "pluto.out"))
			t.Fatalf("pluto exited: %v\n%s\n%s", err, out, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pluto: no control socket after 15s\n%s", p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// pluto learns its interfaces and the connection from whack and
	// addconn, as `ipsec auto --add` does.
	if out, err := p.whack("--listen"); err != nil {
		t.Fatalf("whack --listen: %v\n%s", err, out)
	}
	add := ns.command(context.Background(), filepath.Join(prefix, "usr/libexec/ipsec/addconn"), "--ctlsocket", p.ctl,
		"--config", filepath.Join(dir, "ipsec.conf"), "interop")
	add.Env = append(os.Environ(), "LD_LIBRARY_PATH="+p.lib())
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("addconn: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, func() string {
		if out, err := p.whack("--status"); err != nil || !strings.Contains(out, `"interop"`) {
			return fmt.Sprintf("pluto has not loaded the connection: %v\n%s", err, out)
		}
		return ""
	})
	return p
}

func (p *pluto) tool(t *testing.T, rel string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(p.prefix, rel), args...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+p.lib())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(rel), strings.Join(args, " "), err, out)
	}
}

// whack runs libreswan's control client against this pluto.
func (p *pluto) whack(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.prefix, "usr/libexec/ipsec/whack"), append([]string{"--ctlsocket", p.ctl}, args...)...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+p.lib())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Log returns pluto's log.
func (p *pluto) Log() string { b, _ := os.ReadFile(p.logPath); return string(b) }

func (p *pluto) stop() {
	if !p.exited {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.exited = true
	}
	if p.t.Failed() || verbose() {
		out, _ := os.ReadFile(filepath.Join(p.dir, "pluto.out"))
		p.t.Logf("pluto log (%s):\n%s\nstdout/stderr:\n%s", p.logPath, tail(p.Log(), 60000), out)
	}
}
