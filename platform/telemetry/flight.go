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
// syscall) and when the GC ran. When a call runs out of its deadline, those
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
	// Dir receives the snapshots; it is created if missing. Processes
	// may share it: each names its files after itself (Name and pid)
	// and prunes only its Name's.
	Dir string
	// Name is the process's name in its files' names (default
	// "process"; serve.Main gives the service's).
	Name string
	// Window is how much history a snapshot holds at most (default
	// 10s: a request's call budget and the seconds before it); MaxBytes
	// may cut it shorter.
	Window time.Duration
	// MaxBytes bounds the window's memory (default 64 MiB, a hint to
	// the runtime, which counts it like any heap); it wins over Window.
	MaxBytes uint64
	// Every is the least time between two snapshots (default 1m), so a
	// stall that slows a thousand requests writes one file.
	Every time.Duration
	// Keep is how many snapshots of Name Dir holds at most (default 5);
	// the oldest go first.
	Keep   int
	Clock  clock.Clock
	Logger *slog.Logger
}

// flightRecorder is the process's one recorder (the runtime allows one).
type flightRecorder struct {
	cfg    FlightConfig
	fr     *trace.FlightRecorder
	prefix string // of this process's file names, after the time

	last atomic.Int64 // Unix nanoseconds of the last snapshot, 0 before one

	mu      sync.Mutex
	stopped bool

	write   sync.Mutex // one WriteTo at a time
	writing sync.WaitGroup
}

var flight atomic.Pointer[flightRecorder]

// Snapshot files are <time>-<name>-<pid>-<kind>.trace; a snapshot being
// written is a temporary .flight-<name>-* file, renamed when complete.
const (
	flightSuffix = ".trace"
	flightTemp   = ".flight-"
	// flightTempAge is when a temporary file is surely one a process
	// that died while writing it left behind.
	flightTempAge = 10 * time.Minute
)

// StartFlightRecorder starts the process's flight recorder. stop waits
// for a snapshot being written and stops recording; calling it again does
// nothing. A process runs at most one (a second start fails), as the
// runtime allows one.
func StartFlightRecorder(cfg FlightConfig) (stop func(), err error) {
	if cfg.Dir == "" {
		return nil, errors.New("flight recorder: no directory for its snapshots")
	}
	cfg.Name = cmp.Or(cfg.Name, "process")
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
	r := &flightRecorder{
		cfg:    cfg,
		fr:     trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: cfg.Window, MaxBytes: cfg.MaxBytes}),
		prefix: fmt.Sprintf("-%s-%d-", cfg.Name, os.Getpid()),
	}
	if !flight.CompareAndSwap(nil, r) {
		return nil, errors.New("flight recorder: the process already runs one")
	}
	if err := r.fr.Start(); err != nil {
		flight.CompareAndSwap(r, nil)
		return nil, fmt.Errorf("flight recorder: %w", err)
	}
	return sync.OnceFunc(func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		r.writing.Wait()
		r.fr.Stop()
		flight.CompareAndSwap(r, nil)
	}), nil
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
	// Every request of a stall lands here; all but one leave without
	// taking the lock.
	recent := func() bool {
		last := r.last.Load()
		return last != 0 && now.Sub(time.Unix(0, last)) < r.cfg.Every
	}
	if recent() {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || recent() {
		return ""
	}
	r.last.Store(now.UnixNano())
	path := filepath.Join(r.cfg.Dir, now.UTC().Format("20060102T150405.000Z")+r.prefix+kind+flightSuffix)
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
	f, err := os.CreateTemp(r.cfg.Dir, flightTemp+r.cfg.Name+"-*")
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

// prune removes the oldest snapshots of the process's name beyond Keep
// (their names begin with the time they were taken), and the temporary
// files of that name a process that died while writing left behind.
func (r *flightRecorder) prune() error {
	names, err := filepath.Glob(filepath.Join(r.cfg.Dir, "*-"+r.cfg.Name+"-*"+flightSuffix))
	if err != nil {
		return err
	}
	slices.Sort(names)
	var errs []error
	for len(names) > r.cfg.Keep {
		errs = append(errs, os.Remove(names[0]))
		names = names[1:]
	}
	temps, err := filepath.Glob(filepath.Join(r.cfg.Dir, flightTemp+r.cfg.Name+"-*"))
	errs = append(errs, err)
	for _, t := range temps {
		// A file's time is the system clock's, so its age is too.
		if fi, err := os.Stat(t); err == nil && time.Since(fi.ModTime()) > flightTempAge {
			errs = append(errs, os.Remove(t))
		}
	}
	return errors.Join(errs...)
}
