// Package kdctest runs a throwaway MIT Kerberos realm for tests: a KDC
// (Debian's krb5-kdc, started as `krb5kdc -n` on a loopback port, or where
// StartWith's Options say) with its database, configuration and logs in a
// temporary directory. Nothing is installed system-wide and no systemd
// unit is involved.
//
// When the MIT tools are missing the test is skipped, or fails when the
// environment variable CI is "true", so that CI cannot pass by skipping.
package kdctest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// KDC is a running MIT KDC for one realm.
type KDC struct {
	t testing.TB
	// Realm is the realm's name, e.g. "EXAMPLE.TEST".
	Realm string
	// Addr is the KDC's "127.0.0.1:port" (UDP and TCP), or Options.Listen.
	Addr string
	// Dir is the temporary directory holding the database, configuration
	// and logs.
	Dir string
	// Krb5Conf is the path of a krb5.conf naming this realm and KDC.
	Krb5Conf string
	kdcConf  string
	logPath  string
	wrap     []string
	allowRC4 bool
	cmd      *exec.Cmd
	done     chan error
}

var tools = []string{"krb5kdc", "kdb5_util", "kadmin.local"}

// Available reports why the MIT tools cannot be used, or "" when they can.
func Available() string {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat(filepath.Join("/usr/sbin", tool)); err != nil {
				return tool + " not installed (apt-get install krb5-kdc krb5-admin-server krb5-user)"
			}
		}
	}
	return ""
}

// Require skips t (or fails it under CI=true) when the MIT tools are missing.
func Require(t testing.TB) {
	t.Helper()
	if why := Available(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kerberos: %s", why)
		}
		t.Skipf("kerberos: %s", why)
	}
}

func tool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return filepath.Join("/usr/sbin", name)
}

// Start creates the realm's database and starts its KDC on a free
// loopback port; the KDC is stopped when the test ends.
func Start(t testing.TB, realm string) *KDC {
	t.Helper()
	return StartWith(t, realm, Options{})
}

// Options change where StartWith's KDC listens and runs; the zero value is
// Start's behaviour.
type Options struct {
	// Listen is the KDC's "ip:port" for UDP and TCP, used as given (its
	// port is not checked); empty: a free port on 127.0.0.1.
	Listen string
	// Wrap, when not empty, is the command line krb5kdc's own is appended
	// to, e.g. {"ip", "netns", "exec", "ns1"} to run the KDC inside a
	// network namespace that holds Listen's address. The wrapper must exec
	// krb5kdc (keep its PID) and pass the environment on; kdb5_util and
	// kadmin.local still run directly.
	Wrap []string
	// AllowRC4 lets the KDC issue RC4-HMAC session keys (MIT's allow_rc4),
	// for tests of Windows 2003-era realms. Principals get RC4 keys with
	// "addprinc -e arcfour-hmac:normal"; a service's session key is RC4
	// once its session_enctypes string attribute says so.
	AllowRC4 bool
}

// StartWith is Start with options.
func StartWith(t testing.TB, realm string, o Options) *KDC {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	k := &KDC{t: t, Realm: realm, Dir: dir, Krb5Conf: filepath.Join(dir, "krb5.conf"), kdcConf: filepath.Join(dir, "kdc.conf"), logPath: filepath.Join(dir, "kdc.log")}
	k.wrap = append([]string(nil), o.Wrap...)
	k.allowRC4 = o.AllowRC4
	if k.Addr = o.Listen; k.Addr == "" {
		k.Addr = freeAddr(t)
	} else if _, _, err := net.SplitHostPort(k.Addr); err != nil {
		t.Fatalf("kdctest: Listen %q: %v", k.Addr, err)
	}
	k.writeConfig()
	k.run("kdb5_util", "-r", realm, "create", "-s", "-P", "throwaway-master-password")
	k.Restart()
	t.Cleanup(k.Stop)
	return k
}

// freeAddr finds a loopback port free for both UDP and TCP.
func freeAddr(t testing.TB) string {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return addr
		}
	}
	t.Fatal("kdctest: no free loopback port")
	return ""
}

func (k *KDC) writeConfig() {
	krb5 := fmt.Sprintf(`[libdefaults]
	default_realm = %[1]s
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
	dns_canonicalize_hostname = false
	udp_preference_limit = 1
	ticket_lifetime = 10h
	renew_lifetime = 7d
	default_ccache_name = FILE:%[3]s/ccache
	allow_rc4 = %[4]t

[realms]
	%[1]s = {
		kdc = %[2]s
	}

[domain_realm]
	.example.test = %[1]s
	example.test = %[1]s
`, k.Realm, k.Addr, k.Dir, k.allowRC4)
	kdc := fmt.Sprintf(`[kdcdefaults]
	kdc_listen = %[2]s
	kdc_tcp_listen = %[2]s

[realms]
	%[1]s = {
		database_name = %[3]s/principal
		key_stash_file = %[3]s/stash
		acl_file = %[3]s/kadm5.acl
		kdc_listen = %[2]s
		kdc_tcp_listen = %[2]s
		max_life = 10h
		max_renewable_life = 7d
		supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
	}

[logging]
	kdc = FILE:%[4]s
	admin_server = FILE:%[3]s/kadmin.log
	default = FILE:%[3]s/krb5lib.log
`, k.Realm, k.Addr, k.Dir, k.logPath)
	for path, s := range map[string]string{k.Krb5Conf: krb5, k.kdcConf: kdc, filepath.Join(k.Dir, "kadm5.acl"): ""} {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			k.t.Fatal(err)
		}
	}
}

// Env is the environment the MIT tools need to use this realm.
func (k *KDC) Env() []string {
	return append(os.Environ(), "KRB5_CONFIG="+k.Krb5Conf, "KRB5_KDC_PROFILE="+k.kdcConf, "KRB5CCNAME=FILE:"+filepath.Join(k.Dir, "ccache"))
}

func (k *KDC) run(name string, args ...string) string {
	k.t.Helper()
	cmd := exec.Command(tool(name), args...)
	cmd.Env = k.Env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		k.t.Fatalf("kdctest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// Kadmin runs one kadmin.local query, e.g. "addprinc -randkey host/a.example.test".
func (k *KDC) Kadmin(query string) string {
	k.t.Helper()
	return k.run("kadmin.local", "-r", k.Realm, "-q", query)
}

// AddHost creates the principal (random key) and writes its keys to the
// keytab at path (created or appended to), returning path.
func (k *KDC) AddHost(principal, path string) string {
	k.t.Helper()
	k.Kadmin("addprinc -randkey " + principal)
	k.Kadmin("ktadd -k " + path + " " + principal)
	return path
}

// Rotate gives principal a new random key (and key version) on the KDC
// without writing it to any keytab.
func (k *KDC) Rotate(principal string) {
	k.t.Helper()
	k.Kadmin("cpw -randkey " + principal)
}

// Restart starts the KDC (again) and waits until it serves requests.
func (k *KDC) Restart() {
	k.t.Helper()
	if k.cmd != nil {
		return
	}
	before := k.logSize()
	argv := append(append([]string(nil), k.wrap...), tool("krb5kdc"), "-n", "-r", k.Realm)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = k.Env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.cmd, k.done = cmd, make(chan error, 1)
	go func() { k.done <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(k.logPath)
		if int64(len(b)) > before && bytes.Contains(b[before:], []byte("commencing operation")) {
			return
		}
		select {
		case err := <-k.done:
			k.cmd = nil
			k.t.Fatalf("kdctest: krb5kdc exited: %v\n%s\n%s", err, out.String(), b)
		default:
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("kdctest: krb5kdc not ready after 10s\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (k *KDC) logSize() int64 {
	fi, err := os.Stat(k.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Stop stops the KDC; Restart starts it again.
func (k *KDC) Stop() {
	if k.cmd == nil {
		return
	}
	_ = k.cmd.Process.Kill()
	<-k.done
	k.cmd = nil
}

// Log returns the KDC's log so far.
func (k *KDC) Log() string {
	b, _ := os.ReadFile(k.logPath)
	return string(b)
}
