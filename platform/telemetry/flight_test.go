package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// syncBuffer is a log destination the snapshot goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// busy gives the recorder something to record: goroutines that hand
// values over a channel.
func busy() {
	ch := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for v := range ch {
				_ = v
			}
		})
	}
	for i := range 10_000 {
		ch <- i
	}
	close(ch)
	wg.Wait()
}

// snapshots lists the dir's snapshots, oldest first.
func snapshots(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.trace"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func TestFlightSnapshotWritesTheLastSecondsOncePerEvery(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "flight")
	clk := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	var logs syncBuffer
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Another process's snapshot in the shared directory, and temporary
	// files of this name: one a process that died while writing left an
	// hour ago, one being written now.
	other := filepath.Join(dir, "20261110T000000.000Z-order-1-slow-request.trace")
	stale := filepath.Join(dir, ".flight-gateway-stale")
	fresh := filepath.Join(dir, ".flight-gateway-fresh")
	for _, p := range []string{other, stale, fresh} {
		if err := os.WriteFile(p, []byte("go 1.26 trace"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(stale, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	stop, err := telemetry.StartFlightRecorder(telemetry.FlightConfig{
		Dir: dir, Name: "gateway", Every: time.Minute, Keep: 2, Clock: clk,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop) // stop may be called again
	if _, err := telemetry.StartFlightRecorder(telemetry.FlightConfig{Dir: dir}); err == nil {
		t.Fatal("a second flight recorder started; the runtime allows one")
	}

	busy()
	first := telemetry.FlightSnapshot(context.Background(), "slow-request", slog.String("route", "POST /api/v1/orders"))
	if first == "" {
		t.Fatal("no snapshot taken")
	}
	if again := telemetry.FlightSnapshot(context.Background(), "slow-request"); again != "" {
		t.Fatalf("a second snapshot within Every: %s", again)
	}
	var taken []string
	for range 2 {
		clk.Advance(time.Minute)
		busy()
		p := telemetry.FlightSnapshot(context.Background(), "rpc-deadline")
		if p == "" {
			t.Fatal("no snapshot a minute after the last")
		}
		taken = append(taken, p)
	}
	stop()

	// Keep 2: the oldest of this name went (the file names sort by when
	// they were taken); the other process's stays.
	if got := snapshots(t, dir); !slices.Equal(got, append([]string{other}, taken...)) {
		t.Fatalf("snapshots kept %v, want the other process's and the newest two %v", got, taken)
	}
	for _, p := range taken {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// An execution trace begins "go 1.NN trace".
		if len(b) < 1024 || !bytes.HasPrefix(b, []byte("go 1.")) || !bytes.Contains(b[:16], []byte(" trace")) {
			t.Fatalf("%s is not an execution trace (%d bytes, begins %q)", p, len(b), b[:min(len(b), 16)])
		}
	}
	if !strings.Contains(logs.String(), first) || !strings.Contains(logs.String(), `"route":"POST /api/v1/orders"`) {
		t.Fatalf("no log line names the first snapshot and its route:\n%s", logs.String())
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("an hour-old temporary file is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a temporary file being written was removed: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != len(taken)+2 {
		t.Fatalf("the directory holds %d entries (a temporary file of ours left?), want %d", len(entries), len(taken)+2)
	}

	// Stopped: no more snapshots, and a new recorder may start.
	clk.Advance(time.Hour)
	if p := telemetry.FlightSnapshot(context.Background(), "slow-request"); p != "" {
		t.Fatalf("snapshot %s after stop", p)
	}
	stop2, err := telemetry.StartFlightRecorder(telemetry.FlightConfig{Dir: dir})
	if err != nil {
		t.Fatalf("restart after stop: %v", err)
	}
	stop2()
	stop2()
}

func TestFlightSnapshotWithoutARecorderIsANoOp(t *testing.T) {
	if p := telemetry.FlightSnapshot(context.Background(), "slow-request"); p != "" {
		t.Fatalf("snapshot %s without a recorder", p)
	}
	if _, err := telemetry.StartFlightRecorder(telemetry.FlightConfig{}); err == nil {
		t.Fatal("a recorder started without a directory")
	}
}
