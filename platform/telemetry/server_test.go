package telemetry_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// A client that trickles its request's headers (slowloris) is cut off
// by the admin server well before it finishes them, instead of holding
// a connection for as long as it likes.
func TestAdminServerCutsOffASlowlorisClient(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- telemetry.ServeHTTP(ctx, slog.New(slog.DiscardHandler), lis,
			telemetry.AdminHandler(telemetry.NewRegistry(), nil, nil), time.Second)
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()

	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: admin\r\n"); err != nil {
		t.Fatal(err)
	}
	// A header line every half second, never the blank line that ends
	// them, until the server hangs up.
	go func() {
		for i := 0; ; i++ {
			time.Sleep(500 * time.Millisecond)
			if _, err := fmt.Fprintf(conn, "X-Slow-%d: 1\r\n", i); err != nil {
				return
			}
		}
	}()
	const patience = 10 * time.Second
	if err := conn.SetReadDeadline(time.Now().Add(patience)); err != nil {
		t.Fatal(err)
	}
	_, err = bufio.NewReader(conn).ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server still held the trickling connection after %v", patience)
	}
	if err == nil {
		t.Fatal("the server answered a request whose headers never ended")
	}
	t.Logf("cut off after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// A stream that calls StreamDeadlines before each write outlives the
// server's read and write timeouts; one that does not is cut off by
// them, which is why it must.
func TestStreamOutlivesTheServerTimeouts(t *testing.T) {
	t.Parallel()
	const events = 10
	for _, tt := range []struct {
		lift bool
		want func(got int) bool
	}{
		{true, func(got int) bool { return got == events }},
		{false, func(got int) bool { return got < events }},
	} {
		got := streamed(t, events, tt.lift)
		if !tt.want(got) {
			t.Errorf("StreamDeadlines called: %v: %d of %d events arrived", tt.lift, got, events)
		}
	}
}

// streamed serves a stream of n events 100 ms apart on a shortServer and
// returns how many arrived.
func streamed(t *testing.T, n int, lift bool) int {
	t.Helper()
	h := func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := range n {
			if lift {
				if err := telemetry.StreamDeadlines(rc); err != nil {
					t.Error(err)
					return
				}
			}
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	resp, err := http.Get(shortServer(t, h))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			got++
		}
	}
	return got
}

// shortServer serves h on a server of NewServer whose read and write
// timeouts are shortened to 200 ms, until the test ends, and returns its
// URL.
func shortServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := telemetry.NewServer(h)
	srv.ReadTimeout, srv.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + lis.Addr().String()
}

// A request that works past the server's timeouts under LongRequest is
// answered; without it the work goes on but the server drops its answer
// at the write timeout. Its budget still
// bounds it: work that outlasts the budget is given up, and the handler
// says so in an answer that arrives.
func TestLongRequestOutlivesTheServerTimeoutsWithinItsBudget(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		long   bool
		budget time.Duration
		want   func(body string) bool // body: "" for no answer
	}{
		{"work within its budget", true, 10 * time.Second, func(b string) bool { return b == "done" }},
		{"work past its budget", true, 400 * time.Millisecond, func(b string) bool { return b == "gave up" }},
		// Cut off: its answer dropped by the write timeout.
		{"without LongRequest", false, 0, func(b string) bool { return b == "" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := shortServer(t, func(w http.ResponseWriter, r *http.Request) {
				ctx := r.Context()
				if tt.long {
					var cancel context.CancelFunc
					var err error
					ctx, cancel, err = telemetry.LongRequest(w, r, tt.budget)
					defer cancel()
					if err != nil {
						t.Errorf("LongRequest on the server's own writer: %v", err)
					}
				}
				select {
				case <-time.After(time.Second): // five times the server's timeouts
					_, _ = fmt.Fprint(w, "done")
				case <-ctx.Done():
					_, _ = fmt.Fprint(w, "gave up")
				}
			})
			start := time.Now()
			resp, err := http.Get(url)
			got := ""
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got = string(b)
			}
			t.Logf("answer %q (err %v) after %v", got, err, time.Since(start).Round(time.Millisecond))
			if !tt.want(got) {
				t.Error("not the answer this case must get")
			}
		})
	}
}

// A writer whose connection's deadlines cannot be set (here a recorder)
// is reported, so the handler can say its answer may be cut at the write
// timeout; the budget still bounds the context.
func TestLongRequestReportsAWriterWithoutDeadlines(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/reconcile-stock", nil)
	ctx, cancel, err := telemetry.LongRequest(httptest.NewRecorder(), r, time.Minute)
	defer cancel()
	if !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("err = %v, want http.ErrNotSupported", err)
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > time.Minute {
		t.Errorf("context deadline %v (set %v), want within the minute's budget", d, ok)
	}
}
