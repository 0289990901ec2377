package e2e

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/iked/iked/ike/wire"
)

// TestMalformedAndOversizeDropped sends the running daemon what charon and
// pluto drop — an IKE_SA_INIT whose initiator SPI is zero (RFC 7296 §3.1
// says it MUST NOT be) and a valid IKE_SA_INIT of 65,000 octets (a huge
// Vendor ID) — and checks that each is dropped unanswered and counted under
// its reason, and that the daemon then still completes a handshake.
func TestMalformedAndOversizeDropped(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), uint16(freePort(t, "127.0.0.3")))
	d := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""))
	dropped := func(reason string) float64 { return d.metric(`iked_packets_dropped_total{reason="` + reason + `"}`) }

	zeroSPI := saInit()
	for i := range 8 {
		zeroSPI[i] = 0 // SPIi is the header's first eight octets
	}
	huge := saInit(&wire.VendorID{Data: make([]byte, 65000-len(saInit())-wire.GenericHeaderLen)})
	if len(huge) != 65000 {
		t.Fatalf("built %d octets, want 65000", len(huge))
	}
	for _, c := range []struct {
		name, reason string
		pkt          []byte
	}{
		{"zero initiator SPI", "malformed", zeroSPI},
		{"65000-octet IKE_SA_INIT", "oversize", huge},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			before := dropped(c.reason)
			if _, err := conn.Write(c.pkt); err != nil {
				t.Fatal(err)
			}
			// The drop is counted where an answer would otherwise be sent:
			// once it is counted, any answer would already be here.
			waitUntil(t, "the drop to be counted as "+c.reason, func() bool { return dropped(c.reason) >= before+1 })
			if got := dropped(c.reason); got != before+1 {
				t.Fatalf("%s drops went from %v to %v, want one more", c.reason, before, got)
			}
			_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, err := conn.Read(make([]byte, 2048)); err == nil {
				t.Fatalf("the daemon answered (%d octets)", n)
			}
			if n := len(d.sas()); n != 0 {
				t.Fatalf("the daemon keeps %d SAs after a dropped request", n)
			}
		})
	}

	// It keeps serving.
	cl := newClient(t, a, b, pskSecret, "aes256gcm16-prfsha256-x25519")
	if err := cl.initiate(); err != nil {
		t.Fatalf("a good peer after the bad input: %v", err)
	}
}
