package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iked/iked/control"
)

// TestCheckConfigLegacy: the Windows 2003 default main mode is refused at
// its line without allow_legacy, and accepted with it, with a warning that
// names the line and the algorithms.
func TestCheckConfigLegacy(t *testing.T) {
	dir := t.TempDir()
	body := "connections:\n  win2003:\n    remote: 192.0.2.7\n    version: ikev1\n    auth: {method: psk, secret: \"0123456789abcdef\"}\n" +
		"    ike_proposals: [3des-sha1-modp1024]\n"
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "iked"), "--check-config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), bad+":6:") || !strings.Contains(string(out), "allow_legacy") {
		t.Fatalf("legacy without allow_legacy: %v\n%s", err, out)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(body+"    allow_legacy: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(filepath.Join(binDir, "iked"), "--check-config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "warning: "+good+":6: ") || !strings.Contains(string(out), "3DES") ||
		!strings.Contains(string(out), ": OK (1 connections)") {
		t.Fatalf("legacy with allow_legacy: %v\n%s", err, out)
	}
}

// v1Config is peerConfig for an IKEv1 connection with IKEv1's proposals.
func v1Config(local, remote netip.AddrPort, localID, remoteID, extra string) string {
	return strings.NewReplacer("ike_proposals: [aes256gcm16-prfsha256-x25519]", "ike_proposals: [aes256-sha256-ecp256]",
		"esp_proposals: [aes256gcm16]", "esp_proposals: [aes256-sha256]").
		Replace(peerConfig(local, remote, localID, remoteID, "    version: ikev1\n"+extra))
}

// TestIKEv1Daemons: two iked processes speak IKEv1 over loopback through
// the daemon's paths: initiate reports a connection that is up as it is
// and --new adds a Quick Mode; sas --json and the metrics mark the
// version; a reload that changes the connection deletes its ISAKMP SA,
// saying so, and the start action brings it up again with the new
// proposal; terminate clears both sides.
func TestIKEv1Daemons(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.7"), uint16(freePort(t, "127.0.0.7")))
	da := startDaemon(t, "alice", a, v1Config(a, b, "fqdn:alice.example", "fqdn:bob.example", ""))
	db := startDaemon(t, "bob", b, strings.Replace(v1Config(b, a, "fqdn:bob.example", "fqdn:alice.example", ""),
		"esp_proposals: [aes256-sha256]", "esp_proposals: [aes256-sha256, aes128-sha256]", 1))

	if out, err := da.ikectl("initiate", "peer"); err != nil || !strings.Contains(out, "established") {
		t.Fatalf("initiate: %v\n%s", err, out)
	}
	first := da.sas()
	if len(first) != 1 || !strings.HasPrefix(first[0].ID, "isakmp-") || first[0].State != "established" || len(first[0].Children) != 1 {
		t.Fatalf("after initiate: %+v", first)
	}
	// Up already: reported, nothing negotiated.
	if _, err := da.ikectl("initiate", "peer"); err != nil {
		t.Fatal(err)
	}
	if sas := da.sas(); len(sas) != 1 || sas[0].ID != first[0].ID || len(sas[0].Children) != 1 {
		t.Fatalf("a second initiate changed the SAs: %+v", sas)
	}
	// --new: another Quick Mode over the same ISAKMP SA.
	if _, err := da.ikectl("initiate", "--new", "peer"); err != nil {
		t.Fatal(err)
	}
	if sas := da.sas(); len(sas) != 1 || sas[0].ID != first[0].ID || len(sas[0].Children) != 2 {
		t.Fatalf("after initiate --new: %+v", sas)
	}
	waitUntil(t, "bob to hold two IPsec SA pairs", func() bool {
		sas := db.sas()
		return len(sas) == 1 && sas[0].SPIi == first[0].SPIi && len(sas[0].Children) == 2
	})
	out, err := da.ikectl("sas", "--json")
	if err != nil || !strings.Contains(out, `"version": "ikev1"`) {
		t.Fatalf("sas --json: %v\n%s", err, out)
	}
	if got := da.metric(`iked_ike_sas{state="established",version="ikev1"}`); got != 1 {
		t.Errorf("iked_ike_sas{version=ikev1} %v, want 1", got)
	}
	if got := da.metric(`iked_child_sas{version="ikev1"}`); got != 2 {
		t.Errorf("iked_child_sas{version=ikev1} %v, want 2", got)
	}

	// A changed connection: its ISAKMP SA goes, named in the answer, and
	// the start action makes a new one with the new ESP proposal.
	path := da.configPath()
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(cur), "esp_proposals: [aes256-sha256]", "esp_proposals: [aes128-sha256]\n    start_action: initiate", 1)
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := da.ikectlExit("reload", "--json")
	if code != 0 {
		t.Fatalf("reload: exit %d: %s", code, errOut)
	}
	var res control.ReloadResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("reload --json: %v\n%s", err, out)
	}
	if len(res.Changed) != 1 || len(res.Terminated) != 1 || res.Terminated[0].ID != first[0].ID ||
		!strings.Contains(res.Terminated[0].Reason, "connection changed") {
		t.Fatalf("reload answer: %+v", res)
	}
	waitUntil(t, "the connection up again with the new proposal", func() bool {
		sas := da.sas()
		return len(sas) == 1 && sas[0].ID != first[0].ID && sas[0].State == "established" && len(sas[0].Children) == 1 &&
			strings.HasPrefix(sas[0].Children[0].Algorithms, "AES_CBC-128/")
	})

	// A reload the IKEv1 engine would refuse changes nothing.
	bad := strings.Replace(changed, "esp_proposals: [aes128-sha256]", "esp_proposals: [aes128-sha256-modp1024]\n    allow_legacy: false", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := da.ikectlExit("reload"); code != 1 || !strings.Contains(errOut, "allow_legacy") {
		t.Fatalf("reload of a legacy proposal: exit %d: %s", code, errOut)
	}

	if _, err := da.ikectl("terminate", "peer"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "both sides without SAs", func() bool { return len(da.sas()) == 0 && len(db.sas()) == 0 })
}
