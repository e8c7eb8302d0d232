package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPackageGraphIsCurrent(t *testing.T) {
	root := mustRepoRoot(t)
	want, err := PackageGraphDoc(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "docs", "package-graph.md"))
	if err != nil || string(got) != want {
		t.Errorf("docs/package-graph.md is out of date with the imports: run make package-graph (%v)", err)
	}
}

// TestPackageGraphSeesACrossServiceImport shows the graph's table counts
// an import of another service's code, and tells it from a contract.
func TestPackageGraphSeesACrossServiceImport(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		t.Helper()
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("services/payment/channel/wire/wire.go", "package wire\n")
	write("services/payment/payment.go", "package payment\n")
	write("services/channelsim/sim.go", "package channelsim\nimport _ \"github.com/flashsale/flashsale/services/payment/channel/wire\"\n")
	write("services/order/order.go", "package order\nimport _ \"github.com/flashsale/flashsale/services/payment\"\n")
	write("services/order/order_test.go", "package order\nimport _ \"github.com/flashsale/flashsale/services/product\"\n")
	doc, err := PackageGraphDoc(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{
		"| channelsim | service | 1 | 0 | 0 | 1 | 0 |",
		"| order | service | 1 | 0 | 0 | 0 | 1 |", // the test file's import is not counted
		"| payment | service | 2 | 0 | 0 | 0 | 0 |",
	} {
		if !strings.Contains(doc, row) {
			t.Errorf("the table has no row %q:\n%s", row, doc)
		}
	}
}
