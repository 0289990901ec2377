package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReload: SIGHUP with a broken configuration is refused with file:line
// and the running configuration and SAs stay; a good one is taken without
// dropping the SAs.
func TestReload(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.4"), uint16(freePort(t, "127.0.0.4")))
	da := startDaemon(t, "alice", a, peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example", ""))
	db := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""))
	if _, err := da.ikectl("initiate", "--new", "peer"); err != nil {
		t.Fatal(err)
	}
	before := da.sas()

	path := da.cmd.Args[len(da.cmd.Args)-1]
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "    local_id:", "    local_idd:", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = da.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the refusal to be logged", func() bool { return strings.Contains(da.log.String(), "configuration refused") })
	if !strings.Contains(da.log.String(), filepath.Base(path)+":") || !strings.Contains(da.log.String(), `unknown key \"local_idd\"`) {
		t.Fatalf("refusal without file:line and reason:\n%s", da.log.String())
	}
	after := da.sas()
	if len(after) != 1 || after[0].SPIi != before[0].SPIi || after[0].State != "established" {
		t.Fatalf("SAs changed after a refused reload: %+v", after)
	}

	// A good configuration with one more connection is taken; the SA stays.
	extra := string(good) + "  spare:\n    remote: 127.0.0.9\n    auth: {method: psk, secret: \"a spare connection key\"}\n"
	if err := os.WriteFile(path, []byte(extra), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = da.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the reload", func() bool { return strings.Contains(da.log.String(), "configuration reloaded") })
	out, err := da.ikectl("status")
	if err != nil || !strings.Contains(out, "spare") {
		t.Fatalf("status after reload: %v\n%s", err, out)
	}
	if after := da.sas(); len(after) != 1 || after[0].SPIi != before[0].SPIi {
		t.Fatalf("reload dropped the SA: %+v", after)
	}
	if len(db.sas()) != 1 {
		t.Fatal("peer lost the SA")
	}
	da.stop()
	db.stop()
}

// TestIkectlRekey: `ikectl rekey SA-ID SPI` replaces the Child SA and
// `ikectl rekey SA-ID` the IKE SA, on both daemons.
func TestIkectlRekey(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.5"), uint16(freePort(t, "127.0.0.5")))
	da := startDaemon(t, "alice", a, peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example", ""))
	db := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""))
	if _, err := da.ikectl("initiate", "--new", "peer"); err != nil {
		t.Fatal(err)
	}
	before := da.sas()[0]
	if out, err := da.ikectl("rekey", before.ID, before.Children[0].SPIIn); err != nil || !strings.Contains(out, "rekeyed Child SA") {
		t.Fatalf("rekey child: %q %v", out, err)
	}
	waitUntil(t, "the new Child SA on bob", func() bool {
		c := db.sas()[0].Children
		return len(c) == 1 && c[0].SPIIn != before.Children[0].SPIOut
	})
	if out, err := da.ikectl("rekey", before.ID); err != nil || !strings.Contains(out, "now ike-") {
		t.Fatalf("rekey IKE SA: %q %v", out, err)
	}
	waitUntil(t, "one IKE SA with new SPIs on both", func() bool {
		x, y := da.sas(), db.sas()
		return len(x) == 1 && len(y) == 1 && x[0].SPIi != before.SPIi && x[0].SPIi == y[0].SPIi && len(y[0].Children) == 1
	})
	if _, err := da.ikectl("rekey", "ike-999"); err == nil {
		t.Fatal("rekey of an unknown SA succeeded")
	}
	da.stop()
	db.stop()
}
