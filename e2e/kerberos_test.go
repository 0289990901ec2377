package e2e

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iked/iked/auth/kerberos/kdctest"
)

// kerberosConfig is a daemon whose only connection authenticates with
// Kerberos through the test KDC.
func kerberosConfig(local, remote netip.AddrPort, host, peer, kdc, keytab, allowed string) string {
	return fmt.Sprintf(`listen: ["%s"]
control_socket: CONTROL
backend: memory
metrics_listen: METRICS
log: {format: json, level: debug}
ike: {retransmit_timeout: 300ms, retransmit_tries: 5}
connections:
  peer:
    local: %s
    remote: %s
    local_id: fqdn:%s
    remote_id: fqdn:%s
    auth:
      method: kerberos
      realm: EXAMPLE.TEST
      kdcs: ["%s"]
      keytab: %s
      principal: host/%s
      service: host/%s
      allowed: [%s]
      max_skew: 2m
    ike_proposals: [aes256gcm16-prfsha256-x25519]
    esp_proposals: [aes256gcm16]
`, local, local.Addr(), remote, host, peer, kdc, keytab, host, peer, allowed)
}

// TestKerberosDaemons: two iked processes on 127.0.0.1 and 127.0.0.2
// (loopback addresses, not network namespaces) authenticate with
// Kerberos only, through a real MIT KDC, and establish a Child SA; then
// the responder is reconfigured to refuse the initiator's principal and
// both logs say why.
func TestKerberosDaemons(t *testing.T) {
	kdc := kdctest.Start(t, "EXAMPLE.TEST")
	ktA := kdc.AddHost("host/alice.example.test", filepath.Join(kdc.Dir, "alice.keytab"))
	ktB := kdc.AddHost("host/bob.example.test", filepath.Join(kdc.Dir, "bob.keytab"))
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(freePort(t, "127.0.0.2")))
	da := startDaemon(t, "alice", a, kerberosConfig(a, b, "alice.example.test", "bob.example.test", kdc.Addr, ktA, "host/bob.example.test"))
	db := startDaemon(t, "bob", b, kerberosConfig(b, a, "bob.example.test", "alice.example.test", kdc.Addr, ktB, "host/alice.example.test"))

	if out, err := da.ikectl("initiate", "--new", "peer"); err != nil {
		t.Fatalf("%v\nbob:\n%s", err, db.log.String())
	} else if !strings.Contains(out, "established") {
		t.Fatalf("initiate output: %s", out)
	}
	sa, sb := da.sas(), db.sas()
	if len(sa) != 1 || len(sb) != 1 {
		t.Fatalf("alice has %d IKE SAs, bob %d", len(sa), len(sb))
	}
	x, y := sa[0], sb[0]
	if x.State != "established" || y.State != "established" || x.Auth != "kerberos" || y.Auth != "kerberos" {
		t.Fatalf("SAs: %+v / %+v", x, y)
	}
	if x.RemoteID != "fqdn:bob.example.test" || y.RemoteID != "fqdn:alice.example.test" {
		t.Fatalf("identities: %s / %s", x.RemoteID, y.RemoteID)
	}
	if len(x.Children) != 1 || len(y.Children) != 1 || x.Children[0].SPIIn != y.Children[0].SPIOut || x.Children[0].SPIOut != y.Children[0].SPIIn {
		t.Fatalf("Child SAs do not pair: %+v / %+v", x.Children, y.Children)
	}
	// The other direction: bob initiates to alice with his own ticket.
	if _, err := db.ikectl("initiate", "--new", "peer"); err != nil {
		t.Fatalf("%v\nalice:\n%s", err, da.log.String())
	}
	if !strings.Contains(kdc.Log(), "host/alice.example.test@EXAMPLE.TEST for host/bob.example.test@EXAMPLE.TEST") ||
		!strings.Contains(kdc.Log(), "host/bob.example.test@EXAMPLE.TEST for host/alice.example.test@EXAMPLE.TEST") {
		t.Fatalf("the KDC did not issue both service tickets:\n%s", kdc.Log())
	}
	db.stop()
	da.stop()

	// Bob now allows only carol: alice is refused, and both sides log why.
	db = startDaemon(t, "bob2", b, kerberosConfig(b, a, "bob.example.test", "alice.example.test", kdc.Addr, ktB, "host/carol.example.test"))
	da = startDaemon(t, "alice2", a, kerberosConfig(a, b, "alice.example.test", "bob.example.test", kdc.Addr, ktA, "host/bob.example.test"))
	if _, err := da.ikectl("initiate", "--new", "peer"); err == nil {
		t.Fatal("alice was not refused")
	}
	waitUntil(t, "bob's refusal in his log", func() bool {
		return strings.Contains(db.log.String(), "client host/alice.example.test@EXAMPLE.TEST is not allowed")
	})
	if !strings.Contains(da.log.String(), "KDC_ERR_POLICY") || !strings.Contains(da.log.String(), "AUTHENTICATION_FAILED") {
		t.Fatalf("alice's log does not say why:\n%s", da.log.String())
	}
	if len(db.sas()) != 0 {
		t.Fatal("bob kept an SA")
	}
}
