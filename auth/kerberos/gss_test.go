package kerberos

// Unit tests of the GSS-API mechanism without a KDC: service tickets are
// made locally with gokrb5 from an in-memory keytab (AES256 and RC4-HMAC),
// and iked plays both sides.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

func TestFraming(t *testing.T) {
	tok := frameToken(oidKRB5, tokAPReq, bytes.Repeat([]byte{7}, 300))
	f, err := parseFramed(tok)
	if err != nil || f.tokID != tokAPReq || len(f.body) != 300 || tok[1] != 0x82 {
		t.Fatalf("%v %x %d %x", err, f.tokID, len(f.body), tok[:4])
	}
	ms := frameToken(oidMSKRB5, tokAPRep, nil)
	if f, err := parseFramed(ms); err != nil || !bytes.Equal(f.oid, oidMSKRB5) {
		t.Fatalf("MS OID: %v", err)
	}
	for name, bad := range map[string][]byte{
		"empty":        {},
		"not framed":   {0x05, 0x04},
		"long length":  append([]byte{0x60, 0x84, 0, 0, 0, 1}, oidKRB5...),
		"short":        tok[:len(tok)-1],
		"trailing":     append(append([]byte(nil), tok...), 0),
		"non-minimal":  append([]byte{0x60, 0x81, 0x0d}, append(append([]byte(nil), oidKRB5...), 1, 0)...),
		"other mech":   {0x60, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x03, 0x01, 0x00},
		"no TOK_ID":    append([]byte{0x60, 0x0b}, oidKRB5...),
		"huge":         make([]byte, maxGSSToken+1),
		"zero-len-len": {0x60, 0x80},
	} {
		if _, err := parseFramed(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	flags, err := parseGSSChecksum(gssChecksum(initiatorFlags))
	if err != nil || flags != initiatorFlags {
		t.Fatalf("checksum flags %x %v", flags, err)
	}
	if _, err := parseGSSChecksum(make([]byte, 24)); err == nil {
		t.Error("checksum with Lgth 0 accepted")
	}
}

// gssOffline is an initiator and an acceptor Method with a locally made
// service ticket of one enctype.
type gssOffline struct {
	ma, mb *Method
	tkt    *ticket
}

func newGSSOffline(t testing.TB, enctype int32) *gssOffline {
	t.Helper()
	kt := keytab.New()
	ts := time.Now()
	for _, name := range []string{"host/a.example.test", "host/b.example.test"} {
		if err := kt.AddEntry(name, testRealm, "password of "+name, ts, 5, enctype); err != nil {
			t.Fatal(err)
		}
	}
	b, err := kt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keytab")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	mk := func(principal, service, allowed string) *Method {
		m, err := New(Options{Realm: testRealm, KDCs: []string{"127.0.0.1:1"}, Keytab: path, Principal: principal, Service: service, Allowed: []string{allowed}}, "")
		if err != nil {
			t.Fatal(err)
		}
		m.replays = NewReplayCache()
		return m
	}
	o := &gssOffline{ma: mk("host/a.example.test", "host/b.example.test", "@NONE.TEST"), mb: mk("host/b.example.test", "", "host/a.example.test")}
	now := time.Now().UTC()
	tk, key, err := messages.NewTicket(Principal{"host/a.example.test", testRealm}.krb(), testRealm, Principal{"host/b.example.test", testRealm}.krb(), testRealm,
		types.NewKrbFlags(), kt, enctype, 5, now, now, now.Add(10*time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	o.tkt = &ticket{tkt: tk, key: key, start: now, end: now.Add(10 * time.Hour), renewAt: now.Add(9 * time.Hour)}
	return o
}

func (o *gssOffline) initiator() *GSSContext {
	return &GSSContext{m: o.ma, initiator: true, peerAddr: peerAddr, tkt: o.tkt, peer: o.ma.service, oid: oidKRB5}
}

// establish runs both sides' steps and returns them.
func (o *gssOffline) establish(t *testing.T) (ini, acc *GSSContext, initial []byte) {
	t.Helper()
	ini, acc = o.initiator(), o.mb.NewGSSAcceptor(peerAddr)
	initial, err := ini.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := acc.Step(initial)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ini.Step(rep); err != nil {
		t.Fatal(err)
	}
	if !ini.Established() || !acc.Established() {
		t.Fatal("not established")
	}
	return ini, acc, initial
}

func TestGSSOffline(t *testing.T) {
	for _, c := range []struct {
		name    string
		enctype int32
		rc4     bool
	}{{"aes256", etypeID.AES256_CTS_HMAC_SHA1_96, false}, {"aes128-sha256", etypeID.AES128_CTS_HMAC_SHA256_128, false}, {"rc4", etypeID.RC4_HMAC, true}} {
		t.Run(c.name, func(t *testing.T) {
			o := newGSSOffline(t, c.enctype)
			ini, acc, initial := o.establish(t)
			defer ini.Close()
			defer acc.Close()
			if acc.Peer().String() != "host/a.example.test@"+testRealm || ini.Peer().String() != "host/b.example.test@"+testRealm {
				t.Fatalf("peers %s %s", acc.Peer(), ini.Peer())
			}
			// The tokens each side sent are those the other received:
			// both HASHes are computed over the same octets.
			if !bytes.Equal(ini.Sent(), acc.Received()) || !bytes.Equal(acc.Sent(), ini.Received()) || !bytes.Equal(ini.Sent(), initial) {
				t.Fatal("token lists differ")
			}
			if c.rc4 != (len(acc.acceptorKey.KeyValue) == 0) || c.rc4 != (len(ini.acceptorKey.KeyValue) == 0) {
				t.Fatal("an acceptor subkey must be sent for RFC 4121 contexts only")
			}
			for _, pair := range [][2]*GSSContext{{ini, acc}, {acc, ini}} {
				tok, err := pair[0].Wrap([]byte("HASH"))
				if err != nil {
					t.Fatal(err)
				}
				if c.rc4 != (tok[0] == 0x60) {
					t.Fatalf("token format %x for %s", tok[:2], c.name)
				}
				got, err := pair[1].Unwrap(tok)
				if err != nil || string(got) != "HASH" {
					t.Fatalf("unwrap: %q %v", got, err)
				}
				if _, err := pair[0].Unwrap(tok); err == nil {
					t.Fatal("reflected token accepted")
				}
				for i := range tok {
					bad := append([]byte(nil), tok...)
					bad[i] ^= 0x10
					if got, err := pair[1].Unwrap(bad); err == nil {
						t.Fatalf("token altered at octet %d of %d accepted (%q)", i, len(tok), got)
					}
				}
				for n := range tok {
					_, _ = pair[1].Unwrap(tok[:n]) // never panics
				}
			}
			// The initial token again, to a new acceptor: a replay,
			// answered with a KRB-ERROR token the initiator reads.
			acc2 := o.mb.NewGSSAcceptor(peerAddr)
			errTok, err := acc2.Step(initial)
			var f *auth.Failure
			if !errors.As(err, &f) || !strings.Contains(f.Reason, "KRB_AP_ERR_REPEAT") || len(errTok) == 0 {
				t.Fatalf("replay: %v", err)
			}
			ini2 := o.initiator()
			ini2.sent = [][]byte{initial}
			if _, err := ini2.Step(errTok); err == nil || !strings.Contains(err.Error(), "KRB_AP_ERR_REPEAT") {
				t.Fatalf("initiator reading the error token: %v", err)
			}
			if code, _ := ini2.KerberosError(); code != errorcode.KRB_AP_ERR_REPEAT || ini2.RetryAfter() {
				t.Fatalf("code %d; a replay must not be retried", code)
			}
		})
	}
}

func TestGSSOfflineRefusals(t *testing.T) {
	o := newGSSOffline(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	refusal := func(ini *GSSContext) (*GSSContext, *auth.Failure) {
		t.Helper()
		tok, err := ini.Step(nil)
		if err != nil {
			t.Fatal(err)
		}
		acc := o.mb.NewGSSAcceptor(peerAddr)
		errTok, err := acc.Step(tok)
		var f *auth.Failure
		if !errors.As(err, &f) {
			t.Fatalf("accepted: %v", err)
		}
		if _, err := ini.Step(errTok); err == nil {
			t.Fatal("initiator accepted an error token")
		}
		return acc, f
	}
	// Clock skew: the error token carries the acceptor's clock, and with
	// clock_resync the initiator adopts it for one retry.
	o.ma.clockShift.Store(int64(20 * time.Minute))
	ini := o.initiator()
	acc, f := refusal(ini)
	code, st := ini.KerberosError()
	if code != errorcode.KRB_AP_ERR_SKEW || !strings.Contains(f.Reason, "clock skew with host/a.example.test@EXAMPLE.TEST is -20m0s") {
		t.Fatalf("skew: %d %s", code, f.Reason)
	}
	if d := time.Until(st); d.Abs() > time.Minute {
		t.Fatalf("server time off by %s", d)
	}
	if !ini.RetryAfter() || o.ma.creds.offset(o.ma.service).Round(time.Minute) != -20*time.Minute {
		t.Fatal("no resync after skew")
	}
	if acc.kerberosCode != errorcode.KRB_AP_ERR_SKEW {
		t.Fatalf("acceptor's code %d", acc.kerberosCode)
	}
	// With the offset the same initiator clock now passes.
	ini3, acc3, _ := o.establish(t)
	ini3.Close()
	acc3.Close()
	o.ma.clockShift.Store(0)
	o.ma.creds.setOffset(o.ma.service, 0)

	// Principal not allowed; then a whole other realm.
	o.mb.allowed, _ = ParseAllowed([]string{"host/c.example.test"}, testRealm)
	if _, f := refusal(o.initiator()); !strings.Contains(f.Reason, "client host/a.example.test@EXAMPLE.TEST is not allowed") || !strings.Contains(f.Reason, "KDC_ERR_POLICY") {
		t.Fatal(f.Reason)
	}
	o.mb.allowed, _ = ParseAllowed([]string{"@OTHER.TEST"}, testRealm)
	before := ReadStats().Authentications[Outcome{"responder", "failure", "realm_not_allowed"}]
	refusal(o.initiator())
	if ReadStats().Authentications[Outcome{"responder", "failure", "realm_not_allowed"}] != before+1 {
		t.Fatal("realm refusal not counted as realm_not_allowed")
	}
	o.mb.allowed, _ = ParseAllowed([]string{"host/a.example.test"}, testRealm)

	// A key version the keytab lacks (a rollover on the KDC): BADKEYVER,
	// which an initiator retries once with a fresh ticket.
	o.tkt.tkt.EncPart.KVNO = 6
	ini = o.initiator()
	if _, f := refusal(ini); !strings.Contains(f.Reason, "key version 6") || !strings.Contains(f.Reason, "holds version(s) 5") {
		t.Fatal(f.Reason)
	}
	if code, _ := ini.KerberosError(); code != errorcode.KRB_AP_ERR_BADKEYVER || !ini.RetryAfter() {
		t.Fatalf("BADKEYVER: %d", code)
	}
	o.tkt.tkt.EncPart.KVNO = 5

	// Tokens that are not what they claim.
	acc = o.mb.NewGSSAcceptor(peerAddr)
	if _, err := acc.Step([]byte("garbage")); err == nil || acc.kerberosCode != errorcode.KRB_AP_ERR_MSG_TYPE {
		t.Fatalf("garbage: %v", err)
	}
	ini, _, _ = o.establish(t)
	if _, err := ini.Step([]byte{1}); err == nil {
		t.Fatal("a step after establishment accepted")
	}
}

// TestGSSInitiatorChecksAPRep: an AP-REP made with another key, or
// echoing another time, does not establish the context.
func TestGSSInitiatorChecksAPRep(t *testing.T) {
	o := newGSSOffline(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	ini := o.initiator()
	initial, _ := ini.Step(nil)
	acc := o.mb.NewGSSAcceptor(peerAddr)
	rep, err := acc.Step(initial)
	if err != nil {
		t.Fatal(err)
	}
	// Another acceptor's AP-REP (another session key).
	ini2 := o.initiator()
	if _, err := ini2.Step(nil); err != nil {
		t.Fatal(err)
	}
	ini2.session.KeyValue = bytes.Repeat([]byte{1}, 32)
	if _, err := ini2.Step(rep); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("foreign AP-REP: %v", err)
	}
	ini.cusec++
	if _, err := ini.Step(rep); err == nil || !strings.Contains(err.Error(), "echoes a time") {
		t.Fatalf("AP-REP for another authenticator: %v", err)
	}
}

// FuzzGSSAcceptor feeds arbitrary initial tokens to an acceptor and
// arbitrary Wrap tokens to an established context: refused, never a panic.
func FuzzGSSAcceptor(f *testing.F) {
	if b, err := os.ReadFile(katFile); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, `"token": "`); i >= 0 {
				if tok, err := hex.DecodeString(strings.Trim(line[i+10:], `",`)); err == nil {
					f.Add(tok)
				}
			}
		}
	}
	f.Add(frameToken(oidKRB5, tokAPReq, []byte{0x6e, 0x03, 0x30, 0x01, 0x00}))
	f.Add(frameToken(oidKRB5, tokWrapV1, make([]byte, 40)))
	f.Add(cfxHeader(cfxSealed, 0, 5, 1))
	o := newGSSOffline(f, etypeID.AES256_CTS_HMAC_SHA1_96)
	ini, acc := o.initiator(), o.mb.NewGSSAcceptor(peerAddr)
	tok, _ := ini.Step(nil)
	rep, _ := acc.Step(tok)
	if _, err := ini.Step(rep); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = o.mb.NewGSSAcceptor(peerAddr).Step(b)
		_, _ = acc.Unwrap(b)
		_, _ = ini.Unwrap(b)
		c := o.initiator()
		c.sent = [][]byte{tok}
		c.session, c.ctime, c.cusec = ini.session, ini.ctime, ini.cusec
		_, _ = c.Step(b)
	})
}

// TestShortCiphertextRefused: gokrb5's decryption panics on ciphertext
// shorter than its checksum; an AP-REQ whose ticket or authenticator is
// that short is refused before it gets there, by both methods.
func TestShortCiphertextRefused(t *testing.T) {
	o := newGSSOffline(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	for _, part := range []string{"ticket", "authenticator"} {
		for n := 0; n < 30; n++ {
			ini := o.initiator()
			tok, err := ini.Step(nil)
			if err != nil {
				t.Fatal(err)
			}
			f, _ := parseFramed(tok)
			var req messages.APReq
			if err := req.Unmarshal(f.body); err != nil {
				t.Fatal(err)
			}
			if part == "ticket" {
				req.Ticket.EncPart.Cipher = req.Ticket.EncPart.Cipher[:n]
			} else {
				req.EncryptedAuthenticator.Cipher = req.EncryptedAuthenticator.Cipher[:n]
			}
			der, err := req.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.mb.NewGSSAcceptor(peerAddr).Step(frameToken(oidKRB5, tokAPReq, der)); err == nil {
				t.Fatalf("%s of %d octets accepted", part, n)
			}
			if _, apErr := o.mb.checkAPReq(&req, peerAddr, true); apErr == nil {
				t.Fatalf("IKEv2 method: %s of %d octets accepted", part, n)
			}
		}
	}
}

// TestNewGSSContextNeverFetches: the IKEv1 engine's initiator context
// comes from the ticket cache only (the engine holds a lock); without a
// cached ticket it fails at once, naming the service.
func TestNewGSSContextNeverFetches(t *testing.T) {
	o := newGSSOffline(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	if _, err := o.ma.NewGSSContext(true, peerAddr); err == nil || !strings.Contains(err.Error(), "no valid ticket for host/b.example.test@EXAMPLE.TEST") {
		t.Fatalf("err %v", err)
	}
	o.ma.creds.tickets[o.ma.service.String()] = o.tkt
	c, err := o.ma.NewGSSContext(true, peerAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.(*GSSContext).Step(nil); err != nil {
		t.Fatal(err)
	}
}
