package psk

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

const testSecret = "correct-horse-battery-staple"

// signedOctets stands in for InitiatorSignedOctets / ResponderSignedOctets;
// the PSK method treats it as opaque.
var signedOctets = []byte("message-octets|nonce-r|prf(SK_pi, IDi')")

func newMethod(t *testing.T, secret string) *Method {
	t.Helper()
	s, err := NewSecret([]byte(secret))
	if err != nil {
		t.Fatalf("NewSecret(%d octets): %v", len(secret), err)
	}
	return New(s)
}

func newSession(t *testing.T, m auth.Method, prfID uint16, initiator bool) auth.Session {
	t.Helper()
	prf := transform.PRFByID(prfID)
	if prf == nil {
		t.Fatalf("PRFByID(%d) = nil", prfID)
	}
	s, err := m.NewSession(&auth.Params{Initiator: initiator, PRF: prf, SPIi: 1, SPIr: 2})
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// expectedMIC computes prf(prf(secret, "Key Pad for IKEv2"), octets)
// (RFC 7296 §2.15) without using package transform.
func expectedMIC(h func() hash.Hash, secret, octets []byte) []byte {
	k := hmac.New(h, secret)
	k.Write([]byte("Key Pad for IKEv2"))
	mac := hmac.New(h, k.Sum(nil))
	mac.Write(octets)
	return mac.Sum(nil)
}

func proveAuth(t *testing.T, s auth.Session, octets []byte) *wire.Auth {
	t.Helper()
	ps, err := s.Prove(octets, nil)
	if err != nil {
		t.Fatalf("Prove: %v", err)
	}
	if len(ps) == 0 {
		t.Fatal("Prove returned no payloads")
	}
	a, ok := ps[len(ps)-1].(*wire.Auth)
	if !ok {
		t.Fatalf("last payload of Prove is %T, want *wire.Auth", ps[len(ps)-1])
	}
	return a
}

func TestProveMatchesRFC7296(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   uint16
		h    func() hash.Hash
	}{
		{"PRF_HMAC_SHA2_256", transform.PRFHMACSHA2_256, sha256.New},
		{"PRF_HMAC_SHA2_384", transform.PRFHMACSHA2_384, sha512.New384},
		{"PRF_HMAC_SHA2_512", transform.PRFHMACSHA2_512, sha512.New},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, newMethod(t, testSecret), tc.id, true)
			a := proveAuth(t, s, signedOctets)
			if a.Method != wire.AuthSharedKeyMIC {
				t.Errorf("AUTH method = %d, want %d (shared key MIC)", a.Method, wire.AuthSharedKeyMIC)
			}
			want := expectedMIC(tc.h, []byte(testSecret), signedOctets)
			if !bytes.Equal(a.Data, want) {
				t.Errorf("AUTH data = %x\nwant        %x", a.Data, want)
			}
			// The MIC depends on the signed octets.
			other := proveAuth(t, s, append([]byte{0}, signedOctets...))
			if bytes.Equal(other.Data, a.Data) {
				t.Error("AUTH data does not depend on the signed octets")
			}
		})
	}
}

func TestVerifyPeer(t *testing.T) {
	initiator := newSession(t, newMethod(t, testSecret), transform.PRFHMACSHA2_256, true)
	responder := newSession(t, newMethod(t, testSecret), transform.PRFHMACSHA2_256, false)

	a := proveAuth(t, initiator, signedOctets)
	peer := []wire.Payload{&wire.ID{}, a}
	if err := responder.Verify(signedOctets, peer); err != nil {
		t.Fatalf("Verify of the peer's correct MIC: %v", err)
	}

	// Over other octets the same MIC is wrong.
	if err := responder.Verify([]byte("other octets"), peer); err == nil {
		t.Error("Verify accepted a MIC over different signed octets")
	}
}

func TestVerifyRejectsOtherSecret(t *testing.T) {
	attacker := newSession(t, newMethod(t, "not-the-shared-secret"), transform.PRFHMACSHA2_256, true)
	responder := newSession(t, newMethod(t, testSecret), transform.PRFHMACSHA2_256, false)

	err := responder.Verify(signedOctets, []wire.Payload{proveAuth(t, attacker, signedOctets)})
	var f *auth.Failure
	if !errors.As(err, &f) {
		t.Fatalf("Verify with another secret's MIC = %v (%T), want *auth.Failure", err, err)
	}
	if !strings.Contains(f.Reason, "keys differ") {
		t.Errorf("Failure.Reason = %q, want it to say the keys differ", f.Reason)
	}
}

func TestVerifyRejectsMalformedAuth(t *testing.T) {
	responder := newSession(t, newMethod(t, testSecret), transform.PRFHMACSHA2_256, false)
	good := expectedMIC(sha256.New, []byte(testSecret), signedOctets)

	for _, tc := range []struct {
		name string
		peer []wire.Payload
	}{
		{"no payloads", nil},
		{"no AUTH", []wire.Payload{&wire.ID{}, &wire.Nonce{}}},
		{"RSA signature", []wire.Payload{&wire.Auth{Method: wire.AuthRSASig, Data: good}}},
		{"ECDSA", []wire.Payload{&wire.Auth{Method: wire.AuthECDSA256, Data: good}}},
		{"empty MIC", []wire.Payload{&wire.Auth{Method: wire.AuthSharedKeyMIC}}},
		{"truncated MIC", []wire.Payload{&wire.Auth{Method: wire.AuthSharedKeyMIC, Data: good[:16]}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := responder.Verify(signedOctets, tc.peer)
			var f *auth.Failure
			if !errors.As(err, &f) {
				t.Fatalf("Verify = %v (%T), want *auth.Failure", err, err)
			}
		})
	}

	// Sanity: the same data with the right method is accepted, so the
	// rejections above are due to the method, not the MIC.
	if err := responder.Verify(signedOctets, []wire.Payload{&wire.Auth{Method: wire.AuthSharedKeyMIC, Data: good}}); err != nil {
		t.Fatalf("Verify of a correct MIC: %v", err)
	}
}

// TestProveNeedsPRF: an initiator's session exists before IKE_SA_INIT has
// negotiated a PRF, but cannot prove or verify until the engine sets it.
func TestProveNeedsPRF(t *testing.T) {
	p := &auth.Params{}
	s, err := newMethod(t, testSecret).NewSession(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prove(signedOctets, nil); err == nil {
		t.Fatal("Prove without a PRF succeeded")
	}
	if err := s.Verify(signedOctets, []wire.Payload{&wire.Auth{Method: wire.AuthSharedKeyMIC, Data: make([]byte, 32)}}); err == nil {
		t.Fatal("Verify without a PRF succeeded")
	}
	p.PRF = transform.PRFByID(transform.PRFHMACSHA2_256)
	if a := proveAuth(t, s, signedOctets); !bytes.Equal(a.Data, expectedMIC(sha256.New, []byte(testSecret), signedOctets)) {
		t.Fatal("MIC wrong once the PRF is set")
	}
}

func TestNewSecretMinLength(t *testing.T) {
	for _, n := range []int{0, 1, 7} {
		if _, err := NewSecret(bytes.Repeat([]byte("x"), n)); err == nil {
			t.Errorf("NewSecret accepted a %d-octet secret", n)
		}
	}
	if _, err := NewSecret([]byte("12345678")); err != nil {
		t.Errorf("NewSecret refused an 8-octet secret: %v", err)
	}
	if _, err := FromOptions(Options{Secret: "short"}, ""); err == nil {
		t.Error("FromOptions accepted a 5-octet inline secret")
	}
}

func TestNewSecretCopies(t *testing.T) {
	b := []byte(testSecret)
	s, err := NewSecret(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	if string(s.b) != testSecret {
		t.Fatalf("Secret aliases the caller's slice: %q", s.b)
	}
}

func TestSecretWipe(t *testing.T) {
	s, err := NewSecret([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	buf := s.b
	s.Wipe()
	if s.b != nil {
		t.Error("Wipe left the secret slice set")
	}
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Errorf("Wipe left secret bytes behind: %q", buf)
	}
}

// sameSecret reports whether m holds secret, by the MIC it produces.
func sameSecret(t *testing.T, m *Method, secret string) bool {
	t.Helper()
	a := proveAuth(t, newSession(t, m, transform.PRFHMACSHA2_256, true), signedOctets)
	return bytes.Equal(a.Data, expectedMIC(sha256.New, []byte(secret), signedOctets))
}

func TestFromOptions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("lf.key", testSecret+"\n")
	write("crlf.key", testSecret+"\r\n")
	write("bare.key", testSecret)
	write("short.key", "abc\n")
	abs := write("abs.key", testSecret+"\n")

	t.Run("inline", func(t *testing.T) {
		m, err := FromOptions(Options{Secret: testSecret}, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !sameSecret(t, m, testSecret) {
			t.Error("inline secret not used as given")
		}
	})
	for _, name := range []string{"lf.key", "crlf.key", "bare.key"} {
		t.Run("file relative "+name, func(t *testing.T) {
			m, err := FromOptions(Options{File: name}, dir)
			if err != nil {
				t.Fatal(err)
			}
			if !sameSecret(t, m, testSecret) {
				t.Error("file secret differs from the file content without its trailing newline")
			}
		})
	}
	t.Run("file absolute", func(t *testing.T) {
		m, err := FromOptions(Options{File: abs}, "/nonexistent-base-dir")
		if err != nil {
			t.Fatal(err)
		}
		if !sameSecret(t, m, testSecret) {
			t.Error("absolute file secret not used")
		}
	})
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"both", Options{Secret: testSecret, File: "lf.key"}},
		{"neither", Options{}},
		{"missing file", Options{File: "no-such.key"}},
		{"short file", Options{File: "short.key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := FromOptions(tc.o, dir); err == nil {
				t.Fatalf("FromOptions(%q, %q) = %p, want an error", tc.o.File, dir, m)
			}
		})
	}
	t.Run("missing file is fs.ErrNotExist", func(t *testing.T) {
		_, err := FromOptions(Options{File: "no-such.key"}, dir)
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %v does not wrap os.ErrNotExist", err)
		}
	})
}

var formats = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"}

// leaks reports the formats under which v reveals secret, as text or hex.
func leaks(v any, secret string) []string {
	var bad []string
	for _, f := range formats {
		out := fmt.Sprintf(f, v)
		lower := strings.ToLower(out)
		if strings.Contains(out, secret) || // %s, %q
			strings.Contains(lower, fmt.Sprintf("%x", secret)) || // %x, %X
			strings.Contains(out, strings.Trim(fmt.Sprint([]byte(secret)), "[]")) || // %v: "99 111 ..."
			strings.Contains(lower, fmt.Sprintf("%#x", secret[0])+", "+fmt.Sprintf("%#x", secret[1])) { // %#v: "0x63, 0x6f"
			bad = append(bad, f+" -> "+out)
		}
	}
	return bad
}

func TestSecretNeverPrints(t *testing.T) {
	s, err := NewSecret([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{s, &s} {
		if bad := leaks(v, testSecret); len(bad) > 0 {
			t.Errorf("%T reveals the secret:\n%s", v, strings.Join(bad, "\n"))
		}
	}
	if got := fmt.Sprintf("%v %+v %#v %s", s, s, s, s); strings.Contains(got, testSecret) {
		t.Errorf("Secret formatted as %q", got)
	}
}

// A *Method ends up in logs and error messages (e.g. %v of a connection's
// configuration); it must not print its secret either.
func TestMethodNeverPrints(t *testing.T) {
	m := newMethod(t, testSecret)
	if bad := leaks(m, testSecret); len(bad) > 0 {
		t.Errorf("*Method reveals the secret:\n%s", strings.Join(bad, "\n"))
	}
	if bad := leaks(*m, testSecret); len(bad) > 0 {
		t.Errorf("Method reveals the secret:\n%s", strings.Join(bad, "\n"))
	}
}

func TestRegistered(t *testing.T) {
	f, ok := auth.Lookup("psk")
	if !ok {
		t.Fatalf("auth.Lookup(\"psk\") not found; registered: %v", auth.Names())
	}
	decode := func(into any) error {
		o, ok := into.(*Options)
		if !ok {
			return fmt.Errorf("decode into %T, want *psk.Options", into)
		}
		o.Secret = testSecret
		return nil
	}
	m, err := f(decode, t.TempDir())
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	if m.Name() != "psk" {
		t.Errorf("Name() = %q, want psk", m.Name())
	}
	pm, ok := m.(*Method)
	if !ok {
		t.Fatalf("factory built %T, want *psk.Method", m)
	}
	if !sameSecret(t, pm, testSecret) {
		t.Error("factory-built method does not use the decoded secret")
	}

	// The factory reads files relative to baseDir too.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err = f(func(into any) error { into.(*Options).File = "k"; return nil }, dir)
	if err != nil {
		t.Fatalf("factory with file: %v", err)
	}
	if !sameSecret(t, m.(*Method), testSecret) {
		t.Error("factory-built method from file does not use the file's secret")
	}

	// Decode and option errors come back from the factory.
	decodeErr := errors.New("psk.yaml:3: unknown field \"secrt\"")
	if _, err := f(func(any) error { return decodeErr }, ""); !errors.Is(err, decodeErr) {
		t.Errorf("factory with failing decode = %v, want %v", err, decodeErr)
	}
	if _, err := f(func(any) error { return nil }, ""); err == nil {
		t.Error("factory with empty options succeeded")
	}
}

func TestAccepts(t *testing.T) {
	m := newMethod(t, testSecret)
	for am := wire.AuthMethod(0); am < 255; am++ {
		if got, want := m.Accepts(am), am == wire.AuthSharedKeyMIC; got != want {
			t.Errorf("Accepts(%d) = %v, want %v", am, got, want)
		}
	}
}

func TestSAInitPayloadsNone(t *testing.T) {
	s := newSession(t, newMethod(t, testSecret), transform.PRFHMACSHA2_256, false)
	if ps := s.SAInitPayloads(); len(ps) != 0 {
		t.Errorf("SAInitPayloads = %v, want none", ps)
	}
}

func TestCloseZeroesKey(t *testing.T) {
	s := newSession(t, newMethod(t, testSecret), transform.PRFHMACSHA2_512, true)
	ss, ok := s.(*session)
	if !ok {
		t.Fatalf("session is %T", s)
	}
	proveAuth(t, s, signedOctets) // the key is derived at first use
	k := hmac.New(sha512.New, []byte(testSecret))
	k.Write([]byte("Key Pad for IKEv2"))
	if !bytes.Equal(ss.key, k.Sum(nil)) {
		t.Fatalf("session key = %x, want prf(secret, \"Key Pad for IKEv2\")", ss.key)
	}
	key := ss.key
	s.Close()
	if !bytes.Equal(key, make([]byte, len(key))) {
		t.Errorf("Close left key bytes: %x", key)
	}
	// The method's secret survives: a new session still works.
	s2 := newSession(t, newMethod(t, testSecret), transform.PRFHMACSHA2_256, true)
	if a := proveAuth(t, s2, signedOctets); !bytes.Equal(a.Data, expectedMIC(sha256.New, []byte(testSecret), signedOctets)) {
		t.Error("MIC wrong after another session was closed")
	}
}
