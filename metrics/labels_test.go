package metrics

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/iked/iked/ike"
)

// engineFailureLabels reads the handshake-failure labels the engine counts
// from its sources: string literals passed to failure() and counted(),
// assigned to a refusal's failure field, or returned by failureReason and
// failureLabel.
func engineFailureLabels(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../ike/*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	// consts are the package's string constants, for a label counted
	// by name (counted(failurePQRequired)).
	consts := map[string]string{}
	lit := func(e ast.Expr) {
		if id, ok := e.(*ast.Ident); ok {
			if v, ok := consts[id.Name]; ok {
				seen[v] = true
			}
		}
		if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
			if v, err := strconv.Unquote(b.Value); err == nil {
				seen[v] = true
			}
		}
	}
	fset := token.NewFileSet()
	var parsed []*ast.File
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, sp := range g.Specs {
					vs := sp.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if b, ok := vs.Values[i].(*ast.BasicLit); ok && b.Kind == token.STRING {
								if v, err := strconv.Unquote(b.Value); err == nil {
									consts[n.Name] = v
								}
							}
						}
					}
				}
			}
		}
	}
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "failure" || sel.Sel.Name == "counted") && len(x.Args) == 1 {
					lit(x.Args[0])
				}
			case *ast.AssignStmt:
				for i, l := range x.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "failure" && i < len(x.Rhs) {
						lit(x.Rhs[i])
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := x.Key.(*ast.Ident); ok && k.Name == "failure" {
					lit(x.Value)
				}
			case *ast.FuncDecl:
				if x.Name.Name == "failureReason" || x.Name.Name == "failureLabel" {
					ast.Inspect(x.Body, func(n ast.Node) bool {
						if r, ok := n.(*ast.ReturnStmt); ok && len(r.Results) == 1 {
							lit(r.Results[0])
						}
						return true
					})
				}
			}
			return true
		})
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestKnownFailuresCoverEngine: every failure label the engine counts is
// exported from the start (at 0), and every label exported is one the
// engine counts, so that alerts on a reason work before its first failure.
func TestKnownFailuresCoverEngine(t *testing.T) {
	engine := engineFailureLabels(t)
	if len(engine) < 5 {
		t.Fatalf("found only %v in ike's sources: the scan no longer sees how failures are counted", engine)
	}
	for _, l := range engine {
		if !slices.Contains(knownFailures, l) {
			t.Errorf("the engine counts failure %q, which is not exported before it happens (add it to knownFailures and docs/metrics.md)", l)
		}
	}
	for _, l := range knownFailures {
		if !slices.Contains(engine, l) {
			t.Errorf("failure %q is exported but the engine never counts it", l)
		}
	}
}

// TestKnownLabelsFromTheStart: a fresh engine's scrape has every failure
// reason, drop reason and error notify at 0.
func TestKnownLabelsFromTheStart(t *testing.T) {
	body := scrape(t, Handler(&fakeSource{stats: ike.Stats{}}))
	for _, want := range [][2]string{
		{"iked_handshakes_failed_total", `reason="no_proposal_chosen"`},
		{"iked_handshakes_failed_total", `reason="dead_peer"`},
		{"iked_handshakes_failed_total", `reason="auth_mismatch"`},
		{"iked_notifies_sent_total", `type="AUTHENTICATION_FAILED"`},
		{"iked_notifies_sent_total", `type="TS_UNACCEPTABLE"`},
		{"iked_notifies_sent_total", `type="COOKIE"`},
		{"iked_packets_dropped_total", `reason="integrity"`},
	} {
		if !strings.Contains(body, "\n"+want[0]+"{"+want[1]+`,version="ikev2"} 0`+"\n") {
			t.Errorf("scrape lacks %s{%s} 0", want[0], want[1])
		}
	}
}
