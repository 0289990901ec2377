package vmtest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRun configures RunTests.
type TestRun struct {
	// Env are set in the guest test's environment, besides GuestEnv and
	// CI.
	Env map[string]string
	// Timeout bounds the guest run, boot included; default 30 minutes.
	// The guest's test binary gets it, less a minute, as -test.timeout.
	Timeout time.Duration
	// MemoryMiB and CPUs size the guest (defaults as Config).
	MemoryMiB, CPUs int
}

// testOutput is the file in the share where the guest test writes.
const testOutput = "test.out"

// RunTests runs t's own test function inside a guest: the test binary
// (this process's executable, read through /host) with -test.run selecting
// t.Name() and whatever the host's -test.run asks of its subtests. The test
// function sees InGuest() and runs its cases there as subtests; back on
// the host each guest subtest is reported as a subtest of t, with its
// output, its result (a failure, a skip and its reason) and its time in
// the guest. One boot serves every subtest. RunTests returns the run's
// result after logging the boot and run times.
func RunTests(t *testing.T, img *Image, o TestRun) *Result {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Minute
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{GuestEnv: "1"}
	if underCI() {
		env["CI"] = "true"
	}
	for k, v := range o.Env {
		env[k] = v
	}
	args := []string{GuestPath(exe), "-test.run=" + guestPattern(t.Name()), "-test.v=test2json", "-test.count=1",
		fmt.Sprintf("-test.timeout=%s", max(o.Timeout-time.Minute, time.Minute))}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	script := fmt.Sprintf("cd %s || exit 1\n%s > /mnt/%s 2>&1\n", shellQuote(GuestPath(wd)), strings.Join(q, " "), testOutput)

	ctx := t.Context()
	res, err := img.Run(ctx, Config{Script: script, Env: env, Timeout: o.Timeout, MemoryMiB: o.MemoryMiB, CPUs: o.CPUs, Keep: true})
	if res != nil {
		defer os.RemoveAll(res.Share)
		t.Logf("guest (%s): ready after %v, ran %v in all, test binary exit status %d",
			res.Accel, res.Ready.Round(10*time.Millisecond), res.Total.Round(10*time.Millisecond), res.ExitCode)
	}
	if err != nil {
		t.Fatalf("guest: %v", err)
	}
	out, err := os.ReadFile(filepath.Join(res.Share, testOutput))
	if err != nil {
		t.Fatalf("guest test output: %v\nconsole ends:\n%s", err, tail(res.Console, 4000))
	}
	tests := parseTestOutput(string(out))
	top := tests[t.Name()]
	if top == nil {
		t.Fatalf("the guest did not run %s (exit status %d); its output:\n%s\nconsole ends:\n%s",
			t.Name(), res.ExitCode, tail(string(out), 8000), tail(res.Console, 3000))
	}
	mirror(t, top)
	if top.status == "" {
		t.Logf("guest output ends:\n%s\nconsole ends:\n%s", tail(string(out), 4000), tail(res.Console, 2000))
	}
	return res
}

// guestPattern is the guest's -test.run: the test itself, and the host's
// selection of its subtests (the elements of -test.run after the first).
func guestPattern(name string) string {
	p := "^" + regexp.QuoteMeta(name) + "$"
	f := flag.Lookup("test.run")
	if f == nil {
		return p
	}
	parts := splitPattern(f.Value.String())
	if len(parts) > 1 {
		p += "/" + strings.Join(parts[1:], "/")
	}
	return p
}

// splitPattern splits a -test.run pattern at the slashes outside brackets
// and parentheses, as the testing package does.
func splitPattern(p string) []string {
	if p == "" {
		return nil
	}
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '[', '(':
			depth++
		case ']', ')':
			if depth > 0 {
				depth--
			}
		case '\\':
			i++
		case '/':
			if depth == 0 {
				parts = append(parts, p[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, p[start:])
}

// guestTest is one test as the guest's -test.v=test2json output reports it.
type guestTest struct {
	name     string // full name, e.g. TestX/sub
	status   string // PASS, FAIL, SKIP; empty when it never ended
	elapsed  string // e.g. "1.23s"
	output   []string
	children []*guestTest
}

// framing is the byte -test.v=test2json puts before the lines that frame
// tests (=== RUN, --- PASS, ...), so that a test's own output is never
// taken for them.
const framing = "\x16"

var resultRE = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (.*) \(([0-9.]+s)\)$`)

// parseTestOutput reads a test binary's -test.v=test2json output into
// tests by name; each line of output belongs to the test last named by a
// framing line.
func parseTestOutput(out string) map[string]*guestTest {
	tests := map[string]*guestTest{}
	get := func(name string) *guestTest {
		if g := tests[name]; g != nil {
			return g
		}
		g := &guestTest{name: name}
		tests[name] = g
		if i := strings.LastIndexByte(name, '/'); i > 0 {
			if parent := tests[name[:i]]; parent != nil {
				parent.children = append(parent.children, g)
			}
		}
		return g
	}
	var cur *guestTest
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		l = strings.TrimRight(l, "\r")
		frame, ok := strings.CutPrefix(l, framing)
		if !ok {
			if cur != nil {
				cur.output = append(cur.output, l)
			}
			continue
		}
		frame = strings.TrimLeft(frame, " ")
		switch {
		case strings.HasPrefix(frame, "=== "):
			f := strings.Fields(frame)
			if len(f) >= 3 {
				cur = get(f[2])
			} else {
				cur = nil
			}
		case resultRE.MatchString(frame):
			m := resultRE.FindStringSubmatch(frame)
			cur = get(m[2])
			cur.status, cur.elapsed = m[1], m[3]
		default:
			cur = nil // PASS, FAIL, ok lines of the whole binary
		}
	}
	return tests
}

// mirror reports a guest test on the host, its subtests as subtests.
func mirror(t *testing.T, g *guestTest) {
	t.Helper()
	if out := strings.TrimRight(strings.Join(g.output, "\n"), "\n "); out != "" {
		t.Logf("in the guest:\n%s", out)
	}
	childFailed := false
	for _, c := range g.children {
		short := c.name[len(g.name)+1:]
		if !t.Run(short, func(t *testing.T) { mirror(t, c) }) && c.status == "FAIL" {
			childFailed = true
		}
	}
	switch g.status {
	case "PASS":
		t.Logf("guest: PASS in %s", g.elapsed)
	case "SKIP":
		reason := "skipped in the guest"
		for i := len(g.output) - 1; i >= 0; i-- {
			if s := strings.TrimSpace(g.output[i]); s != "" {
				reason = s
				break
			}
		}
		t.Skip(reason)
	case "FAIL":
		if !childFailed {
			t.Errorf("failed in the guest after %s", g.elapsed)
		}
	default:
		t.Error("no result from the guest: its test binary stopped during this test (a timeout or a crash; see the output above)")
	}
}
