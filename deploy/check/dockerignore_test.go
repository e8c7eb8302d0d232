package check

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// mustDockerignore reads the repository's .dockerignore as docker's
// builder does.
func mustDockerignore(tb testing.TB, root string) *patternmatcher.PatternMatcher {
	tb.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		tb.Fatalf(".dockerignore: %v", err)
	}
	m, err := patternmatcher.New(patterns)
	if err != nil {
		tb.Fatalf(".dockerignore: %v", err)
	}
	return m
}

func ignored(tb testing.TB, m *patternmatcher.PatternMatcher, path string) bool {
	tb.Helper()
	ok, err := m.MatchesOrParentMatches(filepath.ToSlash(path))
	if err != nil {
		tb.Fatalf(".dockerignore on %s: %v", path, err)
	}
	return ok
}

var (
	// outFlag is a command's -out flag and its default directory.
	outFlag = regexp.MustCompile(`flag\.String\("out", "([^"]+)"`)
	// makeBin is the Makefile's directory for built tools and binaries.
	makeBin = regexp.MustCompile(`(?m)^BIN := \$\(CURDIR\)/(\S+)$`)
)

// writtenDirs returns the directories of the repository the tools write
// to, from their own defaults: every command's -out flag, the Makefile's
// BIN, and every writable bind mount of the compose file inside the
// repository.
func writtenDirs(t *testing.T, root string, p *types.Project) []string {
	t.Helper()
	var dirs []string
	mains, err := filepath.Glob(filepath.Join(root, "*", "cmd", "*", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(root, "*", "*", "cmd", "*", "main.go"))
	for _, main := range append(mains, more...) {
		src, err := os.ReadFile(main)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range outFlag.FindAllSubmatch(src, -1) {
			dirs = append(dirs, string(m[1]))
		}
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := makeBin.FindSubmatch(makefile)
	if m == nil {
		t.Fatal("Makefile: no BIN := $(CURDIR)/<dir>")
	}
	dirs = append(dirs, string(m[1]))
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind || v.ReadOnly {
				continue
			}
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			if rel == "." {
				t.Errorf("%s mounts the whole repository writable", name)
				continue
			}
			dirs = append(dirs, rel)
		}
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// The build context leaves out every directory the tools write, so a
// load-test run or a build does not change it (which rebuilt all seven
// images after each run), and everything .gitignore leaves out.
func TestDockerignoreLeavesOutWhatToolsWrite(t *testing.T) {
	root := mustRepoRoot(t)
	m := mustDockerignore(t, root)
	dirs := writtenDirs(t, root, mustComposeProject(t, nil))
	for _, want := range []string{"loadtest/out", "loadtest/reports", ".bin"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("the tools' written directories %v miss %s: the test no longer finds the defaults", dirs, want)
		}
	}
	for _, dir := range append(dirs, ".git") {
		if !ignored(t, m, filepath.Join(dir, "report.html")) {
			t.Errorf(".dockerignore does not leave out %s, which the tools write", dir)
		}
	}
	for _, path := range gitignoredSamples(t, root) {
		if !ignored(t, m, path) {
			t.Errorf(".dockerignore keeps %s, which .gitignore leaves out", path)
		}
	}
}

// gitignoredSamples returns a path .gitignore ignores for each of its
// patterns: an anchored pattern (/dir/) names a file in that directory,
// an unanchored one (*.test) a file two directories deep.
func gitignoredSamples(t *testing.T, root string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var samples []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "!") {
			continue
		}
		name := strings.ReplaceAll(strings.TrimSuffix(line, "/"), "*", "x")
		if strings.HasPrefix(name, "/") {
			samples = append(samples, strings.TrimPrefix(name, "/")+"/f")
		} else {
			samples = append(samples, "services/order/"+name)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples
}

// Everything the Dockerfile copies reaches the build: for COPY . . the
// workspace and module files and every non-test Go, SQL and Lua file
// (the migrations and scripts are embedded).
func TestDockerignoreKeepsWhatTheDockerfileCopies(t *testing.T) {
	root := mustRepoRoot(t)
	m := mustDockerignore(t, root)
	sources := dockerfileCopySources(t, root)
	if len(sources) == 0 {
		t.Fatal("the Dockerfile copies nothing from the build context")
	}
	for _, src := range sources {
		if src != "." {
			if ignored(t, m, src) {
				t.Errorf("the Dockerfile copies %s, which .dockerignore leaves out", src)
			}
			continue
		}
		var kept int
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			if d.IsDir() {
				if d.Name() == ".git" {
					return filepath.SkipDir
				}
				return nil
			}
			if !neededToBuild(d.Name()) {
				return nil
			}
			if ignored(t, m, rel) {
				t.Errorf("%s is needed to build but .dockerignore leaves it out", rel)
			}
			kept++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if kept < 100 {
			t.Errorf("only %d files needed to build: the walk is wrong", kept)
		}
	}
}

// neededToBuild reports whether a file of that name is read by go build.
func neededToBuild(name string) bool {
	switch name {
	case "go.work", "go.work.sum", "go.mod", "go.sum":
		return true
	}
	if strings.HasSuffix(name, "_test.go") {
		return false
	}
	return slices.Contains([]string{".go", ".sql", ".lua"}, filepath.Ext(name))
}

// dockerfileCopySources returns the build-context sources of the
// Dockerfile's COPY and ADD instructions (not those copying from a stage).
func dockerfileCopySources(t *testing.T, root string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "COPY" && f[0] != "ADD") {
			continue
		}
		args := f[1:]
		fromStage := false
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			fromStage = fromStage || strings.HasPrefix(args[0], "--from=")
			args = args[1:]
		}
		if !fromStage && len(args) >= 2 {
			sources = append(sources, args[:len(args)-1]...)
		}
	}
	return sources
}
