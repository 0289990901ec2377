package ike

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/iked/iked/ike/transcript"
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

func transcriptConnection(t *testing.T, tc transcript.Connection) *Connection {
	t.Helper()
	method, err := tc.Method(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &Connection{Name: "recorded", Auth: method, IKEProposals: mustIKE(t, tc.IKEProposals...), ESPProposals: mustESP(t, tc.ESPProposals...),
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
	network, err := transcript.NewNetwork(tr)
	if err != nil {
		t.Fatal(err)
	}
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
	for _, b := range network.Binds() {
		e.AddBind(b)
	}
	if tr.Role == "initiator" {
		go func() { _, _ = e.InitiateNew(context.Background(), conn.Name) }()
	}
	if err := network.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		sas := e.SAs()
		return len(sas) == 1 && sas[0].State == "established" && len(sas[0].Children) == 1
	})
}
