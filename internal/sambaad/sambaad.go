// Package sambaad runs a throwaway Samba Active Directory domain
// controller in a network namespace for tests: a Kerberos realm with
// machine accounts (SPN and UPN host/<name>.<domain>) and their keytabs,
// LDAP with the Windows IPsec policy objects every domain starts with, and
// helpers to change the directory while it runs.
//
// A domain is provisioned once per set of options and machine (≈10 s) and
// kept as a tarball; every Start restores it (≈1 s with the start), into
// its own directory and namespace, so that tests never share a DC. The
// facts behind it are in ../shared/notes/interop.md (Samba section).
//
// Packages (Debian): samba samba-dsdb-modules samba-vfs-modules
// samba-ad-provision ldb-tools smbclient krb5-user. Under CI=true a test
// that needs them fails if they are missing; elsewhere it skips.
package sambaad

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options describe the domain.
type Options struct {
	// Realm is the Kerberos realm (default AD.EXAMPLE.TEST); the DNS
	// domain is its lower case.
	Realm string
	// NetBIOS is the NetBIOS domain name (default ADEXAMPLE).
	NetBIOS string
	// AdminPassword is Administrator's (default Passw0rd!Adm1n).
	AdminPassword string
	// Hosts are the machine accounts to create, by short name ("left"):
	// computer LEFT$ with SPN and UPN host/left.<domain>, a random
	// password, enabled, its keytab exported.
	Hosts []string
	// ETypes sets a host's msDS-SupportedEncryptionTypes (4 RC4, 16
	// AES256, 24 AES128+256, 28 RC4+AES); default 24.
	ETypes map[string]int
	// ComputersReadIPsec grants Domain Computers read access to
	// CN=IP Security (machine accounts otherwise see only names there).
	ComputersReadIPsec bool
}

func (o *Options) defaults() {
	if o.Realm == "" {
		o.Realm = "AD.EXAMPLE.TEST"
	}
	if o.NetBIOS == "" {
		o.NetBIOS = "ADEXAMPLE"
	}
	if o.AdminPassword == "" {
		o.AdminPassword = "Passw0rd!Adm1n"
	}
}

// DNSDomain is the realm's DNS domain.
func (o Options) DNSDomain() string { return strings.ToLower(o.Realm) }

// BaseDN is the domain's naming context.
func (o Options) BaseDN() string {
	return "DC=" + strings.ReplaceAll(o.DNSDomain(), ".", ",DC=")
}

// provisionIP is the address the provisioned DNS records name; the DC
// listens on every address of its namespace, whatever Connect gives it.
const provisionIP = "10.80.0.1"

// vethDC is the DC's end of every link: one name per namespace suffices.
var packages = []string{"samba", "samba-tool", "ldbsearch", "ldbadd", "ldbmodify", "kinit"}

// Require fails (CI) or skips the test when Samba's packages or root are
// missing.
func Require(t testing.TB) {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("sambaad: %s", what)
		}
		t.Skipf("sambaad: %s", what)
	}
	if os.Geteuid() != 0 {
		missing("needs root (network namespaces)")
	}
	for _, b := range packages {
		if _, err := exec.LookPath(b); err != nil {
			missing(b + " not installed (Debian packages samba samba-dsdb-modules samba-vfs-modules samba-ad-provision ldb-tools krb5-user)")
		}
	}
	for _, f := range []string{"/usr/share/samba/setup/provision.ldif"} {
		if _, err := os.Stat(f); err != nil {
			missing(f + " missing (Debian package samba-ad-provision)")
		}
	}
	if m, _ := filepath.Glob("/usr/lib/*/samba/ldb/samba_dsdb.so"); len(m) == 0 {
		missing("samba_dsdb.so missing (Debian package samba-dsdb-modules)")
	}
	if m, _ := filepath.Glob("/usr/lib/*/samba/vfs/acl_xattr.so"); len(m) == 0 {
		missing("acl_xattr.so missing (Debian package samba-vfs-modules)")
	}
}

// DC is a running domain controller.
type DC struct {
	Options
	// Dir holds everything: dc/ (samba's), kt/<host>.keytab, krb5.conf.
	Dir string
	// NS is the DC's network namespace.
	NS string
	// SMBConf is samba's configuration.
	SMBConf string
	// KRB5Conf is a client krb5.conf naming the DC's first address as KDC.
	KRB5Conf string

	t     testing.TB
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	addrs []netip.Addr
	links int
}

var (
	provMu sync.Mutex
)

// Start restores the provisioned domain into a new directory and starts
// samba in a new namespace; Cleanup stops it and removes both. Connect
// links it to the namespaces that need it.
func Start(t testing.TB, opts Options) *DC {
	t.Helper()
	Require(t)
	opts.defaults()
	tarball := provisioned(t, opts)
	dir, err := os.MkdirTemp("", "sambaad-")
	if err != nil {
		t.Fatal(err)
	}
	dc := &DC{Options: opts, Dir: dir, NS: "sad-" + filepath.Base(dir)[len("sambaad-"):], t: t}
	if len(dc.NS) > 15 {
		dc.NS = dc.NS[:15]
	}
	t.Cleanup(func() {
		dc.Stop()
		_ = exec.Command("ip", "netns", "del", dc.NS).Run()
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		} else {
			t.Logf("sambaad: kept %s for inspection", dir)
		}
	})
	if out, err := exec.Command("tar", "-C", dir, "-xzf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("sambaad: restoring %s: %v\n%s", tarball, err, out)
	}
	// The provisioned paths are only in smb.conf: move them here.
	dc.SMBConf = filepath.Join(dir, "dc", "etc", "smb.conf")
	b, err := os.ReadFile(dc.SMBConf)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "provisioned-in"))))
	if err := os.WriteFile(dc.SMBConf, bytes.ReplaceAll(b, []byte(old), []byte(dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	dc.KRB5Conf = filepath.Join(dir, "krb5.conf")
	if out, err := exec.Command("ip", "netns", "add", dc.NS).CombinedOutput(); err != nil {
		t.Fatalf("sambaad: ip netns add %s: %v\n%s", dc.NS, err, out)
	}
	if out, err := exec.Command("ip", "-n", dc.NS, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("sambaad: %v\n%s", err, out)
	}
	dc.Restart()
	return dc
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Keytab is the path of a host's keytab.
func (dc *DC) Keytab(host string) string { return filepath.Join(dc.Dir, "kt", host+".keytab") }

// Principal is a host's principal, host/<host>.<domain>@REALM.
func (dc *DC) Principal(host string) string {
	return "host/" + host + "." + dc.DNSDomain() + "@" + dc.Realm
}

// FQDN is a host's DNS name; the DC's is dc1.<domain>.
func (dc *DC) FQDN(host string) string { return host + "." + dc.DNSDomain() }

// Addrs are the DC's addresses, one per Connect.
func (dc *DC) Addrs() []netip.Addr {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return append([]netip.Addr(nil), dc.addrs...)
}

// Connect links the DC to namespace ns with a veth pair: dcAddr on the
// DC's side, peerAddr on ns's (prefixes of one subnet). The first
// Connect's address is the KDC of KRB5Conf.
func (dc *DC) Connect(ns string, dcAddr, peerAddr netip.Prefix) {
	dc.t.Helper()
	dc.mu.Lock()
	dc.links++
	n := dc.links
	dc.mu.Unlock()
	a, b := fmt.Sprintf("sad%d", n), fmt.Sprintf("%s-dc%d", trimName(ns, 9), n)
	for _, args := range [][]string{
		{"link", "add", a, "netns", dc.NS, "type", "veth", "peer", "name", b, "netns", ns},
		{"-n", dc.NS, "addr", "add", dcAddr.String(), "dev", a},
		{"-n", ns, "addr", "add", peerAddr.String(), "dev", b},
		{"-n", dc.NS, "link", "set", a, "up"},
		{"-n", ns, "link", "set", b, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			dc.t.Fatalf("sambaad: ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	dc.mu.Lock()
	dc.addrs = append(dc.addrs, dcAddr.Addr())
	first := len(dc.addrs) == 1
	dc.mu.Unlock()
	if first {
		dc.writeKRB5Conf(dcAddr.Addr())
	}
}

func trimName(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (dc *DC) writeKRB5Conf(kdc netip.Addr) {
	conf := fmt.Sprintf(`[libdefaults]
    default_realm = %[1]s
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
[realms]
    %[1]s = {
        kdc = %[2]s
    }
[domain_realm]
    .%[3]s = %[1]s
    %[3]s = %[1]s
`, dc.Realm, kdc, dc.DNSDomain())
	if err := os.WriteFile(dc.KRB5Conf, []byte(conf), 0o644); err != nil {
		dc.t.Fatal(err)
	}
}

// Restart starts samba (again, after Stop) and waits until it listens on
// 88 and 389.
func (dc *DC) Restart() {
	dc.t.Helper()
	dc.mu.Lock()
	if dc.cmd != nil {
		dc.mu.Unlock()
		return
	}
	log, err := os.OpenFile(filepath.Join(dc.Dir, "samba.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		dc.mu.Unlock()
		dc.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", dc.NS, "samba", "-F", "--debug-stdout", "-M", "single", "-s", dc.SMBConf)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		dc.mu.Unlock()
		dc.t.Fatalf("sambaad: samba: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = log.Close(); close(done) }()
	dc.cmd, dc.done = cmd, done
	dc.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := exec.Command("ip", "netns", "exec", dc.NS, "ss", "-ltnH").Output()
		if strings.Contains(string(out), ":88 ") && strings.Contains(string(out), ":389 ") {
			return
		}
		select {
		case <-done:
			dc.t.Fatalf("sambaad: samba exited:\n%s", tail(filepath.Join(dc.Dir, "samba.log")))
		default:
		}
		if time.Now().After(deadline) {
			dc.t.Fatalf("sambaad: samba does not listen on 88 and 389 after 60s:\n%s", tail(filepath.Join(dc.Dir, "samba.log")))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop stops samba (SIGTERM to its process group, SIGKILL after 10 s);
// the directory stays for Restart.
func (dc *DC) Stop() {
	dc.mu.Lock()
	cmd, done := dc.cmd, dc.done
	dc.cmd = nil
	dc.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Log returns samba's log.
func (dc *DC) Log() string { return tail(filepath.Join(dc.Dir, "samba.log")) }

// Run runs a command inside the DC's namespace.
func (dc *DC) Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", dc.NS, name}, args...)...).CombinedOutput()
	return string(out), err
}

// SambaTool runs samba-tool on the DC's database.
func (dc *DC) SambaTool(args ...string) (string, error) {
	return dc.Run("samba-tool", append(args, "-s", dc.SMBConf)...)
}

// LDIF applies LDIF over LDAP as Administrator: ldbadd for records
// without changetype, ldbmodify otherwise (changetype: modify/delete).
func (dc *DC) LDIF(ldif string) error {
	dc.mu.Lock()
	if len(dc.addrs) == 0 {
		dc.mu.Unlock()
		return fmt.Errorf("sambaad: LDIF before Connect")
	}
	addr := dc.addrs[0]
	dc.mu.Unlock()
	f, err := os.CreateTemp(dc.Dir, "change-*.ldif")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(ldif); err != nil {
		return err
	}
	_ = f.Close()
	tool := "ldbadd"
	if strings.Contains(ldif, "changetype:") {
		tool = "ldbmodify"
	}
	out, err := dc.Run(tool, "-H", "ldap://"+addr.String(), "-U", dc.NetBIOS+"\\Administrator%"+dc.AdminPassword, f.Name())
	if err != nil {
		return fmt.Errorf("sambaad: %s: %v\n%s", tool, err, out)
	}
	return nil
}

// key identifies a provisioned domain: options and Samba's version.
func key(opts Options) string {
	v, _ := exec.Command("samba", "--version").Output()
	h := sha256.New()
	fmt.Fprintf(h, "%s|%q|%+v", v, opts.Hosts, opts)
	return hex.EncodeToString(h.Sum(nil))[:16]
}
