package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The service template (docs/architecture.md): the same file names for the
// same roles in every service. These checks hold the parts a reader
// navigates by.

// services lists the services of the tree (services/<name>/grpc exists).
func services(t *testing.T, root string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(root, "services", "*", "grpc"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no services/*/grpc under %s: %v", root, err)
	}
	var names []string
	for _, d := range dirs {
		names = append(names, filepath.Base(filepath.Dir(d)))
	}
	return names
}

// In grpc/, server.go is the incoming server; every other file is a
// client of the service it is named after (order's inventory.go,
// inventory_due.go; payment's order.go), so incoming and outgoing never
// share a file and a reader finds a call by the service it reaches.
func TestGRPCAdaptersNameTheServiceTheyCall(t *testing.T) {
	root := mustRepoRoot(t)
	all := services(t, root)
	for _, svc := range all {
		files, _ := filepath.Glob(filepath.Join(root, "services", svc, "grpc", "*.go"))
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".go")
			name = strings.TrimSuffix(name, "_test")
			if name == "server" {
				continue
			}
			peer, _, _ := strings.Cut(name, "_")
			if peer == svc || !slices.Contains(all, peer) {
				t.Errorf("services/%s/grpc/%s.go: want server.go or a file named for the service it calls (one of %v)", svc, name, all)
			}
		}
	}
}

// Each service's migrations are numbered 001, 002, … with no number used
// twice (goose orders them by it).
func TestMigrationNumbersAreUniquePerService(t *testing.T) {
	root := mustRepoRoot(t)
	dirs, _ := filepath.Glob(filepath.Join(root, "services", "*", "postgres", "migrations"))
	if len(dirs) == 0 {
		t.Fatal("no migrations found")
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		for _, e := range entries {
			num, _, ok := strings.Cut(e.Name(), "_")
			if !ok || len(num) != 3 {
				t.Errorf("%s/%s: want NNN_name.sql", d, e.Name())
				continue
			}
			if other, dup := seen[num]; dup {
				t.Errorf("%s: %s and %s share number %s", d, other, e.Name(), num)
			}
			seen[num] = e.Name()
		}
	}
}
