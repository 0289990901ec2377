// Package interop runs iked against strongSwan's charon: each test builds a
// pair of network namespaces joined by a veth pair, runs iked in one and
// charon in the other, and compares what both daemons report about the SAs
// they negotiated. The tests need root, charon, swanctl and tcpdump; without
// them they skip, or fail under CI=true.
package interop

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// binDir holds the iked and ikectl binaries built by TestMain.
var binDir string

// httpGetEnv, when set to a URL, turns the test binary into a one-shot
// HTTP client: it prints the body of GET URL and exits, without running
// tests. (*iked).Metrics runs it inside iked's namespace that way.
const httpGetEnv = "IKED_INTEROP_HTTP_GET"

func httpGet(url string) int {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "GET", url, resp.Status)
		return 1
	}
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestMain(m *testing.M) {
	if url := os.Getenv(httpGetEnv); url != "" {
		os.Exit(httpGet(url))
	}
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
	// docs/interop.md's tables against what just ran (doctable_test.go).
	if problems := verifyInteropDoc(); len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "FAIL: docs/interop.md does not match this run's outcomes:")
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "\t"+p)
		}
		code = 1
	}
	os.Exit(code)
}
