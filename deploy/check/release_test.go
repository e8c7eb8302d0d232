package check

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// releaseWorkflow is the part of .github/workflows/release.yml the check
// reads.
type releaseWorkflow struct {
	On struct {
		Push struct {
			Tags []string `yaml:"tags"`
		} `yaml:"push"`
	} `yaml:"on"`
	Jobs map[string]struct {
		Permissions map[string]string `yaml:"permissions"`
		Strategy    struct {
			Matrix struct {
				Include []map[string]string `yaml:"include"`
			} `yaml:"matrix"`
		} `yaml:"strategy"`
		Steps []struct {
			Uses string            `yaml:"uses"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// releasedImages reads the release workflow: the images (repository
// without tag) its tag push builds and pushes, each with the command
// directory it builds (the Dockerfile's CMD).
func releasedImages(t *testing.T, wf releaseWorkflow) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, job := range wf.Jobs {
		var login, meta, build map[string]string
		for _, s := range job.Steps {
			action, _, _ := strings.Cut(s.Uses, "@")
			switch action {
			case "docker/login-action":
				login = s.With
			case "docker/metadata-action":
				meta = s.With
			case "docker/build-push-action":
				build = s.With
			}
		}
		if build == nil {
			continue
		}
		if job.Permissions["packages"] != "write" {
			t.Errorf("job %s: permissions packages %q: pushing to ghcr.io needs write", name, job.Permissions["packages"])
		}
		if login == nil || login["registry"] != "ghcr.io" {
			t.Errorf("job %s: no docker/login-action to ghcr.io before it pushes", name)
		}
		if build["push"] != "true" || build["build-args"] != "CMD=${{ matrix.cmd }}" || meta == nil || build["tags"] != "${{ steps.meta.outputs.tags }}" {
			t.Errorf("job %s: build-push-action %v with metadata %v; want push true, CMD=${{ matrix.cmd }} and the metadata's tags", name, build, meta)
			continue
		}
		if meta["tags"] != "type=semver,pattern={{version}}" {
			t.Errorf("job %s: image tags %q, want the tag's version (type=semver,pattern={{version}})", name, meta["tags"])
		}
		for _, m := range job.Strategy.Matrix.Include {
			out[strings.ReplaceAll(meta["images"], "${{ matrix.service }}", m["service"])] = m["cmd"]
		}
	}
	return out
}

// TestReleaseBuildsTheManifestsImages: a tag push builds and pushes
// every image the overlays run, each from its service's command, under
// the version the prod overlay deploys; so `kubectl apply -k
// deploy/k8s/overlays/prod` at a release tag pulls images that exist.
func TestReleaseBuildsTheManifestsImages(t *testing.T) {
	root := mustRepoRoot(t)
	var wf releaseWorkflow
	mustYAML(t, &wf, filepath.Join(root, ".github", "workflows", "release.yml"))
	if !slices.Equal(wf.On.Push.Tags, []string{"v*"}) {
		t.Errorf("the release runs on tags %v, want [v*]", wf.On.Push.Tags)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ARG CMD$`).Match(dockerfile) {
		t.Error("the Dockerfile takes no CMD build argument, which the workflow passes")
	}
	built := releasedImages(t, wf)
	for dir, b := range Binaries {
		image := "ghcr.io/flashsale/" + b.Service
		if cmd, ok := built[image]; !ok || cmd != dir {
			t.Errorf("the release builds %s from %q, want from %s", image, cmd, dir)
		}
	}
	for _, overlay := range k8sOverlays {
		tags := map[string]bool{}
		for _, w := range workloads(MustManifests(t, overlay)) {
			for _, c := range w.Spec.Template.Spec.Containers {
				repo, tag, _ := strings.Cut(c.Image, ":")
				tags[tag] = true
				if _, ok := built[repo]; !ok {
					t.Errorf("overlay %s: %s runs %s, which the release does not build", overlay, w.Metadata.Name, c.Image)
				}
			}
		}
		if overlay == "prod" && (len(tags) != 1 || !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(slices.Collect(maps.Keys(tags))[0])) {
			t.Errorf("the prod overlay runs tags %v, want one release version X.Y.Z (what tag vX.Y.Z pushes)", tags)
		}
	}
}
