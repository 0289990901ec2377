package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeScript writes an executable shell script.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "updown.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUpdown: the initiator's updown script runs up-client when the Child
// SA comes up and down-client when it goes, with strongSwan's variables;
// a Child SA rekey runs nothing; the responder, which configures no
// script, runs none; a failing script's exit status and a hung script's
// timeout are logged.
func TestUpdown(t *testing.T) {
	record := filepath.Join(t.TempDir(), "runs")
	script := writeScript(t, fmt.Sprintf("{ echo \"== $PLUTO_VERB\"; env | grep -E '^(PLUTO|IKED)_' | sort; } >> %s\n", record))
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.11"), uint16(freePort(t, "127.0.0.11")))
	ts := "    local_ts: [LOCAL]\n    remote_ts: [REMOTE]\n"
	da := startDaemon(t, "alice", a, peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example",
		strings.NewReplacer("LOCAL", "10.1.0.0/24", "REMOTE", "10.2.0.0/24").Replace(ts)+"    updown: "+script+"\n"))
	db := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example",
		strings.NewReplacer("LOCAL", "10.2.0.0/24", "REMOTE", "10.1.0.0/24").Replace(ts)))
	runs := func() string {
		b, _ := os.ReadFile(record)
		return string(b)
	}
	if _, err := da.ikectl("initiate", "peer"); err != nil {
		t.Fatal(err)
	}
	// The script's first line is out before the rest: wait until iked has
	// seen it exit.
	waitUntil(t, "the up run logged", func() bool { return strings.Contains(da.log.String(), `"msg":"updown script ran"`) })
	if !strings.Contains(runs(), "== up-client\n") {
		t.Fatalf("the script ran, but not as up-client:\n%s", runs())
	}
	sa := da.sas()[0]
	for _, want := range []string{
		"PLUTO_CONNECTION=peer", "PLUTO_VERSION=1.1", "PLUTO_PROTO=esp", "PLUTO_ME=127.0.0.1", "PLUTO_PEER=127.0.0.11",
		"PLUTO_MY_ID=fqdn:alice.example", "PLUTO_PEER_ID=fqdn:bob.example",
		"PLUTO_MY_CLIENT=10.1.0.0/24", "PLUTO_MY_CLIENT_NET=10.1.0.0", "PLUTO_MY_CLIENT_MASK=255.255.255.0",
		"PLUTO_PEER_CLIENT=10.2.0.0/24", "PLUTO_UNIQUEID=" + strings.TrimPrefix(sa.ID, "ike-"), "PLUTO_REQID=",
		"IKED_ROLE=initiator", "IKED_MODE=tunnel", "IKED_IKE_SA=" + sa.ID, "IKED_SPI_IN=" + sa.Children[0].SPIIn,
		"IKED_SPI_OUT=" + sa.Children[0].SPIOut,
	} {
		if !strings.Contains(runs(), want+"\n") && !strings.Contains(runs(), want) {
			t.Fatalf("the up run lacks %s:\n%s", want, runs())
		}
	}
	if !strings.Contains(da.log.String(), `"verb":"up-client"`) || !strings.Contains(da.log.String(), `"exit":0`) {
		t.Fatalf("the run's log line lacks verb or exit status:\n%s", da.log.String())
	}

	// A Child SA rekey is no down and up.
	if _, err := da.ikectl("rekey", sa.ID, sa.Children[0].SPIIn); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the rekeyed Child SA", func() bool {
		c := da.sas()[0].Children
		return len(c) == 1 && c[0].SPIIn != sa.Children[0].SPIIn
	})
	if _, err := da.ikectl("terminate", "peer"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the down run", func() bool { return strings.Contains(runs(), "== down-client\n") })
	if n := strings.Count(runs(), "== "); n != 2 {
		t.Fatalf("%d runs for one Child SA, its rekey and its deletion:\n%s", n, runs())
	}
	if strings.Contains(db.log.String(), "updown") {
		t.Fatalf("bob, without a script, ran one:\n%s", db.log.String())
	}
	da.stop()
	db.stop()

	// A failing script and a hung one.
	for _, tc := range []struct{ body, extra, want string }{
		{"echo broken >&2; exit 3\n", "", `"msg":"updown script failed"`},
		{"exec sleep 30\n", "    updown_timeout: 300ms\n", `"msg":"updown script timed out and was killed"`},
	} {
		s := writeScript(t, tc.body)
		a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
		b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.12"), uint16(freePort(t, "127.0.0.12")))
		da := startDaemon(t, "alice", a, peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example", "    updown: "+s+"\n"+tc.extra))
		db := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""))
		start := time.Now()
		if _, err := da.ikectl("initiate", "peer"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, tc.want, func() bool { return strings.Contains(da.log.String(), tc.want) })
		if tc.extra == "" && (!strings.Contains(da.log.String(), `"exit":3`) || !strings.Contains(da.log.String(), `"output":"broken"`)) {
			t.Fatalf("failure logged without exit status or output:\n%s", da.log.String())
		}
		if tc.extra != "" && time.Since(start) > 10*time.Second {
			t.Fatalf("the 300ms timeout took %v", time.Since(start))
		}
		da.stop()
		db.stop()
	}
}

// TestRemoteByName: "remote: localhost:PORT" is resolved when iked
// initiates, both by start_action and by ikectl initiate; status shows the
// name; the peer answers as usual.
func TestRemoteByName(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	alice := strings.Replace(peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example", "    start_action: initiate\n"),
		"remote: "+b.String(), fmt.Sprintf("remote: localhost:%d", b.Port()), 1)
	if !strings.Contains(alice, "remote: localhost:") {
		t.Fatal("config template changed")
	}
	db := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""))
	da := startDaemon(t, "alice", a, alice)
	waitFor(t, "the start action's SA", 30*time.Second, func() bool {
		sas := da.sas()
		return len(sas) == 1 && sas[0].State == "established"
	})
	if sa := da.sas()[0]; sa.RemoteAddr != b.String() || sa.Connection != "peer" {
		t.Fatalf("SA %+v, want remote %s", sa, b)
	}
	if !strings.Contains(da.log.String(), `"host":"localhost"`) {
		t.Fatalf("the resolution is not logged:\n%s", da.log.String())
	}
	st, err := da.ikectl("status")
	if err != nil || !strings.Contains(st, fmt.Sprintf("localhost:%d", b.Port())) {
		t.Fatalf("status: %v\n%s", err, st)
	}
	if _, err := da.ikectl("terminate", "peer"); err != nil {
		t.Fatal(err)
	}
	if out, err := da.ikectl("initiate", "peer"); err != nil || !strings.Contains(out, "established") {
		t.Fatalf("initiate by name: %v\n%s", err, out)
	}
	waitUntil(t, "bob's SA", func() bool { return len(db.sas()) == 1 })
	da.stop()
	db.stop()
}
