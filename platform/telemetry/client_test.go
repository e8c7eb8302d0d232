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
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release // every call of the round is in flight at once
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

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
