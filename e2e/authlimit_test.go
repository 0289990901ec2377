package e2e

import (
	"net/netip"
	"strings"
	"testing"
)

// TestAuthFailuresBlockAddress: a peer that fails authentication
// auth_failure_limit times is not answered any more: the daemon drops its
// IKE_SA_INIT requests, every one of them counted, and exports the block.
func TestAuthFailuresBlockAddress(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.5"), uint16(freePort(t, "127.0.0.5")))
	conf := strings.Replace(peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""),
		"ike: {", "ike: {auth_failure_limit: 2, auth_failure_window: 1h, ", 1)
	if !strings.Contains(conf, "auth_failure_limit: 2") {
		t.Fatalf("the test's configuration has no ike section to set the limit in:\n%s", conf)
	}
	d := startDaemon(t, "bob", b, conf)
	c := newClient(t, a, b, "not the daemon's pre-shared key", "aes256gcm16-prfsha256-x25519")

	for i := range 2 {
		if err := c.initiate(); err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
			t.Fatalf("attempt %d: %v, want AUTHENTICATION_FAILED", i, err)
		}
	}
	if got := d.metric(`iked_handshakes_failed_total{reason="authentication_failed"}`); got != 2 {
		t.Fatalf("authentication failures counted: %v", got)
	}
	before := c.eng.Stats().Retransmissions
	if err := c.initiate(); err == nil || strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("attempt after the limit: %v, want no answer", err)
	}
	sent := 1 + c.eng.Stats().Retransmissions - before // IKE_SA_INIT requests of the blocked attempt
	waitUntil(t, "every request of the blocked attempt counted", func() bool {
		return d.metric(`iked_packets_dropped_total{reason="rate_limited"}`) == float64(sent)
	})
	if d.metric("iked_blocked_peers") != 1 || d.metric("iked_peer_blocks_total") != 1 {
		t.Fatalf("iked_blocked_peers %v, iked_peer_blocks_total %v", d.metric("iked_blocked_peers"), d.metric("iked_peer_blocks_total"))
	}
	if !strings.Contains(d.log.String(), "address blocked after failed authentications") {
		t.Error("the block is not logged")
	}
}
