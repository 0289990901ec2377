package ikev1

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"

	"github.com/iked/iked/ikev1/isakmp"
)

// FuzzDecrypt feeds the responder of an established ISAKMP SA encrypted
// messages of every exchange with arbitrary bodies under the SA's
// cookies: they are decrypted with the SA's keys and IV chains and parsed,
// and since none can carry a valid HASH, nothing may change: no panic,
// the SA stays established with its one IPsec SA. The seeds are the
// encrypted messages of a real Main Mode, Quick Mode and Delete.
func FuzzDecrypt(f *testing.F) {
	var mu sync.Mutex
	var seen [][]byte
	p := newPair(f, func(_, _ *Connection, _, _ *Config) {})
	p.ab.Filter = func(b []byte) bool {
		if h, err := isakmp.ParseHeader(b); err == nil && h.Encrypted() {
			mu.Lock()
			seen = append(seen, append([]byte(nil), b...))
			mu.Unlock()
		}
		return true
	}
	info, err := p.a.Initiate(ctxT(f), "a-b")
	if err != nil {
		f.Fatal(err)
	}
	waitFor(f, "the responder's IPsec SA", func() bool { s := p.b.SAs(); return len(s) == 1 && len(s[0].Children) == 1 })
	p.ab.Filter = nil
	mu.Lock()
	for _, b := range seen {
		f.Add(b[18], b[19], binary.BigEndian.Uint32(b[20:24]), b[16], b[isakmp.HeaderLen:])
	}
	mu.Unlock()
	f.Add(byte(isakmp.ExchangeInformational), byte(0), uint32(7), byte(isakmp.PayloadHash), make([]byte, 32))
	if info.State != "established" {
		f.Fatalf("initiator SA %+v", info)
	}
	var icky, rcky uint64
	sa := p.b.allSAs()[0]
	sa.mu.Lock()
	icky, rcky = sa.icookie, sa.rcookie
	sa.unlock()
	f.Fuzz(func(t *testing.T, ex, flags byte, mid uint32, next byte, body []byte) {
		h := isakmp.Header{ICookie: icky, RCookie: rcky, Next: isakmp.PayloadType(next), Version: isakmp.Version,
			Exchange: isakmp.Exchange(ex), Flags: flags | isakmp.FlagEncryption, MessageID: mid,
			Length: uint32(isakmp.HeaderLen + len(body))}
		pkt := append(h.AppendHeader(nil), body...)
		p.b.handlePacket(p.ba, addrA, pkt)
		s := p.b.SAs()
		if len(s) != 1 || s[0].State != "established" || len(s[0].Children) != 1 {
			t.Fatalf("an unauthenticated message changed the responder: %+v", s)
		}
	})
}

// FuzzHandlePacket feeds a responder engine arbitrary datagrams (Main
// Mode first messages among the seeds): whatever comes, it never panics,
// and an engine with no connection for the sender creates no SA.
func FuzzHandlePacket(f *testing.F) {
	p := newPair(f, nil)
	var first []byte
	var mu sync.Mutex
	p.ab.Filter = func(b []byte) bool {
		mu.Lock()
		if first == nil {
			first = append([]byte(nil), b...)
		}
		mu.Unlock()
		return true
	}
	if _, err := p.a.Initiate(ctxT(f), "a-b"); err != nil {
		f.Fatal(err)
	}
	mu.Lock()
	f.Add(first)
	mu.Unlock()
	stranger := netip.MustParseAddrPort("198.51.100.9:500") // no connection of a names it
	f.Fuzz(func(t *testing.T, pkt []byte) {
		before := len(p.a.allSAs())
		p.a.handlePacket(p.ab, stranger, pkt)
		if after := len(p.a.allSAs()); after > before {
			t.Fatalf("a datagram from a peer with no connection made an SA (%d -> %d)", before, after)
		}
	})
}
