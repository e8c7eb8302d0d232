package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/telemetry"
)

func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// Readiness is shallow: a failing dependency leaves /readyz at 200 and
// shows in the dependency report; a draining process answers nothing.
func TestReadinessIsShallow(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := telemetry.AdminHandler(telemetry.NewRegistry(), map[string]telemetry.Check{
		"redis":    func(context.Context) error { return errors.New("connection refused") },
		"postgres": func(context.Context) error { return nil },
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- telemetry.ServeHTTP(ctx, slog.New(slog.DiscardHandler), lis, h, time.Second) }()
	base := "http://" + lis.Addr().String()

	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body, err := get(t, base+path); status != http.StatusOK {
			t.Errorf("%s with redis down = %d %s %v, want 200", path, status, body, err)
		}
	}
	status, body, err := get(t, base+telemetry.DependenciesPath)
	var report struct{ Dependencies map[string]string }
	if err != nil || status != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &report) != nil {
		t.Fatalf("%s = %d %s %v, want 503 and a report", telemetry.DependenciesPath, status, body, err)
	}
	if report.Dependencies["redis"] != "down" || report.Dependencies["postgres"] != "up" {
		t.Errorf("report %v, want redis down and postgres up", report.Dependencies)
	}

	cancel() // the process drains
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if status, _, err := get(t, base+"/readyz"); err == nil {
		t.Errorf("/readyz while draining = %d, want no answer", status)
	}
}

// The dependency report calls each dependency at most once a second,
// however many ask at once or in a row: the gateway serves it publicly.
func TestDependencyReportIsMadeOnceASecond(t *testing.T) {
	var calls atomic.Int64
	h := telemetry.AdminHandler(telemetry.NewRegistry(), map[string]telemetry.Check{
		"order": func(context.Context) error { calls.Add(1); time.Sleep(20 * time.Millisecond); return nil },
	}, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if status, body, err := get(t, srv.URL+telemetry.DependenciesPath); status != http.StatusOK || err != nil {
				t.Errorf("report: %d %s %v", status, body, err)
			}
		})
	}
	wg.Wait()
	// One load, or two when the fifty straddled the report's second on a
	// slow machine; without the cache, fifty.
	if n := calls.Load(); n < 1 || n > 2 {
		t.Fatalf("50 concurrent reports called the dependency %d times, want 1 (2 at most)", n)
	}
}

// TestNotReadyWhileItsSettingsAreRead: /readyz answers 503 naming what
// is awaited while a part of the configuration is held, and 200 once
// every hold is released; a second release changes nothing, and /healthz
// answers throughout (the process is alive, only not ready).
func TestNotReadyWhileItsSettingsAreRead(t *testing.T) {
	var ready telemetry.Readiness
	settings := ready.Hold("settings in consul")
	channels := ready.Hold("channel settings in consul")
	srv := httptest.NewServer(telemetry.AdminHandler(telemetry.NewRegistry(), nil, ready.Err))
	defer srv.Close()
	expect := func(path string, want int, text string) {
		t.Helper()
		status, body, err := get(t, srv.URL+path)
		if err != nil || status != want || !strings.Contains(body, text) {
			t.Errorf("%s = %d %s %v, want %d with %q", path, status, body, err, want, text)
		}
	}
	expect("/readyz", http.StatusServiceUnavailable, "waiting for settings in consul, channel settings in consul")
	expect("/healthz", http.StatusOK, "ok")
	settings()
	settings()
	expect("/readyz", http.StatusServiceUnavailable, "waiting for channel settings in consul")
	channels()
	expect("/readyz", http.StatusOK, "ready")
	if err := ready.Err(); err != nil {
		t.Errorf("Err once released: %v", err)
	}
}

// Wait returns once every hold is released, and with ctx's error when
// ctx ends first.
func TestWaitForReadiness(t *testing.T) {
	var ready telemetry.Readiness
	release := ready.Hold("settings")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ready.Wait(ctx); err == nil {
		t.Fatal("Wait on an ended context while held returned nil")
	}
	done := make(chan error, 1)
	go func() { done <- ready.Wait(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v while held", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("Wait once released: %v", err)
	}
}
