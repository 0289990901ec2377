package interop

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// docs/interop.md is checked against the run that just happened, so that
// its tables cannot go stale: every test that needs root (requireRoot)
// records how it ended, and TestMain, once the tests are done, compares
// the tables with that record (checkInteropDoc).

// interopDoc is the page the tables live in.
const interopDoc = "../docs/interop.md"

// outcome is how a test ended.
type outcome int

const (
	passed outcome = iota
	failed
	skipped
)

// outcomes holds the outcome of every test that called requireRoot, by
// full name (TestX/sub/case).
var outcomes = struct {
	sync.Mutex
	m map[string]outcome
}{m: map[string]outcome{}}

// recordOutcome notes t's outcome when it ends. Registered at the test's
// start, its cleanup runs after every later one (cleanups run last in,
// first out), so failures that the daemons' cleanups report count too.
func recordOutcome(t *testing.T) {
	outcomes.Lock()
	defer outcomes.Unlock()
	if _, ok := outcomes.m[t.Name()]; ok {
		return
	}
	outcomes.m[t.Name()] = passed // until the cleanup knows better
	t.Cleanup(func() {
		o := passed
		switch {
		case t.Skipped():
			o = skipped
		case t.Failed():
			o = failed
		}
		outcomes.Lock()
		outcomes.m[t.Name()] = o
		outcomes.Unlock()
	})
}

// completeRun reports whether every test ran: no -run or -skip pattern.
func completeRun() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}

// verifyInteropDoc runs checkInteropDoc on the page with this run's
// outcomes; TestMain fails the run on what it returns.
func verifyInteropDoc() []string {
	doc, err := os.ReadFile(interopDoc)
	if err != nil {
		return []string{err.Error()}
	}
	outcomes.Lock()
	rec := make(map[string]outcome, len(outcomes.m))
	for k, v := range outcomes.m {
		rec[k] = v
	}
	outcomes.Unlock()
	return checkInteropDoc(string(doc), rec, declaredTests(), completeRun())
}

// declaredTests returns the package's test functions and the file each
// is in, from its source: a test that needs no peer (a rendering or
// parsing test) records no outcome, so only its declaration says it
// exists.
func declaredTests() map[string]string {
	out := map[string]string{}
	files, _ := filepath.Glob("*_test.go")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range testFunc.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = f
		}
	}
	return out
}

// namedOnPage reports whether the page names test t: in backticks, or
// by its file (`interop/nat_test.go`, or a pattern such as
// `interop/ikev1_*_test.go`, for a section that covers a file's tests).
func namedOnPage(doc, t, file string) bool {
	if strings.Contains(doc, "`"+t) {
		return true
	}
	for _, m := range backticked.FindAllStringSubmatch(doc, -1) {
		pat := strings.TrimPrefix(m[1], "interop/")
		if ok, _ := filepath.Match(pat, file); ok && strings.HasSuffix(pat, "_test.go") {
			return true
		}
	}
	return false
}

var testFunc = regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	braces     = regexp.MustCompile(`\{([^{}]*)\}`)
)

// expandBraces expands shell-style alternatives: "T/{a,b}/c" is "T/a/c"
// and "T/b/c".
func expandBraces(s string) []string {
	m := braces.FindStringSubmatchIndex(s)
	if m == nil {
		return []string{s}
	}
	var out []string
	for _, alt := range strings.Split(s[m[2]:m[3]], ",") {
		out = append(out, expandBraces(s[:m[0]]+alt+s[m[1]:])...)
	}
	return out
}

// testNames returns the test names a table cell names in backticks:
// "TestX/sub" as written, "…/sub" after the first part of the previous
// name, and, when context (the test the table is about) is set, a bare
// case name "case" as any subtest of context ending in it.
func testNames(cell, context string) []string {
	var out []string
	prev := ""
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		tok := m[1]
		switch {
		case strings.HasPrefix(tok, "Test"):
			prev, _, _ = strings.Cut(tok, "/")
		case strings.HasPrefix(tok, "…/") && prev != "":
			tok = prev + strings.TrimPrefix(tok, "…")
		case context != "" && !strings.ContainsAny(tok, " :={}"):
			tok = context + "/**/" + tok
		default:
			continue
		}
		out = append(out, expandBraces(tok)...)
	}
	return out
}

// matches reports whether the recorded name is the test pattern or below
// it; "P/**/c" matches any name below P with the segments of c in it
// (P/c, P/x/c, P/c/y).
func matches(pattern, name string) bool {
	if head, tail, ok := strings.Cut(pattern, "/**/"); ok {
		rest, below := strings.CutPrefix(name, head+"/")
		return below && strings.Contains("/"+rest+"/", "/"+tail+"/")
	}
	return name == pattern || strings.HasPrefix(name, pattern+"/")
}

// cells splits a table row into trimmed cells.
func cells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	row = strings.ReplaceAll(row, `\|`, "\x00")
	var out []string
	for _, c := range strings.Split(row, "|") {
		out = append(out, strings.TrimSpace(strings.ReplaceAll(c, "\x00", "|")))
	}
	return out
}

// checkInteropDoc compares the tables of docs/interop.md with the tests'
// outcomes and returns what is stale:
//
//   - a row whose result cells all say "pass" while one of its tests
//     failed, or one that claims "**fail**" while all its tests passed;
//   - in a table with a "Cases" column, a count that is not the number of
//     test cases that ran under the row's names;
//   - a test a table names that is not declared (declared: the package's
//     test functions); when every test ran (complete), a subtest a table
//     names that did not run though its test did, and a test that ran and
//     needed root but the page names neither it nor its file.
//
// Tests that were skipped (no peer outside CI) prove nothing and are left
// out of every check.
func checkInteropDoc(doc string, rec map[string]outcome, declared map[string]string, complete bool) []string {
	var problems []string
	ran := map[string]outcome{}
	for name, o := range rec {
		if o != skipped {
			ran[name] = o
		}
	}
	leaves := func(patterns []string) (n int, fails, passes []string) {
		for name, o := range ran {
			isParent := false
			for other := range ran {
				if strings.HasPrefix(other, name+"/") {
					isParent = true
					break
				}
			}
			for _, p := range patterns {
				if !matches(p, name) {
					continue
				}
				if !isParent {
					n++
				}
				if o == failed {
					fails = append(fails, name)
				} else {
					passes = append(passes, name)
				}
				break
			}
		}
		sort.Strings(fails)
		return n, fails, passes
	}

	var heading string  // the test a "### … (`TestX`)" heading names
	var header []string // the current table's header cells
	var context string  // the test the current table is about
	inTable, sep := false, false
	for i, line := range strings.Split(doc, "\n") {
		at := fmt.Sprintf("%s:%d", strings.TrimPrefix(interopDoc, "../"), i+1)
		if strings.HasPrefix(line, "#") {
			heading = ""
			for _, m := range backticked.FindAllStringSubmatch(line, -1) {
				if strings.HasPrefix(m[1], "Test") && heading == "" {
					heading = m[1]
				}
			}
			inTable = false
			continue
		}
		if !strings.HasPrefix(strings.TrimSpace(line), "|") {
			inTable = false
			continue
		}
		if !inTable {
			inTable, sep = true, false
			header = cells(line)
			context = heading
			for _, m := range backticked.FindAllStringSubmatch(header[0], -1) {
				if strings.HasPrefix(m[1], "Test") {
					context = m[1]
				}
			}
			continue
		}
		if !sep {
			sep = true // the |---| line
			continue
		}
		row := cells(line)
		names := testNames(row[0], context)
		if len(names) == 0 {
			continue
		}
		n, fails, passes := leaves(names)
		for _, p := range names {
			top, _, _ := strings.Cut(p, "/")
			if _, ok := declared[top]; !ok {
				problems = append(problems, fmt.Sprintf("%s: names %s, but there is no test %s", at, p, top))
				continue
			}
			found, topRan := false, false
			for name := range rec {
				found = found || matches(p, name)
				topRan = topRan || matches(top, name)
			}
			if complete && topRan && !found {
				problems = append(problems, fmt.Sprintf("%s: names %s, which did not run (renamed or removed?)", at, p))
			}
		}
		claimsPass, claimsFail := false, false
		for j, c := range row[1:] {
			switch {
			case strings.HasPrefix(c, "pass"):
				claimsPass = true
			case strings.HasPrefix(c, "**fail**"):
				claimsFail = true
			}
			if j+1 < len(header) && header[j+1] == "Cases" && complete {
				if want, err := strconv.Atoi(c); err == nil && want != n {
					problems = append(problems, fmt.Sprintf("%s: says %d cases for %s, %d ran", at, want, strings.Join(names, ", "), n))
				}
			}
		}
		switch {
		case claimsFail && len(fails) == 0 && len(passes) > 0:
			problems = append(problems, fmt.Sprintf("%s: says %s fails, but it passed in this run", at, strings.Join(names, ", ")))
		case claimsPass && !claimsFail && len(fails) > 0:
			problems = append(problems, fmt.Sprintf("%s: says pass, but %s failed in this run", at, strings.Join(fails, ", ")))
		}
	}
	if complete {
		top := map[string]bool{}
		for name := range ran {
			t, _, _ := strings.Cut(name, "/")
			top[t] = true
		}
		var missing []string
		for t := range top {
			if !namedOnPage(doc, t, declared[t]) {
				missing = append(missing, t)
			}
		}
		sort.Strings(missing)
		for _, t := range missing {
			problems = append(problems, fmt.Sprintf("%s: %s ran against real peers but the page does not name it", strings.TrimPrefix(interopDoc, "../"), t))
		}
	}
	return problems
}

// TestInteropDocCheck checks the checker on a small page: a row claiming
// a failure of a test that passed (the stale TestLifecycleRekey/iked-charon
// row of issue 17), a pass claim on a failure, a wrong case count, a
// renamed test and an undocumented one are each reported; a test whose
// file the page names counts as named; skipped tests prove nothing.
func TestInteropDocCheck(t *testing.T) {
	doc := "### Proposals (`TestProposals`)\n\n" +
		"| Case | IKE | charon → iked | iked → charon |\n|---|---|---|---|\n" +
		"| `aes128-sha256` | x | pass | pass |\n\n" +
		"### Lifecycle\n\n| Test (subtest) | Result |\n|---|---|\n" +
		"| `TestLifecycleRekey/iked-iked` | pass: 61 rekeys |\n" +
		"| `TestLifecycleRekey/iked-charon` | **fail** (iked bug) |\n" +
		"| `TestDelete/{a,b}/x`, `…/c/y` | pass |\n" +
		"| `TestGone` | pass |\n" +
		"| `TestDelete/old` | pass |\n" +
		"| `TestRendering` | pass |\n\n" +
		"| Test | Cases | Time |\n|---|---|---|\n| `TestProposals` | 3 | 1 s |\n| `TestDelete` | 3 | 1 s |\n\n" +
		"IKEv1 is tested in `interop/ikev1_*_test.go`.\n"
	rec := map[string]outcome{
		"TestProposals/charon-initiates/aes128-sha256": passed,
		"TestProposals/iked-initiates/aes128-sha256":   failed,
		"TestLifecycleRekey/iked-iked":                 passed,
		"TestLifecycleRekey/iked-charon":               passed,
		"TestDelete/a/x":                               passed,
		"TestDelete/b/x":                               skipped,
		"TestDelete/c/y":                               passed,
		"TestNew/case":                                 passed,
		"TestV1/case":                                  passed, // named by its file
	}
	declared := map[string]string{"TestProposals": "proposals_test.go", "TestLifecycleRekey": "lifecycle_rekey_test.go",
		"TestDelete": "lifecycle_test.go", "TestNew": "new_test.go", "TestRendering": "lifecycle_test.go", "TestV1": "ikev1_x_test.go"}
	got := checkInteropDoc(doc, rec, declared, true)
	want := []string{
		"docs/interop.md:5: says pass, but TestProposals/iked-initiates/aes128-sha256 failed in this run",
		"docs/interop.md:12: says TestLifecycleRekey/iked-charon fails, but it passed in this run",
		"docs/interop.md:14: names TestGone, but there is no test TestGone",
		"docs/interop.md:15: names TestDelete/old, which did not run (renamed or removed?)",
		"docs/interop.md:20: says 3 cases for TestProposals, 2 ran",
		"docs/interop.md:21: says 3 cases for TestDelete, 2 ran",
		"docs/interop.md: TestNew ran against real peers but the page does not name it",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A partial run (-run) checks only what ran.
	got = checkInteropDoc(doc, map[string]outcome{"TestLifecycleRekey/iked-iked": passed}, declared, false)
	if len(got) != 1 || !strings.Contains(got[0], "no test TestGone") {
		t.Errorf("partial run: %q, want only the undeclared test", got)
	}
	// The real page names only tests that exist.
	page, err := os.ReadFile(interopDoc)
	if err != nil {
		t.Fatal(err)
	}
	if got := checkInteropDoc(string(page), nil, declaredTests(), false); len(got) != 0 {
		t.Errorf("docs/interop.md:\n%s", strings.Join(got, "\n"))
	}
}
