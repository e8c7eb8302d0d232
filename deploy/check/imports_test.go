package check

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// archived are modules whose maintainers archived them, with the module
// that carries them on: no module of the repository imports or requires
// them directly.
var archived = map[string]string{
	"gopkg.in/yaml.v3": "go.yaml.in/yaml/v3",
}

// repoFiles returns the repository's files whose name satisfies keep.
func repoFiles(t *testing.T, root string, keep func(name string) bool) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && keep(d.Name()) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestNoArchivedModuleImported(t *testing.T) {
	root := mustRepoRoot(t)
	goFiles := repoFiles(t, root, func(name string) bool { return strings.HasSuffix(name, ".go") })
	if len(goFiles) < 100 {
		t.Fatalf("only %d Go files found under %s", len(goFiles), root)
	}
	fset := token.NewFileSet()
	for _, path := range goFiles {
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if next, ok := archived[p]; ok {
				t.Errorf("%s imports %s, which is archived: use %s", fset.Position(imp.Pos()), p, next)
			}
		}
	}
	for _, path := range repoFiles(t, root, func(name string) bool { return name == "go.mod" }) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for old, next := range archived {
			direct := regexp.MustCompile(`(?m)^\s*(require\s+)?` + regexp.QuoteMeta(old) + `\s+v\S+\s*$`)
			if direct.Match(raw) {
				t.Errorf("%s requires %s directly, which is archived: use %s", path, old, next)
			}
		}
	}
}
