package ike

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transport"
)

// TestProposalMatrix negotiates every IKE transform and DH group iked
// implements, and every ESP proposal kind.
func TestProposalMatrix(t *testing.T) {
	cases := []struct{ ike, esp, wantIKE, wantESP string }{
		{"aes128-sha256-modp2048", "aes128-sha256", "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048", "AES_CBC-128/HMAC_SHA2_256_128/NO_EXT_SEQ"},
		{"aes192-sha384-ecp256", "aes192-sha384", "AES_CBC-192/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_256", "AES_CBC-192/HMAC_SHA2_384_192/NO_EXT_SEQ"},
		{"aes256-sha512-ecp384", "aes256-sha512-esn", "AES_CBC-256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/ECP_384", "AES_CBC-256/HMAC_SHA2_512_256/EXT_SEQ"},
		{"aes128gcm16-prfsha384-ecp521", "aes128gcm16", "AES_GCM_16-128/PRF_HMAC_SHA2_384/ECP_521", "AES_GCM_16-128/NO_EXT_SEQ"},
		{"chacha20poly1305-prfsha512-x25519", "chacha20poly1305", "CHACHA20_POLY1305/PRF_HMAC_SHA2_512/CURVE_25519", "CHACHA20_POLY1305/NO_EXT_SEQ"},
	}
	for _, c := range cases {
		t.Run(c.ike, func(t *testing.T) {
			p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
				ca.IKEProposals, cb.IKEProposals = mustIKE(t, c.ike), mustIKE(t, c.ike)
				ca.ESPProposals, cb.ESPProposals = mustESP(t, c.esp), mustESP(t, c.esp)
			})
			infos, err := p.a.InitiateNew(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			ib := p.b.SAs()[0]
			if infos[0].Algorithms != c.wantIKE || ib.Algorithms != c.wantIKE {
				t.Fatalf("IKE algorithms %q / %q, want %q", infos[0].Algorithms, ib.Algorithms, c.wantIKE)
			}
			if len(infos[0].Children) != 1 || infos[0].Children[0].Algorithms != c.wantESP || ib.Children[0].Algorithms != c.wantESP {
				t.Fatalf("ESP algorithms: %+v / %+v, want %q", infos[0].Children, ib.Children, c.wantESP)
			}
		})
	}
}

// TestInvalidKE: the initiator's first group is not the responder's
// preference; the responder asks for its own and the initiator retries.
func TestInvalidKE(t *testing.T) {
	var inits atomic.Int32
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.IKEProposals = mustIKE(t, "aes256gcm16-prfsha256-x25519-ecp256")
		cb.IKEProposals = mustIKE(t, "aes256gcm16-prfsha256-ecp256-x25519")
	})
	p.ba.Filter = func(b []byte) bool {
		if h, err := wire.ParseHeader(b); err == nil && h.Exchange == wire.IKE_SA_INIT {
			inits.Add(1)
		}
		return true
	}
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if got := infos[0].Algorithms; got != "AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_256" {
		t.Fatalf("algorithms %q", got)
	}
	if inits.Load() != 2 {
		t.Fatalf("initiator sent %d IKE_SA_INIT requests, want 2", inits.Load())
	}
	if p.b.Stats().NotifiesSent["INVALID_KE_PAYLOAD"] != 1 {
		t.Fatalf("responder did not count INVALID_KE_PAYLOAD: %v", p.b.Stats().NotifiesSent)
	}
}

func TestNoProposalChosen(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.IKEProposals = mustIKE(t, "aes128-sha256-modp2048")
		cb.IKEProposals = mustIKE(t, "aes256gcm16-prfsha256-x25519")
	})
	_, err := p.a.InitiateNew(ctxT(t), "a-b")
	var ne *notifyError
	if !errors.As(err, &ne) || ne.code != wire.NotifyNoProposalChosen {
		t.Fatalf("err = %v, want NO_PROPOSAL_CHOSEN", err)
	}
	if p.b.Stats().HandshakesFailed["no_proposal_chosen"] != 1 || p.a.Stats().HandshakesFailed["no_proposal_chosen"] != 1 {
		t.Fatalf("failures not counted: %v / %v", p.a.Stats().HandshakesFailed, p.b.Stats().HandshakesFailed)
	}
	if len(p.a.SAs())+len(p.b.SAs()) != 0 {
		t.Fatal("SAs left behind")
	}
}

func TestWrongPSK(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) { cb.Auth = mustPSK(t, "another secret entirely") })
	_, err := p.a.InitiateNew(ctxT(t), "a-b")
	var ne *notifyError
	if !errors.As(err, &ne) || ne.code != wire.NotifyAuthenticationFailed {
		t.Fatalf("err = %v, want AUTHENTICATION_FAILED", err)
	}
	if p.b.Stats().HandshakesFailed["authentication_failed"] != 1 || p.b.Stats().NotifiesSent["AUTHENTICATION_FAILED"] != 1 {
		t.Fatalf("responder stats: %+v", p.b.Stats())
	}
	waitFor(t, func() bool { return len(p.a.SAs())+len(p.b.SAs()) == 0 })
	if len(p.memA.SAs())+len(p.memB.SAs()) != 0 {
		t.Fatal("Child SAs installed despite failed authentication")
	}
}

func TestWrongRemoteID(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.RemoteID = Identity{Type: wire.IDFQDN, Value: []byte("impostor.example")}
	})
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err == nil {
		t.Fatal("handshake succeeded with the wrong remote identity")
	}
}

func TestCookie(t *testing.T) {
	var inits atomic.Int32
	p := newPair(t, func(_, _ *Connection, _, cfgB *Config) { cfgB.CookieThreshold = 0 })
	p.ba.Filter = func(b []byte) bool {
		if h, err := wire.ParseHeader(b); err == nil && h.Exchange == wire.IKE_SA_INIT {
			inits.Add(1)
		}
		return true
	}
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	if inits.Load() != 2 || p.b.Stats().NotifiesSent["COOKIE"] != 1 {
		t.Fatalf("IKE_SA_INIT sent %d times, cookies %d", inits.Load(), p.b.Stats().NotifiesSent["COOKIE"])
	}
}

func TestTransportMode(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) { ca.Mode, cb.Mode = ModeTransport, ModeTransport })
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	c := infos[0].Children[0]
	if c.Mode != "transport" || p.b.SAs()[0].Children[0].Mode != "transport" {
		t.Fatalf("mode %q", c.Mode)
	}
	if fmt.Sprint(c.LocalTS) != "[192.0.2.1/32]" || fmt.Sprint(c.RemoteTS) != "[192.0.2.2/32]" {
		t.Fatalf("selectors %v === %v", c.LocalTS, c.RemoteTS)
	}
}

// TestNarrowing: the initiator asks for two /16s, the responder allows a
// /24 within each; the Child SA carries the intersection (§2.9).
func TestNarrowing(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.LocalTS, ca.RemoteTS = mustTS(t, "10.1.0.0/16"), mustTS(t, "10.2.0.0/16")
		cb.LocalTS, cb.RemoteTS = mustTS(t, "10.2.3.0/24[tcp]"), mustTS(t, "10.1.0.0/24")
	})
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	c := infos[0].Children[0]
	if fmt.Sprint(c.LocalTS) != "[10.1.0.0/24]" || fmt.Sprint(c.RemoteTS) != "[10.2.3.0/24[tcp]]" {
		t.Fatalf("narrowed to %v === %v", c.LocalTS, c.RemoteTS)
	}
}

func TestTSUnacceptable(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.LocalTS, ca.RemoteTS = mustTS(t, "10.1.0.0/16"), mustTS(t, "10.2.0.0/16")
		cb.LocalTS, cb.RemoteTS = mustTS(t, "10.9.0.0/16"), mustTS(t, "10.1.0.0/16")
	})
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	// §1.2: the IKE SA stands, without a Child SA.
	if infos[0].State != "established" || len(infos[0].Children) != 0 || len(p.memA.SAs()) != 0 {
		t.Fatalf("unexpected result %+v", infos[0])
	}
	if p.b.Stats().NotifiesSent["TS_UNACCEPTABLE"] != 1 {
		t.Fatalf("notifies %v", p.b.Stats().NotifiesSent)
	}
}

// TestLostResponses: the first IKE_SA_INIT and IKE_AUTH responses are lost;
// the initiator retransmits and the responder answers from its cache,
// processing nothing twice.
func TestLostResponses(t *testing.T) {
	p := newPair(t)
	var dropped atomic.Int32
	seen := map[wire.ExchangeType]bool{}
	p.bb.Filter = func(b []byte) bool {
		h, err := wire.ParseHeader(b)
		if err != nil || seen[h.Exchange] {
			return true
		}
		seen[h.Exchange] = true
		dropped.Add(1)
		return false
	}
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	sa, sb := p.a.Stats(), p.b.Stats()
	if dropped.Load() != 2 || sa.Retransmissions != 2 || sb.RetransmitsAnswered != 2 {
		t.Fatalf("dropped %d, retransmissions %d, answered from cache %d", dropped.Load(), sa.Retransmissions, sb.RetransmitsAnswered)
	}
	if len(p.b.SAs()) != 1 || len(p.memB.SAs()) != 2 || sb.HandshakesCompleted["responder"] != 1 {
		t.Fatalf("responder processed a retransmission twice: %d SAs, %d Child SAs", len(p.b.SAs()), len(p.memB.SAs()))
	}
}

// TestCorruptedICV: an IKE_AUTH whose ICV is damaged is dropped and counted;
// the retransmission (undamaged) then completes the handshake.
func TestCorruptedICV(t *testing.T) {
	p := newPair(t)
	var corrupted atomic.Bool
	p.ba.Filter = func(b []byte) bool {
		if h, err := wire.ParseHeader(b); err == nil && h.Exchange == wire.IKE_AUTH && !corrupted.Swap(true) {
			b[len(b)-1] ^= 0x55
		}
		return true
	}
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	if got := p.b.Stats().PacketsDropped[DropIntegrity]; got != 1 {
		t.Fatalf("integrity drops = %d", got)
	}
}

func TestLivenessAndChildDelete(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	sa := p.a.allSAs()[0]
	// An empty INFORMATIONAL is a liveness check (§1.4); it is answered.
	resp, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
		return sa.sealMessage(wire.INFORMATIONAL, id, false, nil)
	})
	if err != nil || len(resp.payloads) != 0 {
		t.Fatalf("liveness: %v %v", resp, err)
	}
	// Deleting the Child SA: the peer answers with the Delete of its half.
	sa.mu.Lock()
	child := sa.children[0]
	sa.mu.Unlock()
	spi := []byte{byte(child.inbound.SPI >> 24), byte(child.inbound.SPI >> 16), byte(child.inbound.SPI >> 8), byte(child.inbound.SPI)}
	resp, err = sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
		return sa.sealMessage(wire.INFORMATIONAL, id, false, []wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPISize: 4, SPIs: [][]byte{spi}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := wire.Find(resp.payloads, wire.PayloadDelete).(*wire.Delete)
	out := child.outbound.SPI
	if d == nil || len(d.SPIs) != 1 || !bytes.Equal(d.SPIs[0], []byte{byte(out >> 24), byte(out >> 16), byte(out >> 8), byte(out)}) {
		t.Fatalf("delete response %+v", resp.payloads)
	}
	if len(p.memB.SAs()) != 0 || len(p.b.SAs()[0].Children) != 0 {
		t.Fatal("responder kept the Child SA")
	}
}

func mustTS(t testing.TB, s ...string) []wire.TrafficSelector {
	t.Helper()
	var out []wire.TrafficSelector
	for _, x := range s {
		ts, err := ParseTrafficSelector(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ts)
	}
	return out
}

// TestForceEncapFloats: with forced encapsulation the initiator moves to
// the NAT-T port after IKE_SA_INIT (§2.23), the responder follows it, and
// the Child SAs are marked for ESP-in-UDP on port 4500.
func TestForceEncapFloats(t *testing.T) {
	p := newPair(t, func(ca, _ *Connection, _, _ *Config) { ca.ForceEncap = true })
	na, nb := transport.Pipe(netip.AddrPortFrom(addrA.Addr(), 4500), netip.AddrPortFrom(addrB.Addr(), 4500))
	p.a.AddBind(transport.WithNonESPMarker(na))
	p.b.AddBind(transport.WithNonESPMarker(nb))
	var onMain, onNATT atomic.Int32
	p.ba.Filter = func(b []byte) bool { onMain.Add(1); return true }
	na.Filter = func(b []byte) bool { onNATT.Add(1); return true }
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if onMain.Load() != 1 || onNATT.Load() != 1 {
		t.Fatalf("initiator sent %d messages on port 500 and %d on 4500, want 1 and 1", onMain.Load(), onNATT.Load())
	}
	if !p.b.SAs()[0].NATRemote || infos[0].RemoteAddr != "192.0.2.2:4500" || p.b.SAs()[0].RemoteAddr != "192.0.2.1:4500" {
		t.Fatalf("addresses after the float: %+v / %+v", infos[0], p.b.SAs()[0])
	}
	for _, s := range append(p.memA.SAs(), p.memB.SAs()...) {
		if s.EncapSrcPort != 4500 || s.EncapDstPort != 4500 {
			t.Fatalf("Child SA %08x not UDP-encapsulated: %d->%d", s.SPI, s.EncapSrcPort, s.EncapDstPort)
		}
	}
}

// TestESPInUDP: ESP goes in UDP when IKE is on the NAT-T port and a NAT
// was detected on either side or encapsulation is forced — not merely
// because IKE is on port 4500 (a MOBIKE peer moves there without a NAT,
// RFC 4555 §3.5, and keeps ESP plain).
func TestESPInUDP(t *testing.T) {
	e := &Engine{}
	for _, c := range []struct {
		encap, natLocal, natRemote, forcedConn, forcedEngine, want bool
	}{
		{encap: true, want: false},
		{encap: true, natLocal: true, want: true},
		{encap: true, natRemote: true, want: true},
		{encap: true, forcedConn: true, want: true},
		{encap: true, forcedEngine: true, want: true},
		{encap: false, natRemote: true, forcedEngine: true, want: false},
	} {
		e.cfg.ForceEncap = c.forcedEngine
		sa := &ikeSA{eng: e, encap: c.encap, natLocal: c.natLocal, natRemote: c.natRemote, conn: &Connection{ForceEncap: c.forcedConn}}
		if got := sa.espInUDP(); got != c.want {
			t.Errorf("%+v: espInUDP = %v", c, got)
		}
	}
}

// TestCriticalPayloadInsideSK: an unknown critical payload inside an
// authentic INFORMATIONAL is answered, protected, with
// UNSUPPORTED_CRITICAL_PAYLOAD naming its type (§2.5); the SA stays up.
func TestCriticalPayloadInsideSK(t *testing.T) {
	p := newPair(t)
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	sa := p.a.allSAs()[0]
	resp, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
		return sa.sealMessage(wire.INFORMATIONAL, id, false, []wire.Payload{&wire.Unknown{T: 211, Critical: true, Data: []byte{7}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	n := wire.FindNotify(resp.payloads, wire.NotifyUnsupportedCriticalPayload)
	if n == nil || len(n.Data) != 1 || n.Data[0] != 211 {
		t.Fatalf("response %+v", resp.payloads)
	}
	if p.b.SAs()[0].State != "established" {
		t.Fatal("responder dropped the SA")
	}
	// A later liveness check still works: message IDs stayed in step.
	if _, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
		return sa.sealMessage(wire.INFORMATIONAL, id, false, nil)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPeerMovesBehindNAT: after the peer's NAT mapping changes (its
// requests arrive from a new port), the responder answers there and its
// Child SAs' encapsulation follows.
func TestPeerMovesBehindNAT(t *testing.T) {
	p := newPair(t, func(ca, _ *Connection, _, _ *Config) { ca.ForceEncap = true })
	na, nb := transport.Pipe(netip.AddrPortFrom(addrA.Addr(), 4500), netip.AddrPortFrom(addrB.Addr(), 4500))
	p.a.AddBind(transport.WithNonESPMarker(na))
	p.b.AddBind(transport.WithNonESPMarker(nb))
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	// A new mapping: the NAT now shows the initiator as port 4999.
	moved := netip.AddrPortFrom(addrA.Addr(), 4999)
	nb2, na2 := transport.Pipe(netip.AddrPortFrom(addrB.Addr(), 4500), moved)
	wa2 := transport.WithNonESPMarker(na2)
	p.a.AddBind(wa2)
	p.b.AddBind(transport.WithNonESPMarker(nb2))
	sa := p.a.allSAs()[0]
	sa.mu.Lock()
	sa.bind = wa2
	sa.mu.Unlock()
	if _, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
		return sa.sealMessage(wire.INFORMATIONAL, id, false, nil)
	}); err != nil {
		t.Fatal(err)
	}
	if got := p.b.SAs()[0].RemoteAddr; got != moved.String() {
		t.Fatalf("responder still sends to %s", got)
	}
	for _, s := range p.memB.SAs() {
		if s.Inbound && s.EncapSrcPort != 4999 || !s.Inbound && s.EncapDstPort != 4999 {
			t.Fatalf("Child SA %08x encapsulation not moved: %d -> %d", s.SPI, s.EncapSrcPort, s.EncapDstPort)
		}
	}
}

// TestInitialContact: the initiator restarts (its SAs gone without a
// Delete) and connects again: its INITIAL_CONTACT makes the responder drop
// the stale IKE SA and Child SA at once (§2.4).
func TestInitialContact(t *testing.T) {
	p := newPair(t)
	first, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	// "Restart" A: a new engine with the same configuration and address.
	ba2, bb2 := transport.Pipe(addrA, addrB)
	p.b.AddBind(bb2)
	a2, err := New(Config{Connections: []*Connection{p.connA}, SADB: sadb.New(memory.New()), Logger: p.a.log, CookieThreshold: -1, Readers: 1})
	if err != nil {
		t.Fatal(err)
	}
	a2.AddBind(ba2)
	t.Cleanup(func() { a2.Close() })
	second, err := a2.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(p.b.SAs()) == 1 && len(p.memB.SAs()) == 2 })
	if got := p.b.SAs()[0].SPIi; got != second[0].SPIi || got == first[0].SPIi {
		t.Fatalf("responder kept %s, want the new %s (old %s)", got, second[0].SPIi, first[0].SPIi)
	}
}
