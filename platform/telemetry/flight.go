package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
)

// The flight recorder (runtime/trace, Go 1.25) keeps the last seconds of
// the process's execution trace in memory: when each goroutine ran, how
// long it waited for a core, what it blocked on (network, channel, lock,
// syscall) and when the GC ran. When a request outlives its budget, those
// seconds say where its time went, which a latency histogram cannot;
// FlightSnapshot writes them to a file (docs/operations.md, "A slow
// request's last seconds: the flight recorder").

// Defaults of FlightConfig.
const (
	DefaultFlightWindow   = 10 * time.Second
	DefaultFlightMaxBytes = 64 << 20
	DefaultFlightEvery    = time.Minute
	DefaultFlightKeep     = 5
)

// FlightConfig configures the process's flight recorder.
type FlightConfig struct {
	// Dir receives the snapshots; it is created if missing.
	Dir string
	// Window is how much history a snapshot holds at least (default
	// 10s: a request's call budget and the seconds before it).
	Window time.Duration
	// MaxBytes bounds the window's memory (default 64 MiB); it wins
	// over Window.
	MaxBytes uint64
	// Every is the least time between two snapshots (default 1m), so a
	// stall that slows a thousand requests writes one file.
	Every time.Duration
	// Keep is how many snapshots Dir holds at most (default 5); the
	// oldest go first.
	Keep   int
	Clock  clock.Clock
	Logger *slog.Logger
}

// flightRecorder is the process's one recorder (the runtime allows one).
type flightRecorder struct {
	cfg FlightConfig
	fr  *trace.FlightRecorder

	mu      sync.Mutex
	last    time.Time // when the last snapshot was asked for
	stopped bool

	write   sync.Mutex // one WriteTo at a time
	writing sync.WaitGroup
}

var flight atomic.Pointer[flightRecorder]

// flightSuffix ends every snapshot's file name; pruning reads only these.
const flightSuffix = ".trace"

// StartFlightRecorder starts the process's flight recorder. stop waits
// for a snapshot being written and stops recording. A process runs at
// most one (a second start fails), as the runtime allows one.
func StartFlightRecorder(cfg FlightConfig) (stop func(), err error) {
	if cfg.Dir == "" {
		return nil, errors.New("flight recorder: no directory for its snapshots")
	}
	cfg.Window = cmp.Or(cfg.Window, DefaultFlightWindow)
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, DefaultFlightMaxBytes)
	cfg.Every = cmp.Or(cfg.Every, DefaultFlightEvery)
	cfg.Keep = cmp.Or(cfg.Keep, DefaultFlightKeep)
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("flight recorder: %w", err)
	}
	r := &flightRecorder{cfg: cfg, fr: trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: cfg.Window, MaxBytes: cfg.MaxBytes})}
	if !flight.CompareAndSwap(nil, r) {
		return nil, errors.New("flight recorder: the process already runs one")
	}
	if err := r.fr.Start(); err != nil {
		flight.Store(nil)
		return nil, fmt.Errorf("flight recorder: %w", err)
	}
	return func() {
		flight.CompareAndSwap(r, nil)
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		r.writing.Wait()
		r.fr.Stop()
	}, nil
}

// FlightSnapshot writes the flight recorder's window to a new file in the
// background and returns its path, or "" when the process runs no
// recorder or one snapshot was taken within its Every. kind names the
// trigger in the file name (a short word, e.g. "slow-request"); the log
// line that names the file carries ctx's request and trace ids and attrs.
func FlightSnapshot(ctx context.Context, kind string, attrs ...slog.Attr) string {
	r := flight.Load()
	if r == nil {
		return ""
	}
	now := r.cfg.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || !r.last.IsZero() && now.Sub(r.last) < r.cfg.Every {
		return ""
	}
	r.last = now
	path := filepath.Join(r.cfg.Dir, now.UTC().Format("20060102T150405.000Z")+"-"+kind+flightSuffix)
	// Started under mu, so stop's Wait never races this Add.
	r.writing.Go(func() {
		if err := r.snapshot(path); err != nil {
			r.cfg.Logger.ErrorContext(ctx, "flight recorder: snapshot failed", "path", path, "err", err)
			return
		}
		args := []any{"path", path, "kind", kind}
		for _, a := range attrs {
			args = append(args, a)
		}
		r.cfg.Logger.WarnContext(ctx, "flight recorder: the last seconds' execution trace written (go tool trace)", args...)
	})
	return path
}

// snapshot writes the window to path (through a temporary file, so a
// reader never sees half a trace) and prunes the oldest snapshots.
func (r *flightRecorder) snapshot(path string) error {
	r.write.Lock()
	defer r.write.Unlock()
	f, err := os.CreateTemp(r.cfg.Dir, ".flight-*")
	if err != nil {
		return err
	}
	_, err = r.fr.WriteTo(f)
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return r.prune()
}

// prune removes the oldest snapshots beyond Keep (their names begin with
// the time they were taken).
func (r *flightRecorder) prune() error {
	names, err := filepath.Glob(filepath.Join(r.cfg.Dir, "*"+flightSuffix))
	if err != nil {
		return err
	}
	slices.Sort(names)
	var errs []error
	for len(names) > r.cfg.Keep {
		errs = append(errs, os.Remove(names[0]))
		names = names[1:]
	}
	return errors.Join(errs...)
}
