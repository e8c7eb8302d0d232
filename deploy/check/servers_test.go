package check

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every HTTP server of the repository is made by telemetry.NewServer, so
// none is left without its timeouts (a slow client holding a connection
// for good): no http.Server literal or new(http.Server) outside it.
func TestEveryHTTPServerIsMadeByNewServer(t *testing.T) {
	root := mustRepoRoot(t)
	own := filepath.Join(root, "platform", "telemetry", "server.go")
	var found []string
	for _, path := range repoFiles(t, root, func(name string) bool { return strings.HasSuffix(name, ".go") }) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if path == own || !bytes.Contains(src, []byte("Server")) {
			continue
		}
		for _, at := range handMadeServers(t, path, src) {
			rel, _ := filepath.Rel(root, at.Filename)
			found = append(found, fmt.Sprintf("%s:%d", rel, at.Line))
		}
	}
	if len(found) > 0 {
		t.Errorf("http.Server made without telemetry.NewServer at:\n\t%s", strings.Join(found, "\n\t"))
	}
}

// handMadeServers returns where a Go file makes an http.Server as a
// literal or with new.
func handMadeServers(t *testing.T, path string, src []byte) []token.Position {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	pkg := importName(f, "net/http")
	if pkg == "" {
		return nil
	}
	var at []token.Position
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if isSelector(n.Type, pkg, "Server") {
				at = append(at, fset.Position(n.Pos()))
			}
		case *ast.CallExpr:
			if fn, ok := n.Fun.(*ast.Ident); ok && fn.Name == "new" && len(n.Args) == 1 && isSelector(n.Args[0], pkg, "Server") {
				at = append(at, fset.Position(n.Pos()))
			}
		}
		return true
	})
	return at
}
