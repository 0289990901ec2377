// Package enginetest runs IKEv2 engines for the tests of packages outside
// ike/: two engines joined by an in-memory pipe (transport.Pipe), each
// with a memory data plane and its log kept for failure messages, and the
// pre-shared key, proposal and identity values their connections need.
// ike's own in-package tests cannot import it (it imports ike) and keep
// their own pair.
package enginetest

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/auth/psk"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// AddrA and AddrB are the ends of a Pair's pipe unless Options say
// otherwise (TEST-NET-1: nothing real is reached).
var (
	AddrA = netip.MustParseAddrPort("192.0.2.1:500")
	AddrB = netip.MustParseAddrPort("192.0.2.2:500")
)

// Secret is the pre-shared key of a Pair's default connections.
const Secret = "correct horse battery staple"

// Default proposals of a Pair's connections.
const (
	IKEProposal = "aes256gcm16-prfsha256-x25519"
	ESPProposal = "aes256gcm16"
)

// Pair is two engines joined by an in-memory pipe: A's connection "a-b"
// initiates to B, B's "b-a" to A.
type Pair struct {
	A, B *ike.Engine
	// ConnA and ConnB are the connections the engines were started with.
	ConnA, ConnB *ike.Connection
	// BindA and BindB are the pipe's ends (their Filter loses or alters
	// datagrams).
	BindA, BindB *transport.Mem
	// DBA and DBB are the engines' SA databases over MemA and MemB.
	DBA, DBB   *sadb.DB
	MemA, MemB *memory.Backend
	// LogA and LogB hold what each engine logged, unless Options.Edit gave
	// it another Logger.
	LogA, LogB *LogBuf
}

// Options adjust a Pair. The zero value is a PSK pair of fqdn:a.example
// and fqdn:b.example with one IKE and one ESP proposal, no cookies, a
// 200 ms retransmission timeout and one reader each, logging at Info.
type Options struct {
	// AddrA and AddrB replace the default addresses.
	AddrA, AddrB netip.AddrPort
	// Level is the lowest level the engines write to LogA and LogB.
	Level slog.Level
	// Edit changes the connections and configurations before the engines
	// are made (the configurations' Connections are set after it).
	Edit func(connA, connB *ike.Connection, cfgA, cfgB *ike.Config)
}

// NewPair starts two engines over a pipe; they are closed when the test
// ends.
func NewPair(t testing.TB, o Options) *Pair {
	t.Helper()
	addrA, addrB := o.AddrA, o.AddrB
	if !addrA.IsValid() {
		addrA = AddrA
	}
	if !addrB.IsValid() {
		addrB = AddrB
	}
	p := &Pair{MemA: memory.New(), MemB: memory.New(), LogA: &LogBuf{}, LogB: &LogBuf{}}
	p.DBA, p.DBB = sadb.New(p.MemA), sadb.New(p.MemB)
	conn := func(name string, local, remote netip.AddrPort, lid, rid string) *ike.Connection {
		return &ike.Connection{Name: name, Local: local.Addr(), Remote: remote, LocalID: FQDN(lid), RemoteID: FQDN(rid),
			Auth: PSK(t, Secret), IKEProposals: IKE(t, IKEProposal), ESPProposals: ESP(t, ESPProposal)}
	}
	p.ConnA = conn("a-b", addrA, addrB, "a.example", "b.example")
	p.ConnB = conn("b-a", addrB, addrA, "b.example", "a.example")
	config := func(db *sadb.DB, log *LogBuf) ike.Config {
		return ike.Config{SADB: db, CookieThreshold: -1, RetransmitTimeout: 200 * time.Millisecond, Readers: 1,
			Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: o.Level}))}
	}
	cfgA, cfgB := config(p.DBA, p.LogA), config(p.DBB, p.LogB)
	if o.Edit != nil {
		o.Edit(p.ConnA, p.ConnB, &cfgA, &cfgB)
	}
	cfgA.Connections, cfgB.Connections = []*ike.Connection{p.ConnA}, []*ike.Connection{p.ConnB}
	p.BindA, p.BindB = transport.Pipe(addrA, addrB)
	p.A = Start(t, cfgA, p.BindA)
	p.B = Start(t, cfgB, p.BindB)
	return p
}

// Start makes an engine of cfg listening on binds; it is closed when the
// test ends.
func Start(t testing.TB, cfg ike.Config, binds ...transport.Bind) *ike.Engine {
	t.Helper()
	e, err := ike.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range binds {
		e.AddBind(b)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("closing the engine: %v", err)
		}
	})
	return e
}

// PSK is a pre-shared key method with secret.
func PSK(t testing.TB, secret string) *psk.Method {
	t.Helper()
	s, err := psk.NewSecret([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return psk.New(s)
}

// IKE parses IKE proposal strings ("aes256gcm16-prfsha256-x25519").
func IKE(t testing.TB, s ...string) []transform.Proposal {
	t.Helper()
	return proposals(t, transform.ParseIKEProposal, s)
}

// ESP parses ESP proposal strings ("aes256gcm16").
func ESP(t testing.TB, s ...string) []transform.Proposal {
	t.Helper()
	return proposals(t, transform.ParseESPProposal, s)
}

func proposals(t testing.TB, parse func(string) (transform.Proposal, error), s []string) []transform.Proposal {
	t.Helper()
	out := make([]transform.Proposal, 0, len(s))
	for _, x := range s {
		p, err := parse(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// FQDN is an ID_FQDN identity.
func FQDN(s string) ike.Identity { return ike.Identity{Type: wire.IDFQDN, Value: []byte(s)} }

// Context is a context for one exchange, cancelled when the test ends. Its
// 30 s deadline is a hang guard for a loaded machine under -race: no test
// asserts how fast an exchange is.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// LogBuf collects log lines; it is safe for concurrent use.
type LogBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LogBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
