package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/iked/iked/internal/vmtest"
)

// binDir holds iked and ikectl: built by TestMain on the host, and read by
// the guest through /host (binEnv).
var binDir string

// binEnv passes binDir, as the guest sees it, to the guest.
const binEnv = "IKED_KERNEL_BIN"

func TestMain(m *testing.M) {
	if vmtest.InGuest() {
		binDir = os.Getenv(binEnv)
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "iked-kernel-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, cmd := range []string{"iked", "ikectl"} {
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", filepath.Join(dir, cmd), "../../cmd/"+cmd).CombinedOutput()
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
