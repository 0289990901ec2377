package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iked/iked/internal/testpki"
)

// certConfig writes a daemon's certificate, key and CA files into dir and
// returns its configuration with certificate authentication.
func certConfig(t *testing.T, dir string, pki *testpki.PKI, name string, local, remote netip.AddrPort, peer string, trust *testpki.PKI) string {
	t.Helper()
	key := testpki.Key(t, "p256", "e2e-"+name)
	cert := pki.Issue(t, key, testpki.Leaf{CN: name, DNS: []string{name}})
	for file, data := range map[string][]byte{
		"cert.pem": testpki.CertPEM(cert), "key.pem": testpki.KeyPEM(t, key),
		"root.pem": testpki.CertPEM(trust.Root), "inter.pem": testpki.CertPEM(pki.Inter),
	} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf(`listen: ["%s"]
control_socket: CONTROL
backend: memory
metrics_listen: METRICS
log: {format: json, level: debug}
connections:
  peer:
    local: %s
    remote: %s
    remote_id: fqdn:%s
    auth: {method: cert, cert: %s, key: %s, ca: [%s], intermediates: [%s]}
`, local, local.Addr(), remote, peer, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"),
		filepath.Join(dir, "root.pem"), filepath.Join(dir, "inter.pem"))
}

// TestTwoDaemonsCertificates: two iked processes authenticate with ECDSA
// certificates from a root and an intermediate CA (no local_id: each sends
// its certificate's subject), and a daemon trusting another root refuses.
func TestTwoDaemonsCertificates(t *testing.T) {
	pki := testpki.New(t, "E2E", "p256", 0)
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.6"), uint16(freePort(t, "127.0.0.6")))
	da := startDaemon(t, "alice", a, certConfig(t, t.TempDir(), pki, "alice.example", a, b, "bob.example", pki))
	db := startDaemon(t, "bob", b, certConfig(t, t.TempDir(), pki, "bob.example", b, a, "alice.example", pki))
	// Without local_id each side sends its subject DN; the peers expect
	// the FQDN in the certificate, so the handshake must fail: check the
	// clear refusal, then give both sides FQDN identities.
	_, err := da.ikectl("initiate", "--new", "peer")
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("initiate with a DN identity against a remote_id FQDN: %v", err)
	}
	da.stop()
	db.stop()

	cfgA := certConfig(t, t.TempDir(), pki, "alice.example", a, b, "bob.example", pki) + "    local_id: fqdn:alice.example\n"
	cfgB := certConfig(t, t.TempDir(), pki, "bob.example", b, a, "alice.example", pki) + "    local_id: fqdn:bob.example\n"
	da = startDaemon(t, "alice", a, cfgA)
	db = startDaemon(t, "bob", b, cfgB)
	if _, err := da.ikectl("initiate", "--new", "peer"); err != nil {
		t.Fatal(err)
	}
	x, y := da.sas(), db.sas()
	if len(x) != 1 || len(y) != 1 || x[0].Auth != "cert" || x[0].SPIi != y[0].SPIi || y[0].RemoteID != "fqdn:alice.example" || len(y[0].Children) != 1 {
		t.Fatalf("SAs: %+v / %+v", x, y)
	}
	da.stop()
	db.stop()

	// A responder that trusts another root refuses alice's chain.
	other := testpki.New(t, "E2E other", "p256", 0)
	da = startDaemon(t, "alice", a, cfgA)
	db = startDaemon(t, "bob", b, certConfig(t, t.TempDir(), pki, "bob.example", b, a, "alice.example", other)+"    local_id: fqdn:bob.example\n")
	if _, err := da.ikectl("initiate", "--new", "peer"); err == nil {
		t.Fatal("a chain to an untrusted root was accepted")
	}
	if !strings.Contains(db.log.String(), "not issued by a trusted CA") {
		t.Fatalf("bob's log lacks the reason:\n%s", db.log.String())
	}
}
