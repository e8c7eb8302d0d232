package localstack

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"testing"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// fakeTB records what a test would be told, so MustRun's failures can be
// checked without failing this test. FailNow stops the goroutine it runs
// on, as testing's does.
type fakeTB struct {
	testing.TB
	cleanups []func()
	failed   []string
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Cleanup(fn func())     { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Errorf(string, ...any) { f.failed = append(f.failed, "error") }
func (f *fakeTB) Fatalf(string, ...any) {
	f.failed = append(f.failed, "fatal")
	runtime.Goexit()
}

// A run that fails before it is ready fails the test once, and the
// test's cleanup, which waits for the run, returns: before, the poll
// took the run's result and the cleanup waited for it for ever.
func TestMustRunReportsAnEarlyReturnAndCleansUp(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0") // bound, never served
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	tb := &fakeTB{}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		MustRun(tb, "svc", "http://"+lis.Addr().String()+"/ready", Status200, func(context.Context) error {
			return errors.New("no database")
		})
	}()
	<-finished
	for _, fn := range tb.cleanups {
		fn()
	}
	if len(tb.failed) != 1 || tb.failed[0] != "fatal" {
		t.Errorf("failures = %v, want one fatal", tb.failed)
	}
}

func TestMustRunReturnsOnceReady(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := MustRun(t, "svc", "http://"+lis.Addr().String()+"/", Status200, func(ctx context.Context) error {
		srv := telemetry.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	stop()
}
