package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestArchitectureNamesExist: every Go name docs/ARCHITECTURE.md puts in
// backticks (Hub.Probe, hub.MemoryHistory, rawFraming, room.mu, ...)
// names something in the code, so the document cannot keep a name the
// code has dropped. A name is checked when it looks like Go: qualified
// with dots, exported, or camelCase; plain lower-case words are the
// protocol's (`say`, `seq`) and are not.
func TestArchitectureNamesExist(t *testing.T) {
	root := filepath.Join("..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := codeNames(t, root)
	goName := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\(\))?$`)
	checked := 0
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(string(doc), -1) {
		name := m[1]
		if !goName.MatchString(name) || !looksLikeGo(name) || strings.HasSuffix(name, ".go") || strings.HasSuffix(name, ".md") {
			continue
		}
		checked++
		for _, part := range strings.Split(strings.TrimSuffix(name, "()"), ".") {
			if !names[part] {
				t.Errorf("docs/ARCHITECTURE.md names `%s`, but the code has no %q", name, part)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d names checked: the test no longer reads the document's names", checked)
	}
}

// looksLikeGo tells a Go name from a word of the protocol's.
func looksLikeGo(name string) bool {
	if strings.Contains(name, ".") || unicode.IsUpper(rune(name[0])) {
		return true
	}
	for _, r := range name[1:] {
		if unicode.IsUpper(r) {
			return true // camelCase
		}
	}
	return false
}

// codeNames is every identifier and package name in the module's Go
// files, tests left out, and every word of the web page's JavaScript
// (the document describes both clients).
func codeNames(t *testing.T, root string) map[string]bool {
	names := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".js") {
			js, err := os.ReadFile(path)
			for _, w := range regexp.MustCompile(`[A-Za-z_$][A-Za-z0-9_$]*`).FindAllString(string(js), -1) {
				names[w] = true
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		names[f.Name.Name] = true
		ast.Inspect(f, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				names[id.Name] = true
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
