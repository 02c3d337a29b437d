// gobatch_check: which Go programs may share one test binary (eval/execution/go_batch.py).
//
// Usage: gobatch_check FILE...   One JSON line per file, in order:
//   {"ok": true, "name_offset": N, "tests": ["TestA", ...]}   or   {"ok": false, "reason": "..."}
//
// A program may join a batch only when running it from a shared binary (its package renamed,
// its tests called through wrappers, -test.run selecting them) cannot change its verdict: no code
// of its own runs before its tests (no init, no calls in package-level initialisers), nothing
// that `go test` treats specially besides TestXxx(t *testing.T) (TestMain, benchmarks, fuzz
// targets, examples), nothing that sees its package name, path or test names (reflect, runtime,
// unsafe, %T / %#v, t.Name()), no compiler directives, and only imports that resolve in the
// standard library or Debian's testify. Everything else runs alone, exactly as `go test` would.
// Built once by eval/execution/toolchains.py with the standard library only.
package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type verdict struct {
	OK         bool     `json:"ok"`
	Reason     string   `json:"reason,omitempty"`
	NameOffset int      `json:"name_offset,omitempty"`
	Tests      []string `json:"tests,omitempty"`
}

var testifyRoot = "/usr/share/gocode/src"

var forbiddenImports = map[string]bool{"reflect": true, "runtime": true, "unsafe": true, "C": true, "plugin": true}

// isTest is `go test`'s rule: prefix, then nothing or a rune that is not lower case.
func isTest(name, prefix string) bool {
	if !strings.HasPrefix(name, prefix) {
		return false
	}
	if len(name) == len(prefix) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(name[len(prefix):])
	return !unicode.IsLower(r)
}

func checkImports(f *ast.File) (string, string) {
	testingName := ""
	for _, spec := range f.Imports {
		path, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			return "", "bad import path"
		}
		if forbiddenImports[path] || strings.HasPrefix(path, "runtime/") || strings.Contains(path, "internal") {
			return "", "imports " + path
		}
		std := !strings.Contains(strings.Split(path, "/")[0], ".")
		dir := filepath.Join(runtime.GOROOT(), "src", path)
		if !std {
			if !strings.HasPrefix(path, "github.com/stretchr/testify/") {
				return "", "imports " + path
			}
			dir = filepath.Join(testifyRoot, path)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return "", "imports unknown package " + path
		}
		if path == "testing" {
			if spec.Name != nil && spec.Name.Name != "testing" {
				return "", "imports testing under another name"
			}
			testingName = "testing"
		}
	}
	return testingName, ""
}

// isPlainTest: func TestXxx(t *testing.T) with no results and no type parameters.
func isPlainTest(fn *ast.FuncDecl, testingName string) bool {
	ft := fn.Type
	if ft.TypeParams != nil || (ft.Results != nil && len(ft.Results.List) > 0) {
		return false
	}
	if ft.Params == nil || len(ft.Params.List) != 1 || len(ft.Params.List[0].Names) > 1 {
		return false
	}
	star, ok := ft.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "T" {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && testingName != "" && pkg.Name == testingName
}

func checkFuncs(f *ast.File, testingName string) ([]string, string) {
	var tests []string
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Recv != nil {
			continue
		}
		name := fn.Name.Name
		switch {
		case name == "init" || name == "main" || name == "TestMain":
			return nil, "declares " + name
		case isTest(name, "Test"):
			if !isPlainTest(fn, testingName) {
				return nil, "test " + name + " is not func(t *testing.T)"
			}
			tests = append(tests, name)
		case isTest(name, "Benchmark"), isTest(name, "Fuzz"), strings.HasPrefix(name, "Example"):
			return nil, "declares " + name
		}
	}
	return tests, ""
}

// runsCodeAtInit: a call or channel receive in a package-level initialiser (function literals
// are not entered: they run only when called).
func runsCodeAtInit(f *ast.File) bool {
	found := false
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.VAR {
			continue
		}
		ast.Inspect(gen, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.FuncLit:
				return false
			case *ast.CallExpr:
				found = true
			case *ast.UnaryExpr:
				if x.Op == token.ARROW {
					found = true
				}
			}
			return !found
		})
	}
	return found
}

// seesItsOwnNames: t.Name(), %T or %#v format verbs (they print the package name).
func seesItsOwnNames(f *ast.File) bool {
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.BasicLit:
			if x.Kind == token.STRING && (strings.Contains(x.Value, "%T") || strings.Contains(x.Value, "%#v")) {
				found = true
			}
		case *ast.SelectorExpr:
			if x.Sel.Name == "Name" {
				found = true
			}
		}
		return !found
	})
	return found
}

func check(path string) verdict {
	src, err := os.ReadFile(path)
	if err != nil {
		return verdict{Reason: err.Error()}
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		return verdict{Reason: "does not parse"}
	}
	if f.Name.Name != "main" {
		return verdict{Reason: "package is not main"}
	}
	for _, group := range f.Comments {
		for _, c := range group.List {
			if strings.HasPrefix(c.Text, "//go:") || strings.HasPrefix(c.Text, "// +build") ||
				strings.HasPrefix(c.Text, "//line") || strings.HasPrefix(c.Text, "/*line") {
				return verdict{Reason: "compiler directive"}
			}
		}
	}
	testingName, reason := checkImports(f)
	if reason != "" {
		return verdict{Reason: reason}
	}
	tests, reason := checkFuncs(f, testingName)
	if reason != "" {
		return verdict{Reason: reason}
	}
	if runsCodeAtInit(f) {
		return verdict{Reason: "package-level initialiser runs code"}
	}
	if seesItsOwnNames(f) {
		return verdict{Reason: "may observe package or test names"}
	}
	return verdict{OK: true, NameOffset: fset.Position(f.Name.Pos()).Offset, Tests: tests}
}

func main() {
	if root := os.Getenv("GOBATCH_TESTIFY_ROOT"); root != "" {
		testifyRoot = root
	}
	enc := json.NewEncoder(os.Stdout)
	for _, path := range os.Args[1:] {
		if err := enc.Encode(check(path)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
