package gateway_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/gateway"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// lockedBuffer is a log destination shared with the snapshot goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// A request that outlives the call budget has the flight recorder write
// the process's last seconds; a request within it writes nothing. (Not
// parallel: the process runs one flight recorder, and a parallel test's
// slow request would take this one's snapshot.)
func TestRequestOutlivingItsBudgetSnapshotsTheFlightRecorder(t *testing.T) {
	const budget = 100 * time.Millisecond
	var slow atomic.Bool
	tg := MustGateway(t, gatewayConfig{
		opts: gateway.Options{CallTimeout: budget},
		// The product lookup's answer (the dead target's refusal) comes
		// late when slow is set: the request outlives its budget.
		afterCall: func(string) {
			if slow.Load() {
				time.Sleep(budget + 50*time.Millisecond)
			}
		},
	})
	dir := t.TempDir()
	var logs lockedBuffer
	stop, err := telemetry.StartFlightRecorder(telemetry.FlightConfig{Dir: dir, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/products/9000001"
	tg.do(t, request{method: http.MethodGet, path: path})
	time.Sleep(200 * time.Millisecond) // a snapshot is written in the background
	if names, _ := filepath.Glob(filepath.Join(dir, "*.trace")); len(names) != 0 {
		t.Fatalf("a request within its budget wrote %v", names)
	}
	slow.Store(true)
	if got := tg.do(t, request{method: http.MethodGet, path: path}); got.status < 500 {
		t.Fatalf("a product lookup whose downstream never answered in time got %d", got.status)
	}
	stop() // waits for the snapshot being written

	names, err := filepath.Glob(filepath.Join(dir, "*.trace"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || !strings.HasSuffix(names[0], "-slow-request.trace") {
		t.Fatalf("snapshots %v, want one of the slow request", names)
	}
	if fi, err := os.Stat(names[0]); err != nil || fi.Size() < 1024 {
		t.Fatalf("snapshot %s: %v, %d bytes", names[0], err, fi.Size())
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if line := logs.b.String(); !strings.Contains(line, names[0]) || !strings.Contains(line, `"route":"GET /api/v1/products/{sku_id}"`) {
		t.Fatalf("no log line names the snapshot and the slow route:\n%s", line)
	}
}
