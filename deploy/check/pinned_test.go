package check

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// ownImages are the images this repository builds (the release workflow
// pushes them, tagged by release): they are not pinned by digest.
const ownImages = "ghcr.io/flashsale/"

var (
	digestPinned = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	fromLine     = regexp.MustCompile(`(?im)^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$`)
	k8sImage     = regexp.MustCompile(`(?m)^\s*(?:-\s+)?image:\s*["']?([^"'\s]+)`)
	allowedRow   = regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")
)

// imageRefs returns every image reference the platform pulls, with where
// it is named: the Dockerfile's FROM lines (not those naming an earlier
// stage), the compose services that are not built here, and the
// containers of deploy/k8s that do not run the platform's own images.
func imageRefs(t *testing.T, root string) map[string][]string {
	t.Helper()
	refs := map[string][]string{}
	add := func(ref, where string) {
		if !slices.Contains(refs[ref], where) {
			refs[ref] = append(refs[ref], where)
		}
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, m := range fromLine.FindAllStringSubmatch(string(dockerfile), -1) {
		if !slices.Contains(stages, m[1]) {
			add(m[1], "Dockerfile")
		}
		if m[2] != "" {
			stages = append(stages, m[2])
		}
	}
	for name, s := range mustComposeProject(t, nil).Services {
		if s.Build == nil && s.Image != "" {
			add(s.Image, "docker-compose.yml ("+name+")")
		}
	}
	for _, path := range repoFiles(t, filepath.Join(root, "deploy", "k8s"), func(name string) bool {
		return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
	}) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		for _, m := range k8sImage.FindAllStringSubmatch(string(raw), -1) {
			if !strings.HasPrefix(m[1], ownImages) {
				add(m[1], rel)
			}
		}
	}
	return refs
}

// unpinnedAllowed returns the images docs/operations.md lists, under
// "Pinned images", as not yet pinned by digest.
func unpinnedAllowed(t *testing.T, root string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Pinned images\n")
	if !ok {
		t.Fatal(`docs/operations.md has no "## Pinned images" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var allowed []string
	for _, m := range allowedRow.FindAllStringSubmatch(section, -1) {
		allowed = append(allowed, m[1])
	}
	return allowed
}

// Every image pulled from elsewhere is name:tag@sha256:<digest>, unless
// docs/operations.md lists it as not yet pinned; and every image listed
// there is still in use and still unpinned.
func TestImagesArePinnedByDigest(t *testing.T) {
	root := mustRepoRoot(t)
	refs := imageRefs(t, root)
	for _, want := range []string{"golang", "gcr.io/distroless/static-debian12", "postgres", "redis", "apache/kafka"} {
		found := false
		for ref := range refs {
			found = found || imageRepository(ref) == want
		}
		if !found {
			t.Errorf("no image %s among %d references: the search for them is wrong", want, len(refs))
		}
	}
	allowed := unpinnedAllowed(t, root)
	for ref, where := range refs {
		if !digestPinned.MatchString(ref) && !slices.Contains(allowed, ref) {
			t.Errorf("%s (%s) is not pinned by digest: pin it (docs/operations.md, \"Pinned images\") or list it there", ref, strings.Join(where, ", "))
		}
	}
	for _, ref := range allowed {
		if _, used := refs[ref]; !used {
			t.Errorf("docs/operations.md lists %s as unpinned, but nothing runs it so (pinned now, or gone): drop its row", ref)
		}
	}
}

func TestDigestPinned(t *testing.T) {
	for ref, want := range map[string]bool{
		"redis:7.4.5-alpine": false,
		"redis:7.4.5-alpine@sha256:bb186d083732f669da90be8b0f975a37812b15e913465bb14d845db72a4e3e08": true,
		"redis:7.4.5-alpine@sha256:bb186d08":        false,
		"gcr.io/distroless/static-debian12:nonroot": false,
	} {
		if got := digestPinned.MatchString(ref); got != want {
			t.Errorf("%s: pinned %v, want %v", ref, got, want)
		}
	}
}
