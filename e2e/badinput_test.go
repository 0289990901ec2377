package e2e

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/internal/enginetest"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// tamperBind wraps a real UDP bind so a test can change what is sent or
// received, as a faulty network or a hostile peer would.
type tamperBind struct {
	transport.Bind
	onSend func(b []byte) []byte // returns what to send instead; nil drops
	onRecv func(b []byte) bool   // false drops
}

func (t *tamperBind) WriteTo(b []byte, addr netip.AddrPort) error {
	if t.onSend != nil {
		if b = t.onSend(b); b == nil {
			return nil
		}
	}
	return t.Bind.WriteTo(b, addr)
}

func (t *tamperBind) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := t.Bind.ReadFrom(b)
		if err != nil || t.onRecv == nil || t.onRecv(b[:n]) {
			return n, from, err
		}
	}
}

// client is an in-process iked engine speaking to the daemon over real UDP.
type client struct {
	eng  *ike.Engine
	bind *tamperBind
}

func newClient(t *testing.T, local, remote netip.AddrPort, secret, proposal string) *client {
	t.Helper()
	u, err := transport.ListenUDP(local)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{bind: &tamperBind{Bind: u}}
	c.eng = enginetest.Start(t, ike.Config{
		Connections: []*ike.Connection{{
			Name: "peer", Local: local.Addr(), Remote: remote, LocalID: enginetest.FQDN("alice.example"), RemoteID: enginetest.FQDN("bob.example"),
			Auth: enginetest.PSK(t, secret), IKEProposals: enginetest.IKE(t, proposal), ESPProposals: enginetest.ESP(t, "aes256gcm16"),
		}},
		SADB: sadb.New(memory.New()), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Six retransmissions (15 s in all): the corrupted-ICV case needs
		// two, and a busy machine may answer late.
		RetransmitTimeout: 200 * time.Millisecond, RetransmitTries: 6, Readers: 1,
	}, c.bind)
	return c
}

func (c *client) initiate() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := c.eng.InitiateNew(ctx, "peer")
	return err
}

// rawExchange sends pkt from a fresh socket and returns the answer, or nil
// when none comes within wait.
func rawExchange(t *testing.T, to netip.AddrPort, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	return rawAnswer(rawSend(t, to, pkt), wait)
}

// rawSend sends pkt from a fresh socket, closed when the test ends.
func rawSend(t *testing.T, to netip.AddrPort, pkt []byte) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	return c
}

// rawAnswer returns what c receives within wait, or nil.
func rawAnswer(c *net.UDPConn, wait time.Duration) []byte {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// saInit builds a syntactically valid IKE_SA_INIT request, with extra
// payloads appended.
func saInit(extra ...wire.Payload) []byte {
	ke := make([]byte, 32)
	ke[0] = 9
	m := wire.Message{
		Header: wire.Header{SPIi: 0x1122334455667788, Version: wire.Version, Exchange: wire.IKE_SA_INIT, Flags: wire.FlagInitiator},
		Payloads: append([]wire.Payload{
			&wire.SA{Proposals: []wire.Proposal{{Number: 1, Protocol: wire.ProtoIKE, Transforms: []wire.Transform{
				{Type: wire.TransformENCR, ID: transform.EncrAESGCM16, KeyLength: 256},
				{Type: wire.TransformPRF, ID: transform.PRFHMACSHA2_256},
				{Type: wire.TransformDH, ID: transform.DHCurve25519},
			}}}},
			&wire.KE{Group: transform.DHCurve25519, Data: ke},
			&wire.Nonce{Data: make([]byte, 32)},
		}, extra...),
	}
	return m.Marshal()
}

// TestBadInput sends each kind of bad input to a running daemon, checks the
// answer RFC 7296 prescribes and the metric that counts it, and checks that
// the daemon still serves a good peer afterwards.
func TestBadInput(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), uint16(freePort(t, "127.0.0.3")))
	d := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""))
	dropped := func(reason string) float64 { return d.metric(`iked_packets_dropped_total{reason="` + reason + `"}`) }

	// A dropped packet is counted once the daemon has processed it, which
	// on a busy machine may take a while: the count is waited for, and no
	// answer may have come by then.
	t.Run("truncated header", func(t *testing.T) {
		before := dropped("malformed")
		c := rawSend(t, b, saInit()[:20])
		waitUntil(t, "the truncated header counted as malformed", func() bool { return dropped("malformed") == before+1 })
		if resp := rawAnswer(c, 300*time.Millisecond); resp != nil {
			t.Fatalf("answered a truncated header: %x", resp)
		}
	})

	t.Run("payload length past the end", func(t *testing.T) {
		pkt := saInit()
		// The SA payload's length field (after the 28-octet header) grows past the message.
		binary.BigEndian.PutUint16(pkt[wire.HeaderLen+2:], uint16(len(pkt)))
		before := dropped("malformed")
		// §3.10.1: INVALID_SYNTAX may only be sent encrypted; an unprotected
		// IKE_SA_INIT with a bad length is dropped.
		c := rawSend(t, b, pkt)
		waitUntil(t, "the bad payload length counted as malformed", func() bool { return dropped("malformed") == before+1 })
		if resp := rawAnswer(c, 300*time.Millisecond); resp != nil {
			t.Fatalf("answered: %x", resp)
		}
	})

	t.Run("unknown critical payload", func(t *testing.T) {
		before := d.metric(`iked_notifies_sent_total{type="UNSUPPORTED_CRITICAL_PAYLOAD"}`)
		resp := rawExchange(t, b, saInit(&wire.Unknown{T: 200, Critical: true, Data: []byte{1, 2, 3}}), 30*time.Second)
		if resp == nil {
			t.Fatal("no answer to an unknown critical payload")
		}
		m, err := wire.Parse(resp)
		if err != nil {
			t.Fatal(err)
		}
		n := wire.FindNotify(m.Payloads, wire.NotifyUnsupportedCriticalPayload)
		if n == nil || len(n.Data) != 1 || n.Data[0] != 200 || !m.Header.IsResponse() || m.Header.SPIi != 0x1122334455667788 {
			t.Fatalf("answer %+v", m)
		}
		if d.metric(`iked_notifies_sent_total{type="UNSUPPORTED_CRITICAL_PAYLOAD"}`) != before+1 {
			t.Fatal("not counted")
		}
	})

	t.Run("no common proposal", func(t *testing.T) {
		c := newClient(t, netip.AddrPortFrom(a.Addr(), uint16(freePort(t, "127.0.0.1"))), b, pskSecret, "aes128-sha256-modp2048")
		err := c.initiate()
		if err == nil || !strings.Contains(err.Error(), "NO_PROPOSAL_CHOSEN") {
			t.Fatalf("err = %v", err)
		}
		if d.metric(`iked_handshakes_failed_total{reason="no_proposal_chosen"}`) < 1 {
			t.Fatal("not counted")
		}
	})

	// The remaining cases come from the configured peer address (alice).
	t.Run("wrong PSK", func(t *testing.T) {
		c := newClient(t, a, b, "not the key bob has", "aes256gcm16-prfsha256-x25519")
		err := c.initiate()
		if err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
			t.Fatalf("err = %v", err)
		}
		if d.metric(`iked_handshakes_failed_total{reason="authentication_failed"}`) != 1 {
			t.Fatal("not counted")
		}
		waitUntil(t, "the failed SA to go", func() bool { return len(d.sas()) == 0 })
		if !strings.Contains(d.log.String(), "pre-shared key MIC mismatch") {
			t.Fatalf("no clear log line for the wrong PSK:\n%s", d.log.String())
		}
		if strings.Contains(d.log.String(), "not the key bob has") || strings.Contains(d.log.String(), pskSecret) {
			t.Fatal("a secret reached the log")
		}
	})

	t.Run("corrupted ICV and retransmitted IKE_AUTH", func(t *testing.T) {
		c := newClient(t, a, b, pskSecret, "aes256gcm16-prfsha256-x25519")
		var corrupted, lost atomic.Bool
		c.bind.onSend = func(p []byte) []byte {
			if h, err := wire.ParseHeader(p); err == nil && h.Exchange == wire.IKE_AUTH && !corrupted.Swap(true) {
				// A copy: the engine keeps the original for retransmission.
				p = append([]byte(nil), p...)
				p[len(p)-1] ^= 0xff
			}
			return p
		}
		// Lose the first IKE_AUTH response: the client retransmits, and the
		// daemon must answer from its cache rather than process it twice.
		c.bind.onRecv = func(p []byte) bool {
			if h, err := wire.ParseHeader(p); err == nil && h.Exchange == wire.IKE_AUTH {
				return lost.Swap(true)
			}
			return true
		}
		integrity := dropped("integrity")
		answered := d.metric("iked_retransmits_answered_total")
		if err := c.initiate(); err != nil {
			t.Fatal(err)
		}
		if dropped("integrity") != integrity+1 {
			t.Fatal("corrupted ICV not counted")
		}
		// At least the retransmission after the lost response was answered
		// from the cache; on a busy machine the client may retransmit more
		// (a slow answer), and each is answered from the cache too: the
		// request is processed once, so one handshake completes.
		waitUntil(t, "the retransmitted IKE_AUTH answered from the cache", func() bool {
			return d.metric("iked_retransmits_answered_total") >= answered+1
		})
		if got := d.metric(`iked_handshakes_completed_total{role="responder"}`); got != 1 {
			t.Fatalf("responder completed %v handshakes, want exactly 1", got)
		}
		sas := d.sas()
		if len(sas) != 1 || len(sas[0].Children) != 1 {
			t.Fatalf("daemon SAs after the retransmission: %+v", sas)
		}
	})

	// After all that, the daemon still serves and exits cleanly.
	d.stop()
}
