// Package docs holds tests that keep the documentation honest: every test
// docs/security.md names exists, and the security properties it claims
// that cannot be observed at run time are checked in the source.
package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// testRefRE finds the tests security.md names: `dir/of/package.TestName`
// or `package.FuzzName`, the package as its directory.
var testRefRE = regexp.MustCompile("`([a-z0-9_]+(?:/[a-z0-9_]+)*)\\.((?:Test|Fuzz)[A-Za-z0-9_]+)`")

// bareRefRE finds test names written without their package.
var bareRefRE = regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)`")

// testFuncs returns the Test and Fuzz functions declared in dir's test
// files.
func testFuncs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				out[fd.Name.Name] = true
			}
		}
	}
	return out
}

// TestSecurityDocNamesRealTests: every test or fuzz target security.md
// names is declared in the package it names, and every guarantee (a row of
// a table under "## Guarantees") names at least one.
func TestSecurityDocNamesRealTests(t *testing.T) {
	b, err := os.ReadFile("security.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	refs := testRefRE.FindAllStringSubmatch(doc, -1)
	if len(refs) < 40 {
		t.Fatalf("security.md names %d tests; the threat model names far more", len(refs))
	}
	funcs := map[string]map[string]bool{}
	for _, r := range refs {
		dir, name := r[1], r[2]
		if funcs[dir] == nil {
			funcs[dir] = testFuncs(t, dir)
		}
		if !funcs[dir][name] {
			t.Errorf("security.md names %s.%s, which does not exist (no func %s in %s/*_test.go)", dir, name, name, dir)
		}
	}
	for _, m := range bareRefRE.FindAllStringSubmatch(doc, -1) {
		t.Errorf("security.md names %s without its package (write `package.%s`)", m[1], m[1])
	}
	_, guarantees, ok := strings.Cut(doc, "\n## Guarantees\n")
	if !ok {
		t.Fatal(`security.md has no "## Guarantees" section`)
	}
	guarantees, _, _ = strings.Cut(guarantees, "\n## ")
	rows := 0
	for _, line := range strings.Split(guarantees, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| Guarantee") {
			continue
		}
		rows++
		cells := strings.Split(strings.TrimSuffix(line, " |"), " | ")
		if last := cells[len(cells)-1]; !testRefRE.MatchString(last) {
			t.Errorf("guarantee without a test: %.100s…", line)
		}
	}
	if rows < 15 {
		t.Errorf("%d guarantees found; the parser of security.md's tables is broken", rows)
	}
}

// constantTime are the functions that compare secrets (MICs, ICVs,
// cookies): each must compare with hmac.Equal or
// subtle.ConstantTimeCompare.
var constantTime = []struct{ file, fn string }{
	{"auth/psk/psk.go", "session.Verify"},
	{"auth/kerberos/spec.go", "checkMIC"},
	{"ike/cookie.go", "cookieJar.valid"},
	{"transform/protector.go", "Protector.Open"},
	{"sadb/userspace/esp/esp.go", "SA.Open"},
	{"sadb/userspace/esp/ah.go", "AH.OpenIPv4"},
}

// TestSecretComparesAreConstantTime: the functions that compare secrets
// call a constant-time comparison, and their files compare no byte
// strings with bytes.Equal, bytes.Compare or == on string conversions,
// whose time depends on where the first difference is. (Timing itself is
// not measured: a verdict must not depend on the machine's speed.)
func TestSecretComparesAreConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	for _, c := range constantTime {
		file, err := parser.ParseFile(fset, filepath.Join("..", c.file), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || funcName(fd) != c.fn {
				continue
			}
			found = true
			if !calls(fd, "hmac.Equal") && !calls(fd, "subtle.ConstantTimeCompare") {
				t.Errorf("%s: %s compares without hmac.Equal or subtle.ConstantTimeCompare", c.file, c.fn)
			}
		}
		if !found {
			t.Errorf("%s: no function %s (renamed? update constantTime)", c.file, c.fn)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CallExpr:
				if name := selector(x.Fun); name == "bytes.Equal" || name == "bytes.Compare" {
					t.Errorf("%s: %s in a file that compares secrets; use hmac.Equal", fset.Position(x.Pos()), name)
				}
			case *ast.BinaryExpr:
				if (x.Op == token.EQL || x.Op == token.NEQ) && (isStringConv(x.X) || isStringConv(x.Y)) {
					t.Errorf("%s: == on a string conversion in a file that compares secrets; use hmac.Equal", fset.Position(x.Pos()))
				}
			}
			return true
		})
	}
}

// funcName is "Recv.Name" for a method, "Name" for a function.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	typ := fd.Recv.List[0].Type
	if s, ok := typ.(*ast.StarExpr); ok {
		typ = s.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// calls reports whether fd calls pkg.Name.
func calls(fd *ast.FuncDecl, name string) bool {
	found := false
	ast.Inspect(fd, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok && selector(c.Fun) == name {
			found = true
		}
		return !found
	})
	return found
}

// selector renders x.Sel, or "".
func selector(e ast.Expr) string {
	s, ok := e.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	if id, ok := s.X.(*ast.Ident); ok {
		return id.Name + "." + s.Sel.Name
	}
	return ""
}

// isStringConv reports whether e is string(x).
func isStringConv(e ast.Expr) bool {
	c, ok := e.(*ast.CallExpr)
	if !ok || len(c.Args) != 1 {
		return false
	}
	id, ok := c.Fun.(*ast.Ident)
	return ok && id.Name == "string"
}
