package ikev1

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/iked/iked/ikev1/isakmp"
)

// The GSS-API step's plumbing, with a stand-in mechanism (the real one,
// auth/kerberos, is tested against MIT, racoon and Samba there and in
// interop): tokens in messages 3 and 4, the GSS_IDs in the transforms and
// the HASHes, the wrapped HASHes, a refusal answered in message 4.

// fakeGSS is a GSSProvider whose contexts exchange two tokens and wrap
// with an HMAC under a key both sides share.
type fakeGSS struct {
	name   string // GSSID
	refuse string // acceptor: refuse every initiator with this reason
	mu     sync.Mutex
	ctxs   []*fakeCtx
}

func (f *fakeGSS) PrepareGSS() error { return nil }
func (f *fakeGSS) GSSID(bool) string { return f.name }
func (f *fakeGSS) NewGSSContext(initiator bool, _ netip.AddrPort) (any, error) {
	c := &fakeCtx{f: f, initiator: initiator}
	f.mu.Lock()
	f.ctxs = append(f.ctxs, c)
	f.mu.Unlock()
	return c, nil
}

type fakeCtx struct {
	f           *fakeGSS
	initiator   bool
	done        bool
	peer        string
	sent, recvd []byte
	retried     bool
}

var fakeKey = []byte("the context key")

func (c *fakeCtx) Step(in []byte) ([]byte, error) {
	c.recvd = append(c.recvd, in...)
	var out []byte
	switch {
	case c.initiator && in == nil:
		out = []byte("INIT:" + c.f.name)
	case c.initiator:
		if !bytes.HasPrefix(in, []byte("REP:")) {
			return nil, errors.New("refused by the acceptor: " + string(in))
		}
		c.peer, c.done = strings.TrimPrefix(string(in), "REP:"), true
		return nil, nil
	default:
		if c.f.refuse != "" {
			out = []byte("ERR:" + c.f.refuse)
			c.sent = append(c.sent, out...)
			return out, errors.New("authentication failed: " + c.f.refuse)
		}
		c.peer, c.done = strings.TrimPrefix(string(in), "INIT:"), true
		out = []byte("REP:" + c.f.name)
	}
	c.sent = append(c.sent, out...)
	return out, nil
}

func (c *fakeCtx) Established() bool { return c.done }
func (c *fakeCtx) Sent() []byte      { return c.sent }
func (c *fakeCtx) Received() []byte  { return c.recvd }
func (c *fakeCtx) PeerName() string  { return c.peer }
func (c *fakeCtx) RetryAfter() bool  { c.retried = true; return false }
func (c *fakeCtx) Close()            {}

func (c *fakeCtx) Wrap(msg []byte) ([]byte, error) {
	m := hmac.New(sha256.New, fakeKey)
	m.Write([]byte{boolByte(c.initiator)})
	m.Write(msg)
	return append(m.Sum(nil), msg...), nil
}

func (c *fakeCtx) Unwrap(tok []byte) ([]byte, error) {
	if len(tok) < 32 {
		return nil, errors.New("short token")
	}
	m := hmac.New(sha256.New, fakeKey)
	m.Write([]byte{boolByte(!c.initiator)})
	m.Write(tok[32:])
	if !hmac.Equal(m.Sum(nil), tok[:32]) {
		return nil, errors.New("bad wrap")
	}
	return tok[32:], nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// gssAttr returns the GSS_ID of a message's SA payload, or "".
func gssAttr(pkt []byte) (string, bool) {
	m, err := isakmp.Parse(pkt)
	if err != nil || m.Header.Encrypted() {
		return "", false
	}
	sa, _ := isakmp.Find(m.Payloads, isakmp.PayloadSA).(*isakmp.SA)
	if sa == nil {
		return "", false
	}
	return peerGSSID(&sa.Proposals[0].Transforms[0]), true
}

func TestGSSIDEncoding(t *testing.T) {
	enc := encodeGSSID("host/a.ex@R")
	if hex.EncodeToString(enc) != "68006f00730074002f0061002e006500780040005200" {
		t.Fatalf("UTF-16LE %x", enc)
	}
	for v, want := range map[string]string{
		string(encodeGSSID("hôst/é@R")): "hôst/é@R",
		"host/a.ex@R":                   "host/a.ex@R", // old racoon: Latin-1
		"od\x01":                        "od\x01",      // odd length: Latin-1
	} {
		for _, typ := range []uint16{isakmp.AttrGSSIdentity, attrGSSIDWin2000} {
			tr := &isakmp.Transform{Attributes: []isakmp.Attribute{{Type: typ, Value: []byte(v)}}}
			if got := peerGSSID(tr); got != want {
				t.Errorf("attribute %d %x: %q, want %q", typ, v, got, want)
			}
		}
	}
	if peerGSSID(&isakmp.Transform{}) != "" || peerGSSID(nil) != "" {
		t.Error("a GSS_ID out of nothing")
	}
	if !bytes.Equal(latin1("hôst\u4e2d"), []byte("h\xf4st?")) {
		t.Error("latin1")
	}
	for v, want := range map[string]string{
		hex.EncodeToString(vidGSSAPI):       "621b04bb09882ac1e15935fefa24aeee",
		hex.EncodeToString(vidGSSAPILong):   "ad2c0dd0b9c32083ccba25b8861ec455",
		hex.EncodeToString(vidGSSAPILongNL): "b46d8914f3aaa3f2fedeb7c7db2943ca",
		hex.EncodeToString(vidMSNT5):        "1e2b516905991c7d7c96fcbfb587e461",
	} {
		if v != want {
			t.Errorf("vendor ID %s, want %s", v, want)
		}
	}
	if got := gssVendorName(append(append([]byte(nil), vidMSNT5...), 0, 0, 0, 4)); got != "MS NT5 ISAKMPOAKLEY version 4 (Windows Server 2003)" {
		t.Errorf("Windows 2003's vendor ID: %q", got)
	}
	if gssVendorName(vidGSSAPI) != "GSSAPI" || gssVendorName([]byte("other")) != "" {
		t.Error("vendor names")
	}
}

// gssPair is newPair with fake GSS-API credentials on both sides.
func gssPair(t *testing.T, fa, fb *fakeGSS) *pair {
	return newPair(t, func(ca, cb *Connection, _, _ *Config) { ca.Auth, cb.Auth = fa, fb })
}

func TestGSSMainMode(t *testing.T) {
	for _, c := range []struct {
		name        string
		idA, idB    string
		wantOnWire1 string // GSS_ID in message 1
		wantOnWire2 string // in message 2
	}{
		{"both GSS_IDs", "host/a@R", "host/b@R", "host/a@R", "host/b@R"},
		{"initiator without a GSS_ID", "", "host/b@R", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fa, fb := &fakeGSS{name: c.idA}, &fakeGSS{name: c.idB}
			p := gssPair(t, fa, fb)
			var mu sync.Mutex
			var ids []string
			tap := func(b []byte) bool {
				if id, ok := gssAttr(b); ok {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
				return true
			}
			p.ab.Filter, p.ba.Filter = tap, tap
			if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "both SAs", func() bool {
				return len(p.b.SAs()) == 1 && len(p.b.SAs()[0].Children) == 1
			})
			for _, e := range []*Engine{p.a, p.b} {
				if sa := e.SAs()[0]; sa.Auth != "kerberos" || sa.State != "established" {
					t.Fatalf("%+v", sa)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ids) != 2 || ids[0] != c.wantOnWire1 || ids[1] != c.wantOnWire2 {
				t.Fatalf("GSS_IDs on the wire %q, want %q then %q", ids, c.wantOnWire1, c.wantOnWire2)
			}
			// Each side's hash covered what the other received.
			ia, ib := fa.ctxs[0], fb.ctxs[0]
			if !bytes.Equal(ia.sent, ib.recvd) || !bytes.Equal(ib.sent, ia.recvd) || ia.peer != c.idB || ib.peer != c.idA {
				t.Fatalf("tokens: %q/%q, %q/%q", ia.sent, ib.recvd, ib.sent, ia.recvd)
			}
		})
	}
}

// TestGSSIDInHash: the responder's GSS_ID altered on the wire (same
// length) makes the initiator refuse message 6: the HASHes cover them.
func TestGSSIDInHash(t *testing.T) {
	fa, fb := &fakeGSS{name: "host/a@R"}, &fakeGSS{name: "host/b@R"}
	p := gssPair(t, fa, fb)
	p.ba.Filter = func(b []byte) bool {
		if i := bytes.Index(b, encodeGSSID("host/b@R")); i >= 0 {
			copy(b[i:], encodeGSSID("host/x@R"))
		}
		return true
	}
	if _, err := p.a.Initiate(ctxT(t), "a-b"); err == nil || !strings.Contains(err.Error(), "HASH mismatch") {
		t.Fatalf("err %v, want a HASH mismatch", err)
	}
}

// TestGSSRefusalInMessage4: the acceptor refuses: message 4 carries its
// error token (and KE and nonce, as racoon needs to read it), no
// notification follows, the initiator fails with the acceptor's reason.
func TestGSSRefusalInMessage4(t *testing.T) {
	fa, fb := &fakeGSS{name: "host/a@R"}, &fakeGSS{name: "host/b@R", refuse: "client not allowed"}
	p := gssPair(t, fa, fb)
	var mu sync.Mutex
	var fromB [][]byte
	p.ba.Filter = func(b []byte) bool {
		mu.Lock()
		fromB = append(fromB, b)
		mu.Unlock()
		return true
	}
	_, err := p.a.Initiate(ctxT(t), "a-b")
	if err == nil || !strings.Contains(err.Error(), "refused by the acceptor: ERR:client not allowed") {
		t.Fatalf("err %v", err)
	}
	if !fa.ctxs[0].retried {
		t.Error("the initiator did not ask its context whether to retry")
	}
	waitFor(t, "the responder to drop its SA", func() bool { return len(p.b.SAs()) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(fromB) != 2 {
		t.Fatalf("the responder sent %d messages, want 2 (messages 2 and 4)", len(fromB))
	}
	m, err := isakmp.Parse(fromB[1])
	if err != nil {
		t.Fatal(err)
	}
	g, _ := isakmp.Find(m.Payloads, isakmp.PayloadGSS).(*isakmp.GSS)
	if g == nil || string(g.Token) != "ERR:client not allowed" || isakmp.Find(m.Payloads, isakmp.PayloadKE) == nil || isakmp.Find(m.Payloads, isakmp.PayloadNATD) != nil {
		t.Fatalf("message 4 %+v", m.Payloads)
	}
}
