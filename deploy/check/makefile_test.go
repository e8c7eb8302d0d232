package check

import (
	"os/exec"
	"strings"
	"testing"
)

// makeDryRun returns the commands make would run for targets (make -n,
// which runs none of them).
func makeDryRun(t *testing.T, root string, targets ...string) string {
	t.Helper()
	out, err := exec.Command("make", append([]string{"-n", "-C", root}, targets...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", strings.Join(targets, " "), err, out)
	}
	return string(out)
}

// Running the platform installs only what it runs: chromium, which only
// the report test needs, is installed by the test path alone.
func TestMakeRunTargetsNeedNoBrowser(t *testing.T) {
	root := mustRepoRoot(t)
	for _, target := range []string{"up", "up-split", "demo", "bench", "loadtest", "deps"} {
		if cmds := makeDryRun(t, root, target); strings.Contains(cmds, "chromium") {
			t.Errorf("make %s installs chromium, which only the report test needs:\n%s", target, cmds)
		}
	}
	if cmds := makeDryRun(t, root, "test"); !strings.Contains(cmds, `missing="$missing chromium"`) {
		t.Errorf("make test does not install chromium, which the report test renders with:\n%s", cmds)
	}
}
