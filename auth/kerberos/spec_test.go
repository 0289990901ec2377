package kerberos

// Unit tests of the wire pieces, without a KDC: tickets are made locally
// with gokrb5 from an in-memory keytab.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func TestDeriveKeys(t *testing.T) {
	prf := transform.PRFByID(transform.PRFHMACSHA2_256)
	subkey := bytes.Repeat([]byte{0x42}, 32)
	ki, kr, err := DeriveKeys(prf, subkey, 0x0102030405060708, 0x1112131415161718)
	if err != nil {
		t.Fatal(err)
	}
	// prf+ written out (RFC 7296 §2.13): T1 = prf(K, S|0x01), T2 = prf(K, T1|S|0x02).
	seed := append([]byte("iked kerberos"), 1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18)
	t1 := hmacSHA256(subkey, seed, []byte{1})
	t2 := hmacSHA256(subkey, t1, seed, []byte{2})
	if !bytes.Equal(ki, t1) || !bytes.Equal(kr, t2) {
		t.Fatalf("Ki/Kr differ from prf+ written out")
	}
	ki2, _, _ := DeriveKeys(prf, subkey, 0x0102030405060708, 0x1112131415161719)
	if bytes.Equal(ki, ki2) {
		t.Fatal("keys do not depend on SPIr")
	}
	octets := []byte("signed octets")
	if !bytes.Equal(MIC(prf, ki, octets), hmacSHA256(ki, octets)) {
		t.Fatal("MIC is not prf(Ki, octets)")
	}
	if !checkMIC(prf, ki, octets, hmacSHA256(ki, octets)) || checkMIC(prf, kr, octets, hmacSHA256(ki, octets)) {
		t.Fatal("checkMIC")
	}
	if _, _, err := DeriveKeys(prf, nil, 1, 2); err == nil {
		t.Fatal("empty subkey accepted")
	}
	if _, _, err := DeriveKeys(nil, subkey, 1, 2); err == nil {
		t.Fatal("nil PRF accepted")
	}
}

func TestErrorNotify(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	n := ErrorNotify(errorcode.KRB_AP_ERR_BADKEYVER, now)
	if n.Code != NotifyError || !n.Code.IsError() || !bytes.Equal(n.Data, []byte{0, 0, 0, 44}) {
		t.Fatalf("BADKEYVER notify %d %x", n.Code, n.Data)
	}
	code, st, err := ParseErrorNotify(n)
	if err != nil || code != 44 || !st.IsZero() {
		t.Fatalf("parse: %d %v %v", code, st, err)
	}
	n = ErrorNotify(errorcode.KRB_AP_ERR_SKEW, now)
	if len(n.Data) != 12 || binary.BigEndian.Uint64(n.Data[4:]) != uint64(now.UnixMicro()) {
		t.Fatalf("SKEW notify %x", n.Data)
	}
	if code, st, err = ParseErrorNotify(n); err != nil || code != 37 || !st.Equal(now) {
		t.Fatalf("parse skew: %d %v %v", code, st, err)
	}
	for _, bad := range []*wire.Notify{{Code: NotifyError, Data: []byte{1, 2}}, {Code: NotifyError, Data: make([]byte, 13)}, {Code: 24, Data: make([]byte, 4)}, nil} {
		if _, _, err := ParseErrorNotify(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	if NotifySupported.IsError() || NotifySupported < 40960 || NotifyError < 8192 || NotifyError > 16383 || AuthMethod < wire.AuthPrivateUseMin {
		t.Fatal("numbers outside the private-use ranges")
	}
	for code, name := range map[int32]string{37: "KRB_AP_ERR_SKEW", 44: "KRB_AP_ERR_BADKEYVER", 32: "KRB_AP_ERR_TKT_EXPIRED", 9999: "KRB_ERROR_9999"} {
		if got := ErrorName(code); got != name {
			t.Errorf("ErrorName(%d) = %q, want %q", code, got, name)
		}
	}
}

func TestReplayCache(t *testing.T) {
	c := NewReplayCache()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	skew := 5 * time.Minute
	k := newReplayKey("host/a@R", now, 17, []byte("ciphertext"))
	if !c.insert(k, now, now, skew) {
		t.Fatal("first insert refused")
	}
	if c.insert(k, now, now.Add(time.Minute), skew) {
		t.Fatal("replay accepted")
	}
	// Same client and timestamp, another authenticator: not a replay.
	if !c.insert(newReplayKey("host/a@R", now, 17, []byte("other")), now, now, skew) {
		t.Fatal("distinct authenticator refused")
	}
	// Another microsecond or client: not a replay either.
	if !c.insert(newReplayKey("host/a@R", now, 18, []byte("ciphertext")), now, now, skew) || !c.insert(newReplayKey("host/b@R", now, 17, []byte("ciphertext")), now, now, skew) {
		t.Fatal("distinct key refused")
	}
	// Past the skew window the entry is forgotten (the authenticator would
	// be refused for skew anyway).
	later := now.Add(skew + time.Second)
	if !c.insert(newReplayKey("host/c@R", later, 0, nil), later, later, skew) || c.Len() != 1 {
		t.Fatalf("expired entries kept: %d", c.Len())
	}
}

func TestAllowed(t *testing.T) {
	a, err := ParseAllowed([]string{"host/a.example.test", "host/x@OTHER.TEST", "@TRUSTED.TEST"}, "EXAMPLE.TEST")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[Principal]bool{
		{"host/a.example.test", "EXAMPLE.TEST"}: true,
		{"host/b.example.test", "EXAMPLE.TEST"}: false,
		{"host/a.example.test", "OTHER.TEST"}:   false,
		{"host/x", "OTHER.TEST"}:                true,
		{"anyone/at.all", "TRUSTED.TEST"}:       true,
		{"HOST/a.example.test", "EXAMPLE.TEST"}: false, // principals are case-sensitive
	} {
		if a.Allows(p) != want {
			t.Errorf("Allows(%s) = %v", p, !want)
		}
	}
	if !a.hasRealm("OTHER.TEST") || a.hasRealm("NOPE.TEST") {
		t.Error("hasRealm")
	}
	if a.String() != "@TRUSTED.TEST, host/a.example.test@EXAMPLE.TEST, host/x@OTHER.TEST" {
		t.Errorf("String %q", a.String())
	}
	for _, bad := range [][]string{nil, {"@"}, {"a@b@c"}, {"host/a"}, {"/x@R"}} {
		realm := "EXAMPLE.TEST"
		if len(bad) == 1 && bad[0] == "host/a" {
			realm = ""
		}
		if _, err := ParseAllowed(bad, realm); err == nil {
			t.Errorf("ParseAllowed(%q) accepted", bad)
		}
	}
}

func TestNames(t *testing.T) {
	p := Principal{"host/a.example.test", "EXAMPLE.TEST"}
	for _, c := range []struct {
		id   wire.ID
		want bool
	}{
		{wire.ID{IDType: wire.IDFQDN, Data: []byte("a.example.test")}, true},
		{wire.ID{IDType: wire.IDFQDN, Data: []byte("A.Example.Test")}, true},
		{wire.ID{IDType: wire.IDFQDN, Data: []byte("b.example.test")}, false},
		{wire.ID{IDType: wire.IDKeyID, Data: []byte("host/a.example.test@EXAMPLE.TEST")}, true},
		{wire.ID{IDType: wire.IDRFC822Addr, Data: []byte("host/a.example.test@EXAMPLE.TEST")}, true},
		{wire.ID{IDType: wire.IDKeyID, Data: []byte("host/a.example.test")}, false},
		{wire.ID{IDType: wire.IDIPv4Addr, Data: []byte{127, 0, 0, 1}}, false},
	} {
		if names(&c.id, p) != c.want {
			t.Errorf("names(%s) = %v", describeID(&c.id), !c.want)
		}
	}
	if names(&wire.ID{IDType: wire.IDFQDN, Data: []byte("x")}, Principal{"user", "R"}) {
		t.Error("FQDN matched a non-host principal")
	}
}

// offline is an initiator and a responder method sharing a locally made
// service ticket: the whole exchange without a KDC.
type offline struct {
	ma, mb *Method
	tkt    *ticket
}

func newOffline(t *testing.T) *offline {
	t.Helper()
	dir := t.TempDir()
	kt := keytab.New()
	ts := time.Now()
	for _, e := range []struct {
		name string
		kvno uint8
	}{{"host/a.example.test", 1}, {"host/b.example.test", 3}} {
		if err := kt.AddEntry(e.name, testRealm, "password of "+e.name, ts, e.kvno, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
			t.Fatal(err)
		}
	}
	b, err := kt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keytab")
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
	o := &offline{ma: mk("host/a.example.test", "host/b.example.test", "@NONE.TEST"), mb: mk("host/b.example.test", "", "host/a.example.test")}
	now := time.Now().UTC()
	cname := Principal{"host/a.example.test", testRealm}.krb()
	sname := Principal{"host/b.example.test", testRealm}.krb()
	tk, key, err := messages.NewTicket(cname, testRealm, sname, testRealm, types.NewKrbFlags(), kt, etypeID.AES256_CTS_HMAC_SHA1_96, 3, now, now, now.Add(10*time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	o.tkt = &ticket{tkt: tk, key: key, start: now, end: now.Add(10 * time.Hour), renewAt: now.Add(9 * time.Hour)}
	return o
}

var (
	offPRF = transform.PRFByID(transform.PRFHMACSHA2_256)
	idA    = &wire.ID{IDType: wire.IDFQDN, Data: []byte("a.example.test")}
	idB    = &wire.ID{Responder: true, IDType: wire.IDFQDN, Data: []byte("b.example.test")}
)

// handshake drives the four calls of auth.Session; proof, when set,
// replaces the initiator's payloads.
func (o *offline) handshake(t *testing.T, spir uint64, proof func([]wire.Payload) []wire.Payload) ([]wire.Payload, error) {
	t.Helper()
	pi := &auth.Params{Initiator: true, PRF: offPRF, SPIi: 1, SPIr: spir}
	pr := &auth.Params{PRF: offPRF, SPIi: 1, SPIr: spir}
	si := &session{m: o.ma, params: pi, tkt: o.tkt}
	srAny, err := o.mb.NewSession(pr)
	if err != nil {
		t.Fatal(err)
	}
	sr := srAny.(*session)
	defer si.Close()
	defer sr.Close()
	out, err := si.Prove([]byte("octets-i"), sr.SAInitPayloads())
	if err != nil {
		t.Fatal(err)
	}
	if proof != nil {
		out = proof(out)
	}
	req := append([]wire.Payload{idA}, out...)
	if err := sr.Verify([]byte("octets-i"), req); err != nil {
		return req, err
	}
	resp, err := sr.Prove([]byte("octets-r"), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := si.Verify([]byte("octets-r"), append([]wire.Payload{idB}, resp...)); err != nil {
		t.Fatalf("initiator refused the responder: %v", err)
	}
	if err := si.Verify([]byte("octets-x"), append([]wire.Payload{idB}, resp...)); err == nil {
		t.Fatal("initiator accepted AUTH over other octets")
	}
	return req, nil
}

func failureCode(t *testing.T, err error) int32 {
	t.Helper()
	var f *auth.Failure
	if !errors.As(err, &f) {
		t.Fatalf("not a *auth.Failure: %v", err)
	}
	for _, n := range f.Notifies {
		if code, _, err := ParseErrorNotify(n); err == nil {
			return code
		}
	}
	return 0
}

func TestOfflineHandshakeAndReplay(t *testing.T) {
	o := newOffline(t)
	req, err := o.handshake(t, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same AP-REQ again, in another IKE SA: refused by the replay
	// cache before AUTH is even looked at.
	cert := req[1].(*wire.Cert)
	_, err = o.handshake(t, 3, func(out []wire.Payload) []wire.Payload { return append([]wire.Payload{cert}, out[1:]...) })
	if code := failureCode(t, err); code != errorcode.KRB_AP_ERR_REPEAT {
		t.Fatalf("replay: code %d (%v)", code, err)
	}
	// A tampered AUTH: refused without a Kerberos code.
	_, err = o.handshake(t, 4, func(out []wire.Payload) []wire.Payload {
		a := *out[1].(*wire.Auth)
		a.Data = append([]byte(nil), a.Data...)
		a.Data[0] ^= 1
		return []wire.Payload{out[0], &a}
	})
	if code := failureCode(t, err); code != 0 || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("tampered AUTH: %d %v", code, err)
	}
	// No token at all.
	_, err = o.handshake(t, 5, func(out []wire.Payload) []wire.Payload { return out[1:] })
	if err == nil || !strings.Contains(err.Error(), "no Kerberos token") {
		t.Fatalf("missing token: %v", err)
	}
}

func TestOfflineRefusals(t *testing.T) {
	o := newOffline(t)
	o.ma.clockShift.Store(int64(6 * time.Minute))
	_, err := o.handshake(t, 2, nil)
	if code := failureCode(t, err); code != errorcode.KRB_AP_ERR_SKEW {
		t.Fatalf("skew: %d %v", code, err)
	}
	o.ma.clockShift.Store(0)
	o.tkt.tkt.EncPart.KVNO = 2 // pretend the KDC used a key version the keytab lacks
	_, err = o.handshake(t, 3, nil)
	if code := failureCode(t, err); code != errorcode.KRB_AP_ERR_BADKEYVER {
		t.Fatalf("kvno: %d %v", code, err)
	}
	o.tkt.tkt.EncPart.KVNO = 3
	o.mb.allowed, _ = ParseAllowed([]string{"@OTHER.TEST"}, testRealm)
	_, err = o.handshake(t, 4, nil)
	if code := failureCode(t, err); code != errorcode.KDC_ERR_POLICY {
		t.Fatalf("policy: %d %v", code, err)
	}
}

// TestRetryAfter: which codes make the initiator retry.
func TestRetryAfter(t *testing.T) {
	o := newOffline(t)
	s := &session{m: o.ma, params: &auth.Params{Initiator: true}}
	now := time.Now()
	for code, want := range map[int32]bool{
		errorcode.KRB_AP_ERR_TKT_EXPIRED: true, errorcode.KRB_AP_ERR_BADKEYVER: true, errorcode.KRB_AP_ERR_MODIFIED: true,
		errorcode.KRB_AP_ERR_SKEW: true, errorcode.KRB_AP_ERR_REPEAT: false, errorcode.KDC_ERR_POLICY: false, errorcode.KRB_AP_ERR_NOT_US: false,
	} {
		if got := s.RetryAfter([]*wire.Notify{{Code: wire.NotifyAuthenticationFailed}, ErrorNotify(code, now.Add(time.Hour))}); got != want {
			t.Errorf("RetryAfter(%s) = %v", ErrorName(code), got)
		}
	}
	if off := o.ma.creds.offset(o.ma.service); off < 59*time.Minute || off > 61*time.Minute {
		t.Errorf("offset after skew %s, want about 1h", off)
	}
	if s.RetryAfter([]*wire.Notify{{Code: wire.NotifyAuthenticationFailed}}) {
		t.Error("retry without a Kerberos code")
	}
}

func TestOptions(t *testing.T) {
	o := newOffline(t)
	kt := o.mb.keytab.path
	for _, c := range []struct {
		opt  Options
		want string
	}{
		{Options{KDCs: []string{"k"}, Keytab: kt, Allowed: []string{"@R"}}, "realm is required"},
		{Options{Realm: "R", Keytab: kt, Allowed: []string{"@R"}}, "no KDC for realm R"},
		{Options{Realm: "R", KDCs: []string{"k"}, Allowed: []string{"@R"}}, "keytab is required"},
		{Options{Realm: "R", KDCs: []string{"k"}, Keytab: kt + ".missing", Allowed: []string{"@R"}}, "no such file"},
		{Options{Realm: "R", KDCs: []string{"k"}, Keytab: kt, Principal: "p"}, "at least one principal"},
		{Options{Realm: "R", KDCs: []string{"k"}, Keytab: kt, Principal: "p", Allowed: []string{"@R"}, Service: "host/x@S"}, "cross-realm"},
		{Options{Realm: "R", KDCs: []string{"k"}, Keytab: kt, Principal: "p", Allowed: []string{"@R"}, MaxSkew: -1}, "max_skew"},
	} {
		_, err := New(c.opt, "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.opt, err, c.want)
		}
	}
	m, err := New(Options{Realm: "R", KDCs: []string{"k"}, Keytab: filepath.Base(kt), Allowed: []string{"@R"}}, filepath.Dir(kt))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.principal.Name, "host/") || m.localServices[0] != m.principal || m.maxSkew != DefaultMaxSkew {
		t.Fatalf("defaults: %+v", m.principal)
	}
	if _, err := m.NewSession(&auth.Params{Initiator: true}); err == nil || !strings.Contains(err.Error(), "option service") {
		t.Fatalf("initiating without service: %v", err)
	}
	if got := fmtMethod(m); strings.Contains(got, "keytab") {
		t.Fatal(got)
	}
}

func fmtMethod(m *Method) string {
	var b strings.Builder
	m.Format(&fmtState{&b}, 'v')
	return b.String()
}

type fmtState struct{ b *strings.Builder }

func (f *fmtState) Write(p []byte) (int, error) { return f.b.Write(p) }
func (*fmtState) Width() (int, bool)            { return 0, false }
func (*fmtState) Precision() (int, bool)        { return 0, false }
func (*fmtState) Flag(int) bool                 { return false }
