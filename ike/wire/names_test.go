package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEveryConstantHasAName reads the package's own source: every
// constant declared with one of the named enum types has an entry in its
// table, so a constant added without its name fails here rather than
// printing as a number in logs and metrics.
func TestEveryConstantHasAName(t *testing.T) {
	has := map[string]func(uint64) bool{
		"ExchangeType":  func(v uint64) bool { _, ok := exchangeNames[ExchangeType(v)]; return ok },
		"PayloadType":   func(v uint64) bool { _, ok := payloadNames[PayloadType(v)]; return ok },
		"ProtocolID":    func(v uint64) bool { _, ok := protocolNames[ProtocolID(v)]; return ok },
		"TransformType": func(v uint64) bool { _, ok := transformTypeNames[TransformType(v)]; return ok },
		"IDType":        func(v uint64) bool { _, ok := idTypeNames[IDType(v)]; return ok },
		"AuthMethod":    func(v uint64) bool { _, ok := authMethodNames[AuthMethod(v)]; return ok },
		"NotifyType":    func(v uint64) bool { _, ok := notifyNames[NotifyType(v)]; return ok },
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				id, ok := vs.Type.(*ast.Ident)
				if !ok || has[id.Name] == nil || len(vs.Values) != 1 || vs.Names[0].Name == "AuthPrivateUseMin" {
					continue
				}
				lit, ok := vs.Values[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.INT {
					continue
				}
				v, err := strconv.ParseUint(lit.Value, 0, 16)
				if err != nil {
					t.Fatal(err)
				}
				if !has[id.Name](v) {
					t.Errorf("%s %s = %d has no name in its table", id.Name, vs.Names[0].Name, v)
				}
				checked++
			}
		}
	}
	if checked < 60 {
		t.Fatalf("checked only %d constants: the source walk is broken", checked)
	}
}

// TestUnnamedValuesPrintTheirNumber: what iked has always printed for a
// value without a name (metric labels depend on it).
func TestUnnamedValuesPrintTheirNumber(t *testing.T) {
	for got, want := range map[string]string{
		NotifyType(12345).String(): "NOTIFY_12345", ExchangeType(99).String(): "exchange-99",
		NotifyNoProposalChosen.String(): "NO_PROPOSAL_CHOSEN", IKE_AUTH.String(): "IKE_AUTH", AuthMethod(201).String(): "AUTH_201",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
