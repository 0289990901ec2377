package kerberos

// Tests against an Active Directory KDC: Samba 4.17 as a domain controller
// (internal/sambaad) with machine accounts whose enctypes are forced per
// account through msDS-SupportedEncryptionTypes (AES256 only, RC4-HMAC
// only), as a Windows domain sets them. gokrb5 gets the tickets from
// Samba's KDC (with PA-FX-FAST disabled, as docs/kerberos.md says AD
// needs), and the GSS-API contexts and the IKEv2 method run on them; MIT's
// libgssapi checks the same tickets' tokens; a key rollover on the DC makes
// the responder's keytab stale.
//
// The DC lives in a network namespace. The tests that talk to it run in a
// second namespace linked to it: the test binary runs itself there (see
// inNetns), with the DC's paths in the environment.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/internal/sambaad"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
)

// adRealm is what a test inside the client namespace knows of the DC.
type adRealm struct {
	Realm    string
	KDC      string            // "ip:88"
	KRB5Conf string            // for MIT tools
	Keytabs  map[string]string // by short host name
	Domain   string            // DNS domain
	DCNS     string            // the DC's namespace, for samba-tool
	SMBConf  string
}

func (r *adRealm) principal(host string) string { return "host/" + host + "." + r.Domain }

// adHosts are the machine accounts: iked (the client here) and racoon with
// the domain default (AES), and services with AES256 only and RC4-HMAC
// only. The interop tests use the same set, so that one provisioned
// domain serves both.
var adHosts = sambaad.Options{Hosts: []string{"iked", "racoon", "aes", "rc4"}, ETypes: map[string]int{"aes": 16, "rc4": 4}}

const adEnv = "IKED_KRB_AD_REALM"

// inNetns runs the calling test again inside namespace ns (with r in the
// environment) and reports true in the parent, which must then return;
// in the child it returns false and the realm.
func inNetns(t *testing.T, start func(t *testing.T) (ns string, r *adRealm)) (*adRealm, bool) {
	t.Helper()
	if v := os.Getenv(adEnv); v != "" {
		var r adRealm
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			t.Fatal(err)
		}
		return &r, false
	}
	ns, r := start(t)
	b, _ := json.Marshal(r)
	args := []string{"netns", "exec", ns, os.Args[0], "-test.run", "^" + t.Name() + "$", "-test.count=1", "-test.timeout=5m"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), adEnv+"="+string(b))
	out, err := cmd.CombinedOutput()
	if err != nil || testing.Verbose() {
		t.Logf("inside namespace %s:\n%s", ns, out)
	}
	if err != nil {
		t.Fatalf("the test failed inside namespace %s: %v", ns, err)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("the test did not run inside namespace %s", ns)
	}
	return nil, true
}

// startAD starts a DC with adHosts and a client namespace linked to it.
func startAD(t *testing.T) (string, *adRealm) {
	sambaad.Require(t)
	dc := sambaad.Start(t, adHosts)
	ns := fmt.Sprintf("krbad%d", os.Getpid()%100000)
	_ = exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	dc.Connect(ns, netip.MustParsePrefix("10.83.0.1/24"), netip.MustParsePrefix("10.83.0.2/24"))
	r := &adRealm{Realm: dc.Realm, KDC: "10.83.0.1:88", KRB5Conf: dc.KRB5Conf, Keytabs: map[string]string{},
		Domain: dc.DNSDomain(), DCNS: dc.NS, SMBConf: dc.SMBConf}
	for _, h := range adHosts.Hosts {
		r.Keytabs[h] = dc.Keytab(h)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("samba log:\n%s", dc.Log())
		}
	})
	return ns, r
}

// adMethods returns iked methods for client (initiator) and service
// (acceptor) accounts of the AD realm.
func (r *adRealm) methods(t *testing.T, client, service string, edit func(a, b *Options)) (*Method, *Method) {
	t.Helper()
	a := Options{Realm: r.Realm, KDCs: []string{r.KDC}, Keytab: r.Keytabs[client], Principal: r.principal(client),
		Service: r.principal(service), Allowed: []string{r.principal(service)}, KDCBackoff: 50 * time.Millisecond}
	b := Options{Realm: r.Realm, KDCs: []string{r.KDC}, Keytab: r.Keytabs[service], Principal: r.principal(service),
		Allowed: []string{"@" + r.Realm}}
	if edit != nil {
		edit(&a, &b)
	}
	ma, err := New(a, "")
	if err != nil {
		t.Fatal(err)
	}
	mb, err := New(b, "")
	if err != nil {
		t.Fatal(err)
	}
	ma.replays, mb.replays = NewReplayCache(), NewReplayCache()
	return ma, mb
}

// gssPair establishes a GSS-API context between two iked methods.
func gssPair(t *testing.T, ma, mb *Method) (*GSSContext, *GSSContext, error) {
	t.Helper()
	ini, err := ma.NewGSSInitiator(peerAddr)
	if err != nil {
		return nil, nil, err
	}
	acc := mb.NewGSSAcceptor(peerAddr)
	tok, err := ini.Step(nil)
	if err != nil {
		return nil, nil, err
	}
	rep, err := acc.Step(tok)
	if err != nil {
		if rep != nil {
			_, _ = ini.Step(rep)
		}
		return ini, acc, err
	}
	if _, err := ini.Step(rep); err != nil {
		return ini, acc, err
	}
	return ini, acc, nil
}

// TestGSSAgainstSambaAD: GSS-API contexts on tickets from Samba's KDC,
// with the service's enctype forced to AES256 and to RC4-HMAC by its
// account: iked ⇄ iked, and iked ⇄ MIT in both roles.
func TestGSSAgainstSambaAD(t *testing.T) {
	r, done := inNetns(t, startAD)
	if done {
		return
	}
	for _, c := range []struct {
		service     string
		enctype     int32
		wantRFC4121 bool
	}{{"aes", 18, true}, {"rc4", 23, false}} {
		t.Run(c.service, func(t *testing.T) {
			ma, mb := r.methods(t, "iked", c.service, nil)
			ini, acc, err := gssPair(t, ma, mb)
			if err != nil {
				t.Fatal(err)
			}
			if ini.tkt.tkt.EncPart.EType != c.enctype || ini.contextKey().KeyType != c.enctype {
				t.Fatalf("ticket enctype %d, context key enctype %d; want %d (msDS-SupportedEncryptionTypes)",
					ini.tkt.tkt.EncPart.EType, ini.contextKey().KeyType, c.enctype)
			}
			tok, err := ini.Wrap([]byte("HASH_I"))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := acc.Unwrap(tok); err != nil || string(got) != "HASH_I" {
				t.Fatalf("unwrap: %v", err)
			}
			if (tok[0] == 0x05) != c.wantRFC4121 {
				t.Fatalf("token %x: want RFC 4121 %v", tok[:2], c.wantRFC4121)
			}
			// MIT's library on the same realm, both roles.
			mit := startMIT(t, r.KRB5Conf, r.Keytabs[c.service], r.Keytabs["iked"])
			ini2, err := ma.NewGSSInitiator(peerAddr)
			if err != nil {
				t.Fatal(err)
			}
			t0, _ := ini2.Step(nil)
			f := mit.mustDo("accept", t0)
			if _, err := ini2.Step(unhex(t, f[1])); err != nil {
				t.Fatal(err)
			}
			crossWrap(t, ini2, mit)
			mit2 := startMIT(t, r.KRB5Conf, r.Keytabs[c.service], r.Keytabs["iked"])
			f = mit2.mustDo("init", []byte(r.principal(c.service)+"@"+r.Realm))
			acc2 := mb.NewGSSAcceptor(peerAddr)
			rep, err := acc2.Step(unhex(t, f[1]))
			if err != nil {
				t.Fatalf("MIT's token with a ticket from Samba: %v", err)
			}
			if f := mit2.mustDo("step", rep); f[0] != "complete" {
				t.Fatal(f)
			}
			crossWrap(t, acc2, mit2)
		})
	}
}

// TestKerberosRolloverSambaAD: the service account's password is changed
// on the DC (samba-tool user setpassword), so its key version rises; the
// acceptor's keytab is stale: refused with KRB_AP_ERR_BADKEYVER naming the
// versions, and the initiator's one retry with a fresh ticket fails the
// same way. Once the new keytab is exported the acceptor accepts.
func TestKerberosRolloverSambaAD(t *testing.T) {
	r, done := inNetns(t, startAD)
	if done {
		return
	}
	ma, mb := r.methods(t, "iked", "aes", nil)
	if _, _, err := gssPair(t, ma, mb); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", r.DCNS, name}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	run("samba-tool", "user", "setpassword", "AES$", "--random-password", "-s", r.SMBConf)
	ma.FlushTickets()
	ini, _, err := gssPair(t, ma, mb)
	var f *auth.Failure
	if !errors.As(err, &f) || !strings.Contains(f.Reason, "KRB_AP_ERR_BADKEYVER") || !strings.Contains(f.Reason, "was the key changed on the KDC") {
		t.Fatalf("stale keytab: %v", err)
	}
	if code, _ := ini.KerberosError(); code != errorcode.KRB_AP_ERR_BADKEYVER || !ini.RetryAfter() {
		t.Fatalf("initiator read code %d", code)
	}
	// The new key reaches the responder's keytab (exportkeytab appends).
	fresh := filepath.Join(t.TempDir(), "aes.keytab")
	b, err := os.ReadFile(r.Keytabs["aes"])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fresh, b, 0o600); err != nil {
		t.Fatal(err)
	}
	run("samba-tool", "domain", "exportkeytab", fresh, "--principal="+r.principal("aes")+"@"+r.Realm, "-s", r.SMBConf)
	_, mb2 := r.methods(t, "iked", "aes", func(a, b *Options) { b.Keytab = fresh })
	if _, _, err := gssPair(t, ma, mb2); err != nil {
		t.Fatalf("after the keytab update: %v", err)
	}
}

// TestKerberosIKEv2SambaAD: iked's private IKEv2 method (docs/kerberos.md
// §2) between two engines, with tickets from Samba's KDC for an AES256-only
// and an RC4-only service account: gokrb5's AS and TGS exchanges with an
// AD KDC (PA-FX-FAST off by default) and the AP-REQ checks on AD tickets.
func TestKerberosIKEv2SambaAD(t *testing.T) {
	r, done := inNetns(t, startAD)
	if done {
		return
	}
	for _, service := range []string{"aes", "rc4"} {
		t.Run(service, func(t *testing.T) {
			ma, mb := r.methods(t, "iked", service, nil)
			p := newPairIDs(t, ma, mb, "iked."+r.Domain, service+"."+r.Domain)
			if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
				t.Fatalf("initiate: %v\ninitiator log:\n%s\nresponder log:\n%s", err, p.logA, p.logB)
			}
			p.established(t)
			want := map[string]int32{"aes": 18, "rc4": 23}[service]
			if tk := ma.creds.tickets[ma.service.String()]; tk == nil || tk.tkt.EncPart.EType != want {
				t.Fatalf("service ticket enctype: want %d", want)
			}
		})
	}
}

// TestIKEv1GSSAPISambaAD: IKEv1 Main Mode and Quick Mode with the GSS-API
// method between two engines, with tickets from Samba's KDC, for the
// AES256-only and the RC4-only service account; then a replayed initial
// context token (captured from a successful Main Mode and put into a new
// one) and an initiator whose clock is ten minutes ahead, each refused and
// logged on both sides.
func TestIKEv1GSSAPISambaAD(t *testing.T) {
	r, done := inNetns(t, startAD)
	if done {
		return
	}
	for _, service := range []string{"aes", "rc4"} {
		t.Run(service, func(t *testing.T) {
			ma, mb := r.methods(t, "iked", service, nil)
			p := newV1Pair(t, ma, mb, "aes256-sha1-modp2048")
			var captured []byte
			p.tapA.tap = func(b []byte) []byte {
				if tok := gssToken(b); tok != nil && captured == nil {
					captured = append([]byte(nil), tok...)
				}
				return b
			}
			if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
				t.Fatalf("initiate: %v\n%s\n%s", err, p.logA, p.logB)
			}
			p.established(t)
			if captured == nil {
				t.Fatal("no initial context token captured")
			}
			want := map[string]int32{"aes": 18, "rc4": 23}[service]
			if got := ma.creds.tickets[ma.service.String()].key.KeyType; got != want {
				t.Fatalf("session key enctype %d, want %d", got, want)
			}
			p2 := newV1Pair(t, ma, mb, "aes256-sha1-modp2048")
			p2.tapA.tap = func(b []byte) []byte {
				if gssToken(b) != nil {
					return withGSSToken(t, b, captured)
				}
				return b
			}
			refusedV1(t, p2, "KRB_AP_ERR_REPEAT", "replayed AP-REQ from "+r.principal("iked")+"@"+r.Realm)
		})
	}
	t.Run("clock skew", func(t *testing.T) {
		ma, mb := r.methods(t, "iked", "aes", func(a, b *Options) { f := false; a.ClockResync = &f })
		ma.clockShift.Store(int64(10 * time.Minute))
		p := newV1Pair(t, ma, mb, "aes256-sha1-modp2048")
		refusedV1(t, p, "KRB_AP_ERR_SKEW", "clock skew with "+r.principal("iked")+"@"+r.Realm+" is -10m0s")
	})
}
