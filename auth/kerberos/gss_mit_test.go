package kerberos

// Cross-checks of iked's GSS-API tokens against MIT's libgssapi_krb5 (the
// library racoon uses), through testdata/gsstool.c and a real MIT KDC:
// iked initiates to MIT and MIT initiates to iked, then both wrap and
// unwrap in both directions, sealed and integrity-only, with AES and with
// RC4-HMAC keys.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/auth/kerberos/kdctest"
)

var (
	gsstoolOnce sync.Once
	gsstoolPath string
	gsstoolErr  error
)

// gsstool builds testdata/gsstool.c once per test binary (gcc and MIT's
// development headers, package libkrb5-dev); it is skipped (failed under
// CI=true) without them.
func gsstool(t testing.TB) string {
	t.Helper()
	gsstoolOnce.Do(func() {
		src, err := os.ReadFile("testdata/gsstool.c")
		if err != nil {
			gsstoolErr = err
			return
		}
		if _, err := exec.LookPath("gcc"); err != nil {
			gsstoolErr = fmt.Errorf("gcc not installed")
			return
		}
		if _, err := os.Stat("/usr/include/gssapi/gssapi_krb5.h"); err != nil {
			gsstoolErr = fmt.Errorf("MIT GSS-API headers not installed (apt-get install libkrb5-dev)")
			return
		}
		sum := sha256.Sum256(src)
		dir := filepath.Join(os.TempDir(), "iked-gsstool")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			gsstoolErr = err
			return
		}
		path := filepath.Join(dir, "gsstool-"+hex.EncodeToString(sum[:6]))
		if _, err := os.Stat(path); err == nil {
			gsstoolPath = path
			return
		}
		tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
		out, err := exec.Command("gcc", "-O1", "-Wall", "-o", tmp, "testdata/gsstool.c", "-lgssapi_krb5").CombinedOutput()
		if err != nil {
			gsstoolErr = fmt.Errorf("building gsstool: %v\n%s", err, out)
			return
		}
		gsstoolErr = os.Rename(tmp, path)
		gsstoolPath = path
	})
	if gsstoolErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("gsstool: %v", gsstoolErr)
		}
		t.Skipf("gsstool: %v", gsstoolErr)
	}
	return gsstoolPath
}

// mitContext is one gsstool process: one MIT GSS-API context.
type mitContext struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	log bytes.Buffer
}

// startMIT runs gsstool with the realm's configuration; keytab is the
// acceptor keytab and clientKeytab the initiator's.
func startMIT(t testing.TB, krb5Conf, keytab, clientKeytab string) *mitContext {
	t.Helper()
	cmd := exec.Command(gsstool(t))
	cmd.Env = append(os.Environ(), "KRB5_CONFIG="+krb5Conf, "KRB5_KTNAME=FILE:"+keytab,
		"KRB5_CLIENT_KTNAME=FILE:"+clientKeytab, "KRB5CCNAME=MEMORY:gsstool", "KRB5_TRACE=/dev/stderr")
	c := &mitContext{t: t, cmd: cmd}
	cmd.Stderr = &c.log
	var err error
	if c.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewScanner(stdout)
	c.out.Buffer(make([]byte, 1<<20), 1<<20)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.in.Close(); _ = cmd.Wait() })
	return c
}

// do sends one command and returns the answer's fields; an "error" answer
// is returned as err.
func (c *mitContext) do(cmd string, arg []byte) ([]string, error) {
	c.t.Helper()
	line := cmd
	if cmd == "init" {
		line += " " + string(arg) // a principal name, not hex
	} else if arg != nil {
		line += " " + hex.EncodeToString(arg)
	}
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() { done <- c.out.Scan() }()
	select {
	case ok := <-done:
		if !ok {
			c.t.Fatalf("gsstool exited: %v\n%s", c.out.Err(), c.log.String())
		}
	case <-time.After(30 * time.Second):
		c.t.Fatalf("gsstool does not answer %q", cmd)
	}
	f := strings.Fields(c.out.Text())
	if len(f) > 0 && f[0] == "error" {
		return f, fmt.Errorf("MIT: %s", strings.Join(f[1:], " "))
	}
	return f, nil
}

// mustDo is do for answers that must succeed.
func (c *mitContext) mustDo(cmd string, arg []byte) []string {
	c.t.Helper()
	f, err := c.do(cmd, arg)
	if err != nil {
		c.t.Fatalf("%s: %v\ntrace:\n%s", cmd, err, c.log.String())
	}
	return f
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	if s == "-" {
		return []byte{}
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var peerAddr = netip.MustParseAddrPort("127.0.0.1:500")

// crossWrap checks Wrap and Unwrap between an established iked context and
// an established MIT one, both directions, sealed and integrity-only.
func crossWrap(t *testing.T, ours *GSSContext, mit *mitContext) {
	t.Helper()
	tokKey, _ := ours.tokenKey()
	for i, msg := range [][]byte{[]byte("HASH_I of twenty oct"), bytes.Repeat([]byte{0xa5}, 32), {}} {
		tok, err := ours.Wrap(msg)
		if err != nil {
			t.Fatal(err)
		}
		f := mit.mustDo("unwrap", tok)
		if got := unhex(t, f[1]); !bytes.Equal(got, msg) || f[3] != "1" {
			t.Fatalf("message %d: MIT unwrapped %x (conf %s), want %x sealed", i, got, f[3], msg)
		}
		for _, cmd := range []string{"wrap", "wrapi"} {
			back := append([]byte("reply "), msg...)
			f = mit.mustDo(cmd, back)
			got, err := ours.Unwrap(unhex(t, f[1]))
			if err != nil {
				t.Fatalf("message %d: unwrapping MIT's %s token: %v", i, cmd, err)
			}
			katRecord(katVector{Name: fmt.Sprintf("%s %s %d from %s", t.Name(), cmd, i, map[bool]string{true: "acceptor", false: "initiator"}[ours.initiator]),
				Kind: "wrap", Enctype: tokKey.KeyType, Key: hexs(tokKey.KeyValue), Token: f[1], Msg: hexs(back), FromAcceptor: ours.initiator})
			if !bytes.Equal(got, back) {
				t.Fatalf("message %d: unwrapped %x, want %x", i, got, back)
			}
		}
	}
	// A token of ours sent back to us (a reflection) is refused, and so is
	// a tampered one of MIT's.
	tok, _ := ours.Wrap([]byte("reflect me"))
	if _, err := ours.Unwrap(tok); err == nil {
		t.Fatal("our own Wrap token was accepted as the peer's")
	}
	f := mit.mustDo("wrap", []byte("tamper"))
	bad := unhex(t, f[1])
	bad[len(bad)-1] ^= 1
	if _, err := ours.Unwrap(bad); err == nil {
		t.Fatal("a tampered token was accepted")
	}
}

// mitKeys compares the context key MIT exported with ours.
func mitKeys(t *testing.T, ours *GSSContext, mit *mitContext, wantProto string) {
	t.Helper()
	f := mit.mustDo("keys", nil)
	if f[1] != wantProto {
		t.Fatalf("MIT's context uses protocol %s, want %s (%v)", f[1], wantProto, f)
	}
	key := ours.contextKey()
	if f[2] != fmt.Sprint(key.KeyType) || !bytes.Equal(unhex(t, f[3]), key.KeyValue) {
		t.Fatalf("MIT's context key %s %s differs from ours (enctype %d)", f[2], f[3], key.KeyType)
	}
	if len(f) > 4 {
		if !bytes.Equal(unhex(t, f[5]), ours.acceptorKey.KeyValue) {
			t.Fatal("MIT's acceptor subkey differs from ours")
		}
	} else if len(ours.acceptorKey.KeyValue) > 0 && wantProto == "1" {
		t.Fatal("we hold an acceptor subkey MIT does not")
	}
}

// rc4Realm adds RC4-HMAC-only service and client principals to r.
func rc4Realm(t *testing.T, r *realm) (ktC, ktS string) {
	t.Helper()
	ktC = filepath.Join(r.kdc.Dir, "rc4c.keytab")
	ktS = filepath.Join(r.kdc.Dir, "rc4s.keytab")
	r.kdc.Kadmin("addprinc -randkey -e arcfour-hmac:normal host/rc4c.example.test")
	r.kdc.Kadmin("addprinc -randkey -e arcfour-hmac:normal host/rc4s.example.test")
	r.kdc.Kadmin("ktadd -k " + ktC + " -e arcfour-hmac:normal host/rc4c.example.test")
	r.kdc.Kadmin("ktadd -k " + ktS + " -e arcfour-hmac:normal host/rc4s.example.test")
	// MIT 1.18 and later assume every service takes AES session keys;
	// this one takes RC4 only, as in a Windows 2003 domain.
	r.kdc.Kadmin("setstr host/rc4s.example.test session_enctypes arcfour-hmac")
	return ktC, ktS
}

// newRealmRC4 is newRealm with a KDC that issues RC4-HMAC session keys.
func newRealmRC4(t testing.TB) *realm {
	t.Helper()
	k := kdctest.StartWith(t, testRealm, kdctest.Options{AllowRC4: true})
	return &realm{kdc: k, ktA: k.AddHost("host/a.example.test", filepath.Join(k.Dir, "a.keytab")),
		ktB: k.AddHost("host/b.example.test", filepath.Join(k.Dir, "b.keytab"))}
}

func TestGSSAgainstMIT(t *testing.T) {
	r := newRealmRC4(t)
	ktC, ktS := rc4Realm(t, r)
	cases := []struct {
		name              string
		client, service   string
		ktClient, ktSvc   string
		proto, wantEnctyp string
	}{
		{"aes", "host/a.example.test", "host/b.example.test", r.ktA, r.ktB, "1", "18"},
		{"rc4", "host/rc4c.example.test", "host/rc4s.example.test", ktC, ktS, "0", "23"},
	}
	defer katWrite(t)
	for _, tc := range cases {
		t.Run(tc.name+"/iked initiates", func(t *testing.T) {
			ma, _ := r.methods(t, func(a, b *Options) {
				a.Principal, a.Service, a.Keytab = tc.client, tc.service, tc.ktClient
			})
			ours, err := ma.NewGSSInitiator(peerAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer ours.Close()
			mit := startMIT(t, r.kdc.Krb5Conf, tc.ktSvc, tc.ktClient)
			tok, err := ours.Step(nil)
			if err != nil {
				t.Fatal(err)
			}
			f := mit.mustDo("accept", tok)
			if f[0] != "token" || f[2] != "client" || f[3] != tc.client+"@"+testRealm {
				t.Fatalf("MIT accepted %v", f)
			}
			if _, err := ours.Step(unhex(t, f[1])); err != nil {
				t.Fatalf("MIT's AP-REP: %v", err)
			}
			katRecord(katVector{Name: t.Name() + " AP-REP", Kind: "aprep", Enctype: ours.session.KeyType, Key: hexs(ours.session.KeyValue), Token: f[1],
				CTime: ours.ctime.Format(time.RFC3339), Cusec: ours.cusec, SubkeyEnctype: ours.subkey.KeyType})
			if !ours.Established() || fmt.Sprint(ours.contextKey().KeyType) != tc.wantEnctyp {
				t.Fatalf("established %v, enctype %d", ours.Established(), ours.contextKey().KeyType)
			}
			if tc.proto == "1" && len(ours.acceptorKey.KeyValue) == 0 {
				t.Fatal("MIT's acceptor sent no subkey for an AES context")
			}
			crossWrap(t, ours, mit)
			mitKeys(t, ours, mit, tc.proto)
		})
		t.Run(tc.name+"/MIT initiates", func(t *testing.T) {
			_, mb := r.methods(t, func(a, b *Options) {
				b.Principal, b.Keytab, b.Allowed = tc.service, tc.ktSvc, []string{tc.client}
			})
			ours := mb.NewGSSAcceptor(peerAddr)
			defer ours.Close()
			mit := startMIT(t, r.kdc.Krb5Conf, tc.ktSvc, tc.ktClient)
			f := mit.mustDo("init", []byte(tc.service+"@"+testRealm))
			at := time.Now().UTC()
			rep, err := ours.Step(unhex(t, f[1]))
			if err != nil {
				t.Fatalf("MIT's initial token refused: %v", err)
			}
			if ours.Peer() != (Principal{tc.client, testRealm}) {
				t.Fatalf("peer %s", ours.Peer())
			}
			svcKey, kvno := serviceKeyFrom(t, tc.ktSvc, tc.service, map[string]int32{"0": 23, "1": 18}[tc.proto])
			katRecord(katVector{Name: t.Name() + " AP-REQ", Kind: "apreq", Enctype: svcKey.KeyType, Key: hexs(svcKey.KeyValue), Token: f[1],
				Service: tc.service + "@" + testRealm, KVNO: kvno, Client: tc.client + "@" + testRealm, At: at.Format(time.RFC3339Nano)})
			if f := mit.mustDo("step", rep); f[0] != "complete" {
				t.Fatalf("MIT after our AP-REP: %v", f)
			}
			crossWrap(t, ours, mit)
			mitKeys(t, ours, mit, tc.proto)
		})
	}
}

// TestGSSReadsMITRefusal: MIT's acceptor, given a token for a service
// whose key its keytab lacks, answers with a KRB-ERROR token; iked's
// initiator reads the code from it.
func TestGSSReadsMITRefusal(t *testing.T) {
	r := newRealm(t)
	ma, _ := r.methods(t, nil)
	ours, err := ma.NewGSSInitiator(peerAddr)
	if err != nil {
		t.Fatal(err)
	}
	mit := startMIT(t, r.kdc.Krb5Conf, r.ktA, r.ktA) // the acceptor holds a's keys, not b's
	tok, err := ours.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	// gsstool prints the error token before the status: "token HEX error …".
	out, _ := mit.do("accept", tok)
	if len(out) < 3 || out[0] != "token" || out[2] != "error" {
		t.Fatalf("MIT's acceptor did not refuse with an error token: %v", out)
	}
	if _, err := ours.Step(unhex(t, out[1])); err == nil {
		t.Fatal("an error token established the context")
	}
	if code, _ := ours.KerberosError(); code == 0 {
		t.Fatalf("no Kerberos error code read from MIT's KRB-ERROR token: %v", err)
	}
	code, _ := ours.KerberosError()
	t.Logf("MIT refused with %s: %s", ErrorName(code), strings.Join(out[3:], " "))
}
