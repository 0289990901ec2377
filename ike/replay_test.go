package ike

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/iked/iked/auth/psk"
	"github.com/iked/iked/ike/transcript"
	"github.com/iked/iked/ike/transport"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
)

// TestReplayTranscripts replays sessions recorded against strongSwan
// (testdata/transcripts, written by the interop suite with
// IKED_RECORD_TRANSCRIPTS=1): with the recorded random seed and the peer's
// recorded datagrams, iked must send exactly the recorded datagrams, byte
// for byte, and end with the SAs established.
func TestReplayTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/transcripts/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in testdata/transcripts (%v)", err)
	}
	for _, f := range files {
		tr, err := transcript.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) { replay(t, tr) })
	}
}

// script is the recorded network: binds take their turn from it.
type script struct {
	mu     sync.Mutex
	cond   *sync.Cond
	msgs   []transcript.Message
	next   int
	failed error
	closed bool
}

func (s *script) done() bool { return s.next >= len(s.msgs) || s.failed != nil }

type replayBind struct {
	s     *script
	local netip.AddrPort
}

func (b *replayBind) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return 0, netip.AddrPort{}, transport.ErrClosed
		}
		if !s.done() {
			m := s.msgs[s.next]
			if m.In && m.Local == b.local.String() {
				s.next++
				s.cond.Broadcast()
				return copy(p, m.Data), netip.MustParseAddrPort(m.Peer), nil
			}
		}
		s.cond.Wait()
	}
}

func (b *replayBind) WriteTo(p []byte, to netip.AddrPort) error {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.cond.Broadcast()
	if s.done() {
		if s.failed == nil {
			s.failed = fmt.Errorf("iked sent a datagram after the transcript ended: %s", describe(p))
		}
		return nil
	}
	m := s.msgs[s.next]
	switch {
	case m.In:
		s.failed = fmt.Errorf("message %d: iked sent %s, but the peer's %s was next", s.next, describe(p), describe(m.Data))
	case m.Local != b.local.String() || m.Peer != to.String():
		s.failed = fmt.Errorf("message %d: iked sent %s->%s, recorded %s->%s", s.next, b.local, to, m.Local, m.Peer)
	case !bytes.Equal(p, m.Data):
		s.failed = fmt.Errorf("message %d differs from the recording:\n got  %s\n want %s", s.next, describe(p), describe(m.Data))
	default:
		s.next++
	}
	return nil
}

func (b *replayBind) LocalAddr() netip.AddrPort { return b.local }

func (b *replayBind) Close() error {
	b.s.mu.Lock()
	b.s.closed = true
	b.s.cond.Broadcast()
	b.s.mu.Unlock()
	return nil
}

// describe summarises a datagram for a failure message.
func describe(p []byte) string {
	q := p
	if len(q) >= 4 && q[0]|q[1]|q[2]|q[3] == 0 {
		q = q[4:]
	}
	h, err := wire.ParseHeader(q)
	if err != nil {
		return fmt.Sprintf("%d octets (%v)", len(p), err)
	}
	return fmt.Sprintf("%s #%d response=%v %d octets %x", exchangeName(h.Exchange), h.MessageID, h.IsResponse(), len(p), p[:min(len(p), 48)])
}

func transcriptConnection(t *testing.T, tc transcript.Connection) *Connection {
	t.Helper()
	secret, err := psk.NewSecret([]byte(tc.PSK))
	if err != nil {
		t.Fatal(err)
	}
	c := &Connection{Name: "recorded", Auth: psk.New(secret), IKEProposals: mustIKE(t, tc.IKEProposals...), ESPProposals: mustESP(t, tc.ESPProposals...),
		LocalTS: mustTS(t, tc.LocalTS...), RemoteTS: mustTS(t, tc.RemoteTS...)}
	c.Local = netip.MustParseAddr(tc.Local)
	c.Remote = netip.MustParseAddrPort(tc.Remote)
	if c.LocalID, err = ParseIdentity(tc.LocalID); err != nil {
		t.Fatal(err)
	}
	if c.RemoteID, err = ParseIdentity(tc.RemoteID); err != nil {
		t.Fatal(err)
	}
	if tc.Mode == "transport" {
		c.Mode = ModeTransport
	}
	return c
}

func replay(t *testing.T, tr *transcript.Transcript) {
	// The recorded seed makes iked draw the same SPIs, nonces, DH keys and
	// IVs as when it ran against the real peer.
	cryptotest.SetGlobalRandom(t, tr.Seed)
	s := &script{msgs: tr.Messages}
	s.cond = sync.NewCond(&s.mu)
	conn := transcriptConnection(t, tr.Connection)
	mem := memory.New()
	fixed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := New(Config{
		Connections: []*Connection{conn}, SADB: sadb.New(mem), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Rand: rand.Reader, Now: func() time.Time { return fixed }, Readers: 1, CookieThreshold: tr.CookieThreshold,
		RetransmitTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, a := range tr.Binds {
		var b transport.Bind = &replayBind{s: s, local: netip.MustParseAddrPort(a)}
		if b.LocalAddr().Port() == natTPort {
			b = transport.WithNonESPMarker(b)
		}
		e.AddBind(b)
	}
	if tr.Role == "initiator" {
		go func() { _, _ = e.Initiate(context.Background(), conn.Name) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	s.mu.Lock()
	for !s.done() && time.Now().Before(deadline) {
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
		s.mu.Lock()
	}
	failed, next := s.failed, s.next
	s.mu.Unlock()
	if failed != nil {
		t.Fatal(failed)
	}
	if next < len(tr.Messages) {
		t.Fatalf("replay stalled at message %d of %d: %s", next, len(tr.Messages), describe(tr.Messages[next].Data))
	}
	waitFor(t, func() bool {
		sas := e.SAs()
		return len(sas) == 1 && sas[0].State == "established" && len(sas[0].Children) == 1
	})
}
