package telemetry_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// Round after round of concurrent calls reuse the connections of the
// first: a client of NewClient dials at most one connection per call in
// flight, where http.DefaultTransport's two idle connections per host
// made all but two of them dial again every round.
func TestNewClientKeepsItsConnections(t *testing.T) {
	t.Parallel()
	const concurrent, rounds = 16, 5
	var dialled atomic.Int64
	release := make(chan struct{}) // one send per call: the round's calls go on together
	var arrived sync.WaitGroup
	srv := countingServer(t, &dialled, func(w http.ResponseWriter) {
		arrived.Done()
		<-release // every call of the round is in flight at once
		_, _ = io.WriteString(w, "ok")
	})

	c := telemetry.NewClient(5*time.Second, concurrent)
	for range rounds {
		arrived.Add(concurrent)
		var done sync.WaitGroup
		for range concurrent {
			done.Go(func() {
				resp, err := c.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			})
		}
		arrived.Wait()
		for range concurrent {
			release <- struct{}{}
		}
		done.Wait()
	}
	if n := dialled.Load(); n > concurrent {
		t.Errorf("%d rounds of %d concurrent calls dialled %d connections, want at most %d", rounds, concurrent, n, concurrent)
	}
}

// A client that calls several hosts keeps its connections to each: calls
// alternating between two hosts dial one connection to each, where a
// total bound of one idle connection dialled at every call.
func TestNewClientKeepsConnectionsToEachHost(t *testing.T) {
	t.Parallel()
	var dialled atomic.Int64
	answer := func(w http.ResponseWriter) { _, _ = io.WriteString(w, "ok") }
	a, b := countingServer(t, &dialled, answer), countingServer(t, &dialled, answer)
	c := telemetry.NewClient(5*time.Second, 1)
	const calls = 20
	for i := range calls {
		url := a.URL
		if i%2 == 1 {
			url = b.URL
		}
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	if n := dialled.Load(); n > 2 {
		t.Errorf("%d calls alternating between two hosts dialled %d connections, want 2", calls, n)
	}
}

// countingServer serves answer until the test ends, counting in dialled
// the connections its clients open.
func countingServer(t *testing.T, dialled *atomic.Int64, answer func(http.ResponseWriter)) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { answer(w) }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
