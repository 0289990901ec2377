// Package interop runs iked against strongSwan's charon: each test builds a
// pair of network namespaces joined by a veth pair, runs iked in one and
// charon in the other, and compares what both daemons report about the SAs
// they negotiated. The tests need root, charon, swanctl and tcpdump; without
// them they skip, or fail under CI=true.
package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir holds the iked and ikectl binaries built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "iked-interop-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, cmd := range []string{"iked", "ikectl"} {
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", filepath.Join(dir, cmd), "../cmd/"+cmd).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", cmd, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
