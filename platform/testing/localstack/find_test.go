package localstack

import (
	"strings"
	"testing"
)

// A machine without the servers gets told what to install, not a bare
// "executable file not found".
func TestMissingBinariesSayWhatToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	empty := []string{t.TempDir()}
	if _, err := findRedis(empty); err == nil || !strings.Contains(err.Error(), "apt-get install redis-server") {
		t.Errorf("findRedis without redis-server: %v", err)
	}
	if _, err := findPostgres(empty); err == nil || !strings.Contains(err.Error(), "apt-get install redis-server postgresql") || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("findPostgres without postgres: %v", err)
	}
}
