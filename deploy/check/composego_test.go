package check

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads a compose file as `docker compose` does (compose-go
// is its loader): validated against the compose specification's schema,
// interpolated from env alone (nothing of this process's environment),
// normalised and checked for consistency (depends_on, networks and
// volumes that exist), with every profile active.
func loadCompose(ctx context.Context, file string, env map[string]string) (*types.Project, error) {
	var pairs []string
	for k, v := range env {
		pairs = append(pairs, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithName("flashsale"),
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithEnv(pairs),
		cli.WithProfiles([]string{"*"}),
		cli.WithDiscardEnvFile,
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(ctx)
}

// mustComposeProject loads docker-compose.yml with compose-go, with env
// as the only environment (a fresh machine when empty).
func mustComposeProject(tb testing.TB, env map[string]string) *types.Project {
	tb.Helper()
	root := mustRepoRoot(tb)
	p, err := loadCompose(context.Background(), filepath.Join(root, "docker-compose.yml"), env)
	if err != nil {
		tb.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// TestComposeLoadsWithComposeGo: docker compose accepts the file, with
// every profile.
func TestComposeLoadsWithComposeGo(t *testing.T) {
	p := mustComposeProject(t, nil)
	_, f := MustCompose(t)
	if len(p.Services) != len(f.Services) {
		t.Errorf("compose-go loads %d services, the file has %d", len(p.Services), len(f.Services))
	}
}

// The loader refuses what the schema and the consistency checks refuse.
func TestComposeGoRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown key":        "services:\n  a:\n    image: x:1\n    enviroment: {A: b}\n",
		"unknown dependency": "services:\n  a:\n    image: x:1\n    depends_on: {b: {condition: service_healthy}}\n",
		"bad condition":      "services:\n  a:\n    image: x:1\n    depends_on: {b: {condition: healthy}}\n  b:\n    image: x:1\n",
		"unknown volume":     "services:\n  a:\n    image: x:1\n    volumes: [data:/data]\n",
	} {
		file := filepath.Join(t.TempDir(), "compose.yml")
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadCompose(context.Background(), file, nil); err == nil {
			t.Errorf("%s: loaded without an error", name)
		}
	}
}
