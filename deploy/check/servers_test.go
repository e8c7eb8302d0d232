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
	found := findInGoFiles(t, root, "Server", func(path string) bool {
		return path != own
	}, handMadeServers)
	if len(found) > 0 {
		t.Errorf("http.Server made without telemetry.NewServer at:\n\t%s", strings.Join(found, "\n\t"))
	}
}

// findInGoFiles returns, as file:line under root, what find reports in
// the Go files that keep (by path) and that contain the word.
func findInGoFiles(t *testing.T, root, word string, keep func(path string) bool,
	find func(t *testing.T, path string, src []byte) []token.Position) []string {
	t.Helper()
	var found []string
	for _, path := range repoFiles(t, root, func(name string) bool { return strings.HasSuffix(name, ".go") }) {
		if !keep(path) {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(src, []byte(word)) {
			continue
		}
		for _, at := range find(t, path, src) {
			rel, _ := filepath.Rel(root, at.Filename)
			found = append(found, fmt.Sprintf("%s:%d", rel, at.Line))
		}
	}
	return found
}

// handMadeServers returns where a Go file makes an http.Server as a
// literal or with new.
func handMadeServers(t *testing.T, path string, src []byte) []token.Position {
	t.Helper()
	var at []token.Position
	inspectHTTP(t, path, src, func(fset *token.FileSet, pkg string, n ast.Node) {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if isSelector(n.Type, pkg, "Server") {
				at = append(at, fset.Position(n.Pos()))
			}
		case *ast.CallExpr:
			if isNew(n, pkg, "Server") {
				at = append(at, fset.Position(n.Pos()))
			}
		}
	})
	return at
}

// Every HTTP client of the repository's programs names its connection
// pool: it is made by telemetry.NewClient or given a Transport of its
// own. A client literal without one shares http.DefaultTransport, which
// keeps two idle connections per host, so under a spike all but two of
// its concurrent calls dial a connection and close it after (the payment
// service's channel clients did; with the channel simulator's unread
// answers, opening and closing connections took about 1.2 s of the
// platform process's CPU in a Double-11 replay). Tests may use the
// default; http.DefaultClient is left to one-shot probes (the healthcheck
// binary, deploy/local's waits).
func TestEveryHTTPClientNamesItsPool(t *testing.T) {
	found := findInGoFiles(t, mustRepoRoot(t), "Client", func(path string) bool {
		return !strings.HasSuffix(path, "_test.go")
	}, defaultPoolClients)
	if len(found) > 0 {
		t.Errorf("http.Client on http.DefaultTransport (use telemetry.NewClient) at:\n\t%s", strings.Join(found, "\n\t"))
	}
}

// The check finds every client on the default transport: a literal
// without a Transport or with http.DefaultTransport, new(http.Client), a
// zero http.Client variable; and only those.
func TestDefaultPoolClientsAreFound(t *testing.T) {
	src := []byte(`package p

import web "net/http"

var (
	pooled  = &web.Client{Transport: web.DefaultTransport.(*web.Transport).Clone()}
	shared  = &web.Client{Timeout: 1}
	bare    = web.Client{}
	named   = &web.Client{Transport: web.DefaultTransport}
	made    = new(web.Client)
	server  = new(web.Server)
)

var zero web.Client
`)
	var lines []int
	for _, at := range defaultPoolClients(t, "p.go", src) {
		lines = append(lines, at.Line)
	}
	if fmt.Sprint(lines) != "[7 8 9 10 14]" {
		t.Errorf("found clients on lines %v, want [7 8 9 10 14]", lines)
	}
}

// defaultPoolClients returns where a Go file makes an http.Client on
// http.DefaultTransport: a literal without a Transport or with that one,
// new(http.Client), or a variable of type http.Client.
func defaultPoolClients(t *testing.T, path string, src []byte) []token.Position {
	t.Helper()
	var at []token.Position
	inspectHTTP(t, path, src, func(fset *token.FileSet, pkg string, n ast.Node) {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if isSelector(n.Type, pkg, "Client") && !namesItsTransport(n, pkg) {
				at = append(at, fset.Position(n.Pos()))
			}
		case *ast.CallExpr:
			if isNew(n, pkg, "Client") {
				at = append(at, fset.Position(n.Pos()))
			}
		case *ast.ValueSpec:
			if n.Type != nil && isSelector(n.Type, pkg, "Client") {
				at = append(at, fset.Position(n.Pos()))
			}
		}
	})
	return at
}

// isNew reports whether call is new(pkg.name).
func isNew(call *ast.CallExpr, pkg, name string) bool {
	fn, ok := call.Fun.(*ast.Ident)
	return ok && fn.Name == "new" && len(call.Args) == 1 && isSelector(call.Args[0], pkg, name)
}

// namesItsTransport reports whether a client literal sets a Transport
// other than http.DefaultTransport.
func namesItsTransport(lit *ast.CompositeLit, pkg string) bool {
	for _, e := range lit.Elts {
		if kv, ok := e.(*ast.KeyValueExpr); ok {
			if key, ok := kv.Key.(*ast.Ident); ok && key.Name == "Transport" {
				return !isSelector(kv.Value, pkg, "DefaultTransport")
			}
		}
	}
	return false
}

// inspectHTTP calls visit with every node of a Go file that imports
// net/http, and the name the file gives the package.
func inspectHTTP(t *testing.T, path string, src []byte, visit func(fset *token.FileSet, pkg string, n ast.Node)) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	pkg := importName(f, "net/http")
	if pkg == "" {
		return
	}
	ast.Inspect(f, func(n ast.Node) bool {
		visit(fset, pkg, n)
		return true
	})
}
