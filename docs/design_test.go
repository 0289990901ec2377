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

// mapRefRE finds the RFC map's entries: `dir/file.go:Func` or
// `dir/file.go:Type.method`.
var mapRefRE = regexp.MustCompile("`([a-z0-9_/]+\\.go):([A-Za-z0-9_]+(?:\\.[A-Za-z0-9_]+)?)`")

// TestDesignMapNamesRealFunctions: every function design.md's RFC map
// names is declared in the file it names (a method on the type it names),
// so that the map cannot go stale while the code moves.
func TestDesignMapNamesRealFunctions(t *testing.T) {
	b, err := os.ReadFile("design.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "## RFC map")
	if i < 0 {
		t.Fatal("design.md has no RFC map")
	}
	refs := mapRefRE.FindAllStringSubmatch(doc[i:], -1)
	if len(refs) < 30 {
		t.Fatalf("the RFC map names %d functions; it names far more", len(refs))
	}
	decls := map[string]map[string]bool{} // file → "Func" and "Type.method"
	fset := token.NewFileSet()
	for _, r := range refs {
		file, name := r[1], r[2]
		if decls[file] == nil {
			f, err := parser.ParseFile(fset, filepath.Join("..", file), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Errorf("%s: %v", file, err)
				decls[file] = map[string]bool{}
				continue
			}
			d := map[string]bool{}
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok {
					continue
				}
				if fd.Recv == nil {
					d[fd.Name.Name] = true
					continue
				}
				typ := fd.Recv.List[0].Type
				if s, ok := typ.(*ast.StarExpr); ok {
					typ = s.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					d[id.Name+"."+fd.Name.Name] = true
				}
			}
			decls[file] = d
		}
		if !decls[file][name] {
			t.Errorf("design.md's RFC map names %s in %s, which does not declare it", name, file)
		}
	}
}
