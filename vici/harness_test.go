package vici

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iked/iked/auth/psk"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/internal/enginetest"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
)

// A test pair: two real engines joined by an in-memory pipe, each with a
// memory data plane; a VICI server on the first.

type pair struct {
	a, b     *ike.Engine
	dbA, dbB *sadb.DB
	memA     *memory.Backend
	srv      *Server
	path     string
	loaded   []*ike.Connection // what the server handed over with SetConnections
	tap      *LogTap
}

var addrA, addrB = enginetest.AddrA, enginetest.AddrB

func testConn(t *testing.T, name string, local, remote netip.AddrPort, lid, rid string, initiate bool) *ike.Connection {
	t.Helper()
	s, err := psk.NewSecret([]byte("vici test pre-shared key"))
	if err != nil {
		t.Fatal(err)
	}
	ikeP, _ := transform.ParseIKEProposal("aes256gcm16-prfsha256-x25519")
	espP, _ := transform.ParseESPProposal("aes256gcm16")
	l, _ := ike.ParseIdentity(lid)
	r, _ := ike.ParseIdentity(rid)
	c := &ike.Connection{Name: name, Local: local.Addr(), LocalID: l, RemoteID: r, Auth: psk.New(s),
		IKEProposals: []transform.Proposal{ikeP}, ESPProposals: []transform.Proposal{espP},
		RekeyTime: time.Hour, IKERekeyTime: 4 * time.Hour}
	if initiate {
		c.Remote = remote
	}
	ts, _ := ike.ParseTrafficSelector("10.1.0.0/24")
	ts2, _ := ike.ParseTrafficSelector("10.2.0.0/24")
	if lid == "fqdn:a.example" {
		c.LocalTS, c.RemoteTS = []wire.TrafficSelector{ts}, []wire.TrafficSelector{ts2}
	} else {
		c.LocalTS, c.RemoteTS = []wire.TrafficSelector{ts2}, []wire.TrafficSelector{ts}
	}
	return c
}

// newPair starts the pair and the server; edit adjusts the server's
// configuration first.
func newPair(t *testing.T, edit ...func(*Config)) *pair {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	tap := NewLogTap(slog.DiscardHandler)
	e := enginetest.NewPair(t, enginetest.Options{Edit: func(ca, cb *ike.Connection, cfgA, cfgB *ike.Config) {
		*ca = *testConn(t, "site", addrA, addrB, "fqdn:a.example", "fqdn:b.example", true)
		*cb = *testConn(t, "site", addrB, addrA, "fqdn:b.example", "fqdn:a.example", false)
		cfgA.Logger, cfgB.Logger = slog.New(tap.Handler()), quiet
		cfgA.RetransmitTimeout, cfgB.RetransmitTimeout, cfgA.Readers, cfgB.Readers = 0, 0, 0, 0
	}})
	p := &pair{a: e.A, b: e.B, dbA: e.DBA, dbB: e.DBB, memA: e.MemA, tap: tap}
	dir, err := os.MkdirTemp("", "vici-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p.path = filepath.Join(dir, "charon.vici")
	base := p.a.Connections()
	cfg := Config{Path: p.path, Engine: p.a, Version: "test", Started: time.Now(), Plugins: []string{"ike", "vici"},
		FileConnections: func() []string { return []string{"site"} },
		SetConnections: func(cs []*ike.Connection) error {
			p.loaded = cs
			return p.a.SetConnections(append(append([]*ike.Connection(nil), base...), cs...))
		},
		Reload: func() error { return nil }, Tap: p.tap, Logger: quiet}
	for _, e := range edit {
		e(&cfg)
	}
	p.srv, err = Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go p.srv.Serve()
	t.Cleanup(func() { p.srv.Close() })
	return p
}

// testClient is a minimal VICI client over the package's own codec: the
// server's decoder is tested with govici and swanctl elsewhere.
type testClient struct {
	t    *testing.T
	conn net.Conn
}

func (p *pair) dial(t *testing.T) *testClient {
	t.Helper()
	c, err := net.Dial("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testClient{t: t, conn: c}
}

func (c *testClient) write(typ byte, name string, m *Message) {
	c.t.Helper()
	b := []byte{typ}
	b = appendName(b, name)
	if m != nil {
		b = m.Encode(b)
	}
	c.raw(b)
}

func (c *testClient) raw(b []byte) {
	c.t.Helper()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := c.conn.Write(append(hdr[:], b...)); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next packet: type, name (events), message.
func (c *testClient) read(timeout time.Duration) (byte, string, *Message, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var hdr [4]byte
	if _, err := io.ReadFull(c.conn, hdr[:]); err != nil {
		return 0, "", nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c.conn, b); err != nil {
		return 0, "", nil, err
	}
	typ, rest := b[0], b[1:]
	name := ""
	if typ == pktEvent {
		name, rest = string(rest[1:1+rest[0]]), rest[1+rest[0]:]
	}
	m, err := DecodeMessage(rest)
	if err != nil {
		c.t.Fatalf("server sent an undecodable message: %v", err)
	}
	return typ, name, m, nil
}

func (c *testClient) register(event string) {
	c.t.Helper()
	c.write(pktEventRegister, event, nil)
	typ, _, _, err := c.read(10 * time.Second)
	if err != nil || typ != pktEventConfirm {
		c.t.Fatalf("register %s: type %d, %v", event, typ, err)
	}
}

// command sends a request and returns the streamed events and the response.
func (c *testClient) command(name string, req *Message) ([]*Message, *Message) {
	c.t.Helper()
	if req == nil {
		req = NewMessage()
	}
	c.write(pktCmdRequest, name, req)
	var events []*Message
	for {
		typ, _, m, err := c.read(60 * time.Second)
		if err != nil {
			c.t.Fatalf("%s: %v", name, err)
		}
		switch typ {
		case pktEvent:
			events = append(events, m)
		case pktCmdResponse:
			return events, m
		default:
			c.t.Fatalf("%s: packet type %d", name, typ)
		}
	}
}

// waitEvent reads until an event named name arrives.
func (c *testClient) waitEvent(name string) *Message {
	c.t.Helper()
	for {
		typ, n, m, err := c.read(30 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", name, err)
		}
		if typ == pktEvent && n == name {
			return m
		}
	}
}

func str(m *Message, path ...string) string {
	for _, k := range path[:len(path)-1] {
		s, ok := m.Sub(k)
		if !ok {
			return ""
		}
		m = s
	}
	v, _ := m.Get(path[len(path)-1])
	return v
}
