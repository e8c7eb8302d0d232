package check

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// mainService returns the service name a command's main.go hands to
// serve.Main, which sets up its logging and tracing under that name.
func mainService(file string) (string, bool) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		return "", false
	}
	var name string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Main" {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "serve" {
			return true
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			name, _ = strconv.Unquote(lit.Value)
		}
		return false
	})
	return name, name != ""
}

// TestEveryServiceTracesUnderItsName: each binary starts through
// serve.Main with its service's name (the one compose, Kubernetes and
// Consul use), and the tracing serve.Main sets up with that name exports
// spans whose resource carries it as service.name, so Jaeger lists each
// service apart instead of one unknown_service.
func TestEveryServiceTracesUnderItsName(t *testing.T) {
	root := mustRepoRoot(t)
	unsetenv(t, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")
	for dir, b := range Binaries {
		name, ok := mainService(filepath.Join(root, dir, "main.go"))
		if !ok {
			t.Errorf("%s: main.go does not start through serve.Main(\"<service>\", ...)", dir)
			continue
		}
		if name != b.Service {
			t.Errorf("%s: serve.Main(%q, ...), want the service's name %q", dir, name, b.Service)
		}
		exp := tracetest.NewInMemoryExporter()
		shutdown, err := telemetry.SetupTracing(context.Background(), telemetry.Tracing{Service: name, Exporter: exp})
		if err != nil {
			t.Fatal(err)
		}
		_, span := otel.Tracer("check").Start(context.Background(), "op")
		span.End()
		spans := exp.GetSpans()
		if err := shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(spans) != 1 {
			t.Errorf("%s: %d spans exported, want 1", b.Service, len(spans))
			continue
		}
		if v, _ := spans[0].Resource.Set().Value(semconv.ServiceNameKey); v.AsString() != b.Service {
			t.Errorf("%s: spans carry service.name %q", b.Service, v.AsString())
		}
	}
}

// unsetenv unsets the variables for the test (restored after it).
func unsetenv(t *testing.T, keys ...string) {
	for _, k := range keys {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}
