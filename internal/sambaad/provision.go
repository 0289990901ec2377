package sambaad

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CacheDir is where provisioned domains are kept: $IKED_SAMBAAD_CACHE, or
// a directory under the system's temporary directory.
func CacheDir() string {
	if d := os.Getenv("IKED_SAMBAAD_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "iked-sambaad-cache")
}

// services are samba's services a KDC and LDAP test realm needs; without
// winbindd the Debian package runs without the winbind package.
const services = "-winbindd -s3fs -nbt -wrepl -dnsupdate -ntp_signd -kcc -drepl"

// provisioned returns the tarball of a domain provisioned with opts,
// provisioning it first if no earlier test (of this process or another)
// did. A lock file serialises provisioning between test processes.
func provisioned(t testing.TB, opts Options) string {
	t.Helper()
	provMu.Lock()
	defer provMu.Unlock()
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	tarball := filepath.Join(dir, "domain-"+key(opts)+".tgz")
	if _, err := os.Stat(tarball); err == nil {
		return tarball
	}
	start := time.Now()
	if err := provision(opts, tarball); err != nil {
		t.Fatalf("sambaad: provisioning %s: %v", opts.Realm, err)
	}
	t.Logf("sambaad: provisioned %s in %v (kept as %s)", opts.Realm, time.Since(start).Round(time.Millisecond), tarball)
	return tarball
}

func provision(opts Options, tarball string) (err error) {
	tpl, err := os.MkdirTemp("", "sambaad-tpl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tpl)
	ns := "sadp-" + filepath.Base(tpl)[len("sambaad-tpl-"):]
	if len(ns) > 15 {
		ns = ns[:15]
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	run := func(name string, args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	d := filepath.Join(tpl, "dc")
	conf := filepath.Join(d, "etc", "smb.conf")
	empty := filepath.Join(tpl, "empty.conf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return err
	}
	// -s empty.conf: otherwise provision copies /etc/samba/smb.conf's
	// globals. Every directory samba writes is moved under tpl.
	if _, err := run("samba-tool", "domain", "provision", "-s", empty, "--targetdir="+d, "--realm="+opts.Realm, "--domain="+opts.NetBIOS,
		"--server-role=dc", "--dns-backend=SAMBA_INTERNAL", "--adminpass="+opts.AdminPassword, "--host-ip="+provisionIP, "--host-name=dc1",
		"--option=interfaces = lo", "--option=bind interfaces only = no", "--option=server services = "+services,
		"--option=pid directory = "+d+"/run", "--option=ncalrpc dir = "+d+"/run/ncalrpc",
		"--option=winbindd socket directory = "+d+"/run/winbindd", "--option=ntp signd socket directory = "+d+"/run/ntp_signd",
		"--option=log level = 1"); err != nil {
		return err
	}
	// Provision copies the host's resolver into "dns forwarder": the DC's
	// DNS must never forward anywhere.
	b, err := os.ReadFile(conf)
	if err != nil {
		return err
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "dns forwarder") {
			lines = append(lines, l)
		}
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return err
	}
	for _, sub := range []string{"log", "run", "private/tls"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	// Samba makes a 4096-bit RSA TLS key at its first start (seconds); a
	// P-256 one is made in milliseconds.
	tls := filepath.Join(d, "private", "tls")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
		"-keyout", filepath.Join(tls, "key.pem"), "-out", filepath.Join(tls, "cert.pem"),
		"-subj", "/O=throwaway test realm/CN=dc1."+opts.DNSDomain()).CombinedOutput(); err == nil {
		cert, _ := os.ReadFile(filepath.Join(tls, "cert.pem"))
		_ = os.WriteFile(filepath.Join(tls, "ca.pem"), cert, 0o644)
		_ = os.Chmod(filepath.Join(tls, "key.pem"), 0o600)
	} else {
		_ = out // no openssl: samba makes its own key
	}
	tool := func(args ...string) error {
		_, err := run("samba-tool", append(args, "-s", conf)...)
		return err
	}
	if err := os.MkdirAll(filepath.Join(tpl, "kt"), 0o755); err != nil {
		return err
	}
	var mods strings.Builder
	for _, h := range opts.Hosts {
		H := strings.ToUpper(h)
		fqdn := h + "." + opts.DNSDomain()
		// "computer create" makes a disabled account without keys.
		if err := tool("computer", "create", H, "--service-principal-name=host/"+fqdn); err != nil {
			return err
		}
		if err := tool("user", "setpassword", H+"$", "--random-password"); err != nil {
			return err
		}
		if err := tool("user", "enable", H+"$"); err != nil {
			return err
		}
		et := 24
		if v, ok := opts.ETypes[h]; ok {
			et = v
		}
		// The UPN is what lets a client ask for tickets as host/NAME:
		// Samba's KDC finds clients by account name or UPN only.
		fmt.Fprintf(&mods, "dn: CN=%s,CN=Computers,%s\nchangetype: modify\nreplace: msDS-SupportedEncryptionTypes\nmsDS-SupportedEncryptionTypes: %d\n-\nreplace: userPrincipalName\nuserPrincipalName: host/%s@%s\n-\nreplace: dNSHostName\ndNSHostName: %s\n\n",
			H, opts.BaseDN(), et, fqdn, opts.Realm, fqdn)
	}
	if mods.Len() > 0 {
		f := filepath.Join(tpl, "accounts.ldif")
		if err := os.WriteFile(f, []byte(mods.String()), 0o644); err != nil {
			return err
		}
		if _, err := run("ldbmodify", "-H", filepath.Join(d, "private", "sam.ldb"), f); err != nil {
			return err
		}
		_ = os.Remove(f)
	}
	for _, h := range opts.Hosts {
		if err := tool("domain", "exportkeytab", filepath.Join(tpl, "kt", h+".keytab"), "--principal=host/"+h+"."+opts.DNSDomain()+"@"+opts.Realm); err != nil {
			return err
		}
	}
	if opts.ComputersReadIPsec {
		// Machine accounts see only the names under CN=IP Security until
		// Domain Computers may read it.
		if err := tool("dsacl", "set", "--objectdn=CN=IP Security,CN=System,"+opts.BaseDN(), "--sddl=(A;CI;RPLCLORC;;;DC)"); err != nil {
			return err
		}
	}
	_ = os.Remove(empty)
	if err := os.WriteFile(filepath.Join(tpl, "provisioned-in"), []byte(tpl+"\n"), 0o644); err != nil {
		return err
	}
	tmp := tarball + ".tmp"
	if out, err := exec.Command("tar", "-C", tpl, "-czf", tmp, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, out)
	}
	return os.Rename(tmp, tarball)
}
