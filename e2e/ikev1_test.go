package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
