package localstack

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// Status200 is ready when the probe answers 200 (a service's
// dependencies report, telemetry.DependenciesPath).
func Status200(status int) bool { return status == http.StatusOK }

// Answering is ready as soon as the server answers anything but a server
// error (a simulator's or a proxy's page that has no readiness endpoint).
func Answering(status int) bool { return status < http.StatusInternalServerError }

// MustRun runs a process of a test (a service's Run, a simulator's Serve)
// until the test ends, failing the test if it returns an error, and
// returns once GET url answers a status ready accepts. stop ends the run
// sooner and waits for it; the test's cleanup calls it too.
//
// Each probe is bounded (a listener bound but not served yet accepts the
// connection and never answers), and a run that returns before it is
// ready fails the test with its error at once instead of hanging it.
func MustRun(tb testing.TB, name, url string, ready func(status int) bool, run func(context.Context) error) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error // written before done closes, read after
	done := make(chan struct{})
	go func() {
		runErr = run(ctx)
		close(done)
	}()
	reported := false
	stop = sync.OnceFunc(func() {
		cancel()
		<-done
		if runErr != nil && !reported {
			tb.Errorf("%s: run: %v", name, runErr)
		}
	})
	tb.Cleanup(stop)
	client := telemetry.NewClient(time.Second, 1)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			reported = true
			tb.Fatalf("%s: returned before %s was ready: %v", name, url, runErr)
		default:
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if ready(resp.StatusCode) {
				return stop
			}
		}
	}
	tb.Fatalf("%s: %s not ready after 30s", name, url)
	return stop
}
