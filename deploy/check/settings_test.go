package check

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// docs/configuration.md is what the code says: every variable a binary
// reads, who reads it, its default and what it is for.
func TestConfigurationDocIsCurrent(t *testing.T) {
	root := mustRepoRoot(t)
	settings, err := Settings(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if s.Text() == "" {
			t.Errorf("%s: no field doc says what it is for; add a doc comment to the field it fills or a line to settingNotes", s.Name)
		}
	}
	for name := range settingNotes {
		if !slices.ContainsFunc(settings, func(s Setting) bool { return s.Name == name }) {
			t.Errorf("settingNotes explains %s, which no binary reads", name)
		}
	}
	want, err := ConfigurationDoc(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "docs", "configuration.md"))
	if err != nil || string(got) != want {
		t.Errorf("docs/configuration.md is out of date with the code: run make config-doc (%v)", err)
	}
}
