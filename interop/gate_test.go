package interop

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// charonPath is where Debian's strongswan-charon package installs the IKE
// daemon; swanctl is looked up in PATH.
const charonPath = "/usr/lib/ipsec/charon"

// underCI reports whether the suite runs in CI (CI=true), where a missing
// requirement is a failure, not a reason to skip.
func underCI() bool { return os.Getenv("CI") == "true" }

// missing stops the test because a requirement is not met: t.Fatal under
// CI=true, t.Skip otherwise. reason is one line.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if underCI() {
		t.Fatal("interop requirement missing (CI=true, not skipping): " + reason)
	}
	t.Skip("interop requirement missing: " + reason)
}

// requireRoot: network namespaces, veths and bind mounts need root.
func requireRoot(t *testing.T) {
	t.Helper()
	recordOutcome(t) // for the check of docs/interop.md (doctable_test.go)
	if os.Geteuid() != 0 {
		missing(t, "needs root for network namespaces (euid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing(t, "ip (iproute2) not found in PATH")
	}
}

// requireTools checks that each named program is in PATH.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "%s not found in PATH", tool)
		}
	}
}

// requireCharon checks for strongSwan's charon and swanctl (Debian packages
// strongswan-charon, strongswan-swanctl and the plugin packages), and for
// root, which running charon in a namespace needs.
func requireCharon(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if fi, err := os.Stat(charonPath); err != nil || fi.Mode()&0o111 == 0 {
		missing(t, "strongSwan charon not found at %s (install strongswan-charon)", charonPath)
	}
	requireTools(t, "swanctl")
	for _, p := range []string{"kernel-libipsec", "vici", "curve25519"} {
		if _, err := os.Stat(pluginDir + "/libstrongswan-" + p + ".so"); err != nil {
			missing(t, "strongSwan plugin %s not found in %s (install libcharon-extra-plugins, libstrongswan-extra-plugins)", p, pluginDir)
		}
	}
}

// pluginDir is where Debian installs strongSwan's plugins.
const pluginDir = "/usr/lib/ipsec/plugins"
