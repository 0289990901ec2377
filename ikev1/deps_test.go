package ikev1

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoIKEv2Dependency: the IKEv1 engine shares only leaf packages with
// the IKEv2 engine; nothing of package ike (its wire format included) may
// reach it, directly or through another package.
func TestNoIKEv2Dependency(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/iked/iked/ikev1/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/iked/iked/ike" || strings.HasPrefix(p, "github.com/iked/iked/ike/") ||
			p == "github.com/iked/iked/auth" || strings.HasPrefix(p, "github.com/iked/iked/auth/") {
			t.Errorf("ikev1 depends on %s", p)
		}
	}
}
