package check

import "testing"

// mustRepoRoot returns the repository's root, or ends the test.
func mustRepoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}
