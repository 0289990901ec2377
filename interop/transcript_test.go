package interop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/cryptotest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/transcript"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// transcriptDir is where the ike package's replay test reads transcripts.
const transcriptDir = "../ike/testdata/transcripts"

// TestTranscripts records one PSK session against charon per iked role,
// with iked's randomness seeded, and replays it offline at once: the replay
// must reproduce every datagram iked sent, which proves the transcript pins
// iked's wire behaviour. With IKED_RECORD_TRANSCRIPTS=1 it also stores the
// recordings where ike's TestReplayTranscripts replays them without a peer.
func TestTranscripts(t *testing.T) {
	requireCharon(t)
	for i, role := range []string{"responder", "initiator"} {
		t.Run(role, func(t *testing.T) {
			var tr *transcript.Transcript
			t.Run("record", func(t *testing.T) { tr = recordSession(t, role, uint64(i+1)) })
			if tr == nil || t.Failed() {
				return
			}
			t.Run("replay", func(t *testing.T) { replaySession(t, tr) })
			if os.Getenv("IKED_RECORD_TRANSCRIPTS") != "" && !t.Failed() {
				path := filepath.Join(transcriptDir, "charon-psk-"+role+".json")
				if err := tr.Save(path); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", path)
			}
		})
	}
}

// listenUDPIn opens a UDP socket inside ns: a socket belongs to the
// network namespace it was created in, so one thread switches to ns for
// the socket() call and back. If it cannot switch back, the thread stays
// locked and dies with its goroutine instead of serving others.
func listenUDPIn(ns *netns, addr netip.AddrPort) (*transport.UDP, error) {
	type result struct {
		u   *transport.UDP
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns.name)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns %s: %w", ns.name, err)}
			return
		}
		u, err := transport.ListenUDP(addr)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{u, err}
	}()
	r := <-ch
	return r.u, r.err
}

// engineConnection builds iked's connection from the transcript's strings.
func engineConnection(t *testing.T, tc transcript.Connection) (*ike.Connection, error) {
	m, err := tc.Method(t.TempDir())
	if err != nil {
		return nil, err
	}
	return engineConnectionAuth(tc, m)
}

// engineConnectionAuth builds iked's connection from the transcript's
// strings with the given authentication method.
func engineConnectionAuth(tc transcript.Connection, method auth.Method) (*ike.Connection, error) {
	var err error
	c := &ike.Connection{Name: "recorded", Auth: method, Local: netip.MustParseAddr(tc.Local), Remote: netip.MustParseAddrPort(tc.Remote)}
	if c.LocalID, err = ike.ParseIdentity(tc.LocalID); err != nil {
		return nil, err
	}
	if c.RemoteID, err = ike.ParseIdentity(tc.RemoteID); err != nil {
		return nil, err
	}
	for _, s := range tc.IKEProposals {
		p, err := transform.ParseIKEProposal(s)
		if err != nil {
			return nil, err
		}
		c.IKEProposals = append(c.IKEProposals, p)
	}
	for _, s := range tc.ESPProposals {
		p, err := transform.ParseESPProposal(s)
		if err != nil {
			return nil, err
		}
		c.ESPProposals = append(c.ESPProposals, p)
	}
	for _, lists := range []struct {
		in  []string
		out *[]wire.TrafficSelector
	}{{tc.LocalTS, &c.LocalTS}, {tc.RemoteTS, &c.RemoteTS}} {
		for _, s := range lists.in {
			ts, err := ike.ParseTrafficSelector(s)
			if err != nil {
				return nil, err
			}
			*lists.out = append(*lists.out, ts)
		}
	}
	return c, nil
}

// newRecordingEngineConn is the engine configuration both the recording and
// the replay use (they must draw randomness identically), with the
// connection built by the caller.
func newRecordingEngineConn(t *testing.T, tr *transcript.Transcript, conn *ike.Connection) (*ike.Engine, *memory.Backend) {
	t.Helper()
	mem := memory.New()
	e, err := ike.New(ike.Config{
		Connections: []*ike.Connection{conn}, SADB: sadb.New(mem), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CookieThreshold: tr.CookieThreshold, Readers: 1, RetransmitTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, mem
}

func recordSession(t *testing.T, role string, seed uint64) *transcript.Transcript {
	cryptotest.SetGlobalRandom(t, seed)
	topo := newTopology(t)
	iAddr, cAddr := topo.IkedAddr.String(), topo.CharonAddr.String()
	tr := &transcript.Transcript{
		Description: "PSK session with charon, iked " + role + "; recorded by interop TestTranscripts",
		Peer:        "strongSwan 5.9.8 (Debian 12, kernel-libipsec)", Role: role, Seed: seed, CookieThreshold: -1,
		Connection: transcript.Connection{
			Local: iAddr, Remote: cAddr + ":500", LocalID: ikedID, RemoteID: charonID, PSK: interopPSK,
			IKEProposals: []string{"aes256gcm16-prfsha256-x25519"}, ESPProposals: []string{"aes256gcm16"},
			LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}, Mode: "tunnel",
		},
	}
	c := startCharon(t, topo.S, charonOptions{Conns: []charonConn{{
		Name: connName, Child: childName, LocalAddr: cAddr, RemoteAddr: iAddr, LocalID: charonID, RemoteID: ikedID, PSK: interopPSK,
		IKEProposals: []string{"aes256gcm16-prfsha256-x25519"}, ESPProposals: []string{"aes256gcm16"},
		LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet},
	}}})
	conn, err := engineConnection(t, tr.Connection)
	if err != nil {
		t.Fatal(err)
	}
	return recordWith(t, topo, c, tr, conn)
}

// recordWith runs the session of tr (iked's role tr.Role) against the
// running charon c with iked's connection conn, recording what iked's
// binds carry, and returns the recording once both sides hold the SAs.
// The caller has seeded iked's randomness (cryptotest.SetGlobalRandom).
func recordWith(t *testing.T, topo *topology, c *charon, tr *transcript.Transcript, conn *ike.Connection) *transcript.Transcript {
	t.Helper()
	iAddr, role := topo.IkedAddr, tr.Role
	e, _ := newRecordingEngineConn(t, tr, conn)
	rec := transcript.NewRecorder(tr)
	for _, port := range []uint16{500, 4500} {
		u, err := listenUDPIn(topo.I, netip.AddrPortFrom(iAddr, port))
		if err != nil {
			t.Fatal(err)
		}
		b := rec.Wrap(u)
		if port == 4500 {
			b = transport.WithNonESPMarker(b)
		}
		e.AddBind(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if role == "initiator" {
		if _, err := e.InitiateNew(ctx, "recorded"); err != nil {
			t.Fatalf("iked initiate: %v\ncharon log:\n%s", err, c.Log())
		}
	} else if out, err := c.Initiate(childName, connName); err != nil {
		t.Fatalf("charon initiate: %v\n%s\ncharon log:\n%s", err, out, c.Log())
	}
	// The session is complete once both sides hold the SAs (charon has then
	// received iked's last message).
	waitFor(t, 10*time.Second, func() string {
		sas := e.SAs()
		if len(sas) != 1 || sas[0].State != "established" || len(sas[0].Children) != 1 {
			return fmt.Sprintf("iked SAs: %+v", sas)
		}
		cs, err := c.ListSAs()
		if err != nil || len(cs) != 1 || cs[0].State != "ESTABLISHED" || len(cs[0].Children) != 1 || cs[0].Children[0].State != "INSTALLED" {
			return fmt.Sprintf("charon SAs: %+v %v", cs, err)
		}
		return ""
	})
	snapshot := *tr
	snapshot.Messages = append([]transcript.Message(nil), tr.Messages...)
	snapshot.Binds = append([]string(nil), tr.Binds...)
	if len(snapshot.Messages) < 4 {
		t.Fatalf("recorded only %d datagrams", len(snapshot.Messages))
	}
	return &snapshot
}

func replaySession(t *testing.T, tr *transcript.Transcript) {
	replayWith(t, tr, func() (*ike.Connection, error) { return engineConnection(t, tr.Connection) })
}

// replayWith replays tr offline with iked's connection from conn, built
// after the randomness is seeded as during the recording.
func replayWith(t *testing.T, tr *transcript.Transcript, conn func() (*ike.Connection, error)) {
	t.Helper()
	cryptotest.SetGlobalRandom(t, tr.Seed)
	network, err := transcript.NewNetwork(tr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := conn()
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newRecordingEngineConn(t, tr, c)
	for _, b := range network.Binds() {
		e.AddBind(b)
	}
	if tr.Role == "initiator" {
		go func() { _, _ = e.InitiateNew(context.Background(), "recorded") }()
	}
	if err := network.Wait(hangGuard); err != nil {
		t.Fatal(err)
	}
}
