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

	"github.com/iked/iked/internal/vmtest"
)

// racoon (ipsec-tools 0.9.1, built from ../shared/vendor/racoon) runs in
// the guest with the kernel's own PF_KEY (af_key): no stand-in. iked's
// IKEv1 is tested against it by the IKEv1 work; here the guest proves that
// racoon itself gets acquires from and installs SAs into a real kernel.
const (
	racoonEnv    = "IKED_KERNEL_RACOON"
	racoonErrEnv = "IKED_KERNEL_RACOON_ERR"
)

// racoonBuilt reports whether prefix holds a racoon build.
func racoonBuilt(prefix string) bool {
	for _, f := range []string{"sbin/racoon", "sbin/setkey", "bin/racoonctl"} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			return false
		}
	}
	return true
}

// prepareRacoon finds a racoon build, or builds one (≈ 70 s) into the VM
// cache with the vendor's recipe: IKED_RACOON_PREFIX; else the build the
// IKEv1 interop tests keep (the user cache directory's
// iked/racoon-0.9.1); else the VM cache's own. The sources are found
// through IKED_VENDOR_DIR, default ../shared/vendor beside the repository.
// Host only.
func prepareRacoon(t *testing.T) (string, error) {
	if p := os.Getenv("IKED_RACOON_PREFIX"); p != "" {
		if racoonBuilt(p) {
			return p, nil
		}
		return "", fmt.Errorf("IKED_RACOON_PREFIX=%s holds no racoon build", p)
	}
	if uc, err := os.UserCacheDir(); err == nil {
		if p := filepath.Join(uc, "iked", "racoon-0.9.1"); racoonBuilt(p) {
			return p, nil
		}
	}
	cache, err := vmtest.CacheDir()
	if err != nil {
		return "", err
	}
	unlock, err := vmtest.Lock(cache)
	if err != nil {
		return "", err
	}
	defer unlock()
	prefix := filepath.Join(cache, "racoon-0.9.1")
	if racoonBuilt(prefix) {
		return prefix, nil
	}
	vendor := os.Getenv("IKED_VENDOR_DIR")
	if vendor == "" {
		vendor, _ = filepath.Abs("../../../shared/vendor")
	}
	script := filepath.Join(vendor, "racoon", "build.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("racoon's sources not found (%v); set IKED_VENDOR_DIR", err)
	}
	work, err := os.MkdirTemp("", "iked-vmtest-racoon-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "WORK="+work, "PREFIX="+prefix)
	if out, err := cmd.CombinedOutput(); err != nil || !racoonBuilt(prefix) {
		return "", fmt.Errorf("building racoon: %v: %s", err, strings.TrimSpace(string(out[max(0, len(out)-2000):])))
	}
	return prefix, nil
}

// racoon is a running racoon in a namespace.
type racoon struct {
	t       testing.TB
	prefix  string
	dir     string
	cmd     *exec.Cmd
	done    chan error
	exited  bool
	logPath string
}

// startRacoon sets the transport-mode policies between local and peer
// with setkey (through PF_KEY) and starts racoon with a PSK for peer.
func startRacoon(t testing.TB, ns *netns, local, peer string) *racoon {
	t.Helper()
	prefix := os.Getenv(racoonEnv)
	if prefix == "" {
		missingPeer(t, "racoon: %s", os.Getenv(racoonErrEnv))
	}
	dir := t.TempDir()
	r := &racoon{t: t, prefix: prefix, dir: dir, done: make(chan error, 1), logPath: filepath.Join(dir, "racoon.log")}
	conf := fmt.Sprintf(`path pre_shared_key "%[1]s/psk.txt";
path pidfile "%[1]s/racoon.pid";
listen { isakmp %[2]s [500]; adminsock "%[1]s/racoon.sock" "root" "root" 0600; }
timer { counter 3; interval 2 sec; persend 1; phase1 60 sec; phase2 60 sec; }
remote %[3]s {
	exchange_mode main;
	my_identifier address;
	proposal_check obey;
	nat_traversal off;
	proposal { encryption_algorithm aes 256; hash_algorithm sha256; authentication_method pre_shared_key; dh_group 14; }
}
sainfo anonymous {
	lifetime time 1 hour;
	encryption_algorithm aes 128;
	authentication_algorithm hmac_sha256;
	compression_algorithm deflate;
}
`, dir, local, peer)
	spd := fmt.Sprintf("flush;\nspdflush;\nspdadd %[1]s %[2]s any -P out ipsec esp/transport//require;\nspdadd %[2]s %[1]s any -P in ipsec esp/transport//require;\n", local, peer)
	for name, data := range map[string]string{"racoon.conf": conf, "psk.txt": peer + " " + testPSK + "\n", "setkey.conf": spd} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := r.command(ns, "sbin/setkey", "-f", filepath.Join(dir, "setkey.conf")).CombinedOutput(); err != nil {
		t.Fatalf("setkey -f: %v\n%s", err, out)
	}
	out, err := os.Create(filepath.Join(dir, "racoon.out"))
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = r.command(ns, "sbin/racoon", "-F", "-d", "-f", filepath.Join(dir, "racoon.conf"), "-l", r.logPath)
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting racoon: %v", err)
	}
	go func() { r.done <- r.cmd.Wait(); out.Close() }()
	t.Cleanup(r.stop)
	waitFor(t, 60*time.Second, "racoon's admin socket", func() string {
		select {
		case err := <-r.done:
			r.exited = true
			b, _ := os.ReadFile(filepath.Join(dir, "racoon.out"))
			t.Fatalf("racoon exited: %v\n%s\n%s", err, b, r.Log())
		default:
		}
		if _, err := os.Stat(filepath.Join(dir, "racoon.sock")); err != nil {
			return err.Error()
		}
		return ""
	})
	return r
}

// command runs one of racoon's programs in ns; its library comes from the
// prefix as the guest sees it (the build's run path may be a host path
// the guest does not show there, such as one under /tmp).
func (r *racoon) command(ns *netns, prog string, args ...string) *exec.Cmd {
	cmd := ns.command(context.Background(), append([]string{filepath.Join(r.prefix, prog)}, args...)...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(r.prefix, "lib"))
	return cmd
}

func (r *racoon) stop() {
	if !r.exited {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		r.exited = true
	}
	if r.t.Failed() {
		r.t.Logf("racoon log:\n%s", r.Log())
	}
}

// Log returns racoon's log.
func (r *racoon) Log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

// testRacoonPFKey: racoon ⇄ racoon (IKEv1, PSK, Main Mode and Quick
// Mode) with the kernel's PF_KEY: setkey's policies make the first ping
// raise SADB_ACQUIRE, racoon negotiates and adds the SAs through PF_KEY,
// and the pings that follow travel in ESP, counted by the kernel (XFRM
// shows the SAs PF_KEY added).
func testRacoonPFKey(t *testing.T) {
	if _, err := os.Stat("/proc/net/pfkey"); err != nil {
		t.Fatalf("no PF_KEY in the guest's kernel: %v", err)
	}
	p := newPair(t, false)
	startRacoon(t, p.B, p.BOut.String(), p.AOut.String())
	ra := startRacoon(t, p.A, p.AOut.String(), p.BOut.String())
	// The first echo requests meet a policy without an SA and are dropped
	// while racoon negotiates; ping until one is answered.
	waitFor(t, 90*time.Second, "a ping through racoon's SAs", func() string {
		if ping(t, p.A, p.AOut, p.BOut, 1) == 1 {
			return ""
		}
		return "no answer yet"
	})
	mustPing(t, p.A, p.AOut, p.BOut, 3)
	var out, in *xfrmState
	for _, s := range states(t, p.A) {
		switch {
		case s.Src == p.AOut.String() && s.Proto == "esp" && s.Mode == "transport":
			out = &s
		case s.Src == p.BOut.String() && s.Proto == "esp" && s.Mode == "transport":
			in = &s
		}
	}
	if out == nil || in == nil || out.Packets < 4 || in.Packets < 4 || !hasAlg(*out, "enc cbc(aes)") || !hasAlg(*out, "auth-trunc hmac(sha256)") {
		t.Fatalf("A's kernel holds:\n%s", p.A.ip(t, "-s", "xfrm", "state"))
	}
	t.Logf("A's SAs added through PF_KEY: out %v; in %v", *out, *in)
	d, err := ra.command(p.A, "sbin/setkey", "-D").CombinedOutput()
	if err != nil {
		t.Fatalf("setkey -D: %v\n%s", err, d)
	}
	dump := string(d)
	if !strings.Contains(dump, fmt.Sprintf("spi=%d(0x%s)", spiValue(out.SPI), out.SPI)) {
		t.Errorf("setkey -D (PF_KEY SADB_DUMP) does not list SPI %s:\n%s", out.SPI, dump)
	}
	if !strings.Contains(ra.Log(), "IPsec-SA established") {
		t.Errorf("racoon A logged no IPsec-SA")
	}
}

func spiValue(hex string) uint64 {
	var v uint64
	fmt.Sscanf(hex, "%x", &v)
	return v
}
