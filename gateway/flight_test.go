package gateway_test

import (
	"log/slog"
	"net"
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

// blackhole returns a TCP address that accepts connections and never
// says a word: a gRPC call to it waits out its deadline.
func blackhole(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

// A request whose downstream call runs out of its deadline has the flight
// recorder write the process's last seconds; a request that is merely
// slow (its downstream refused it late) writes nothing. (Not parallel:
// the process runs one flight recorder, and a parallel test's request
// would take this one's snapshot.)
func TestDownstreamCallPastItsDeadlineSnapshotsTheFlightRecorder(t *testing.T) {
	const budget = 100 * time.Millisecond
	var slow atomic.Bool
	late := MustGateway(t, gatewayConfig{
		opts: gateway.Options{CallTimeout: budget},
		// The dead target's refusal reaches the gateway after the
		// budget: slow, but no call ran out of its deadline.
		afterCall: func(string) {
			if slow.Load() {
				time.Sleep(budget + 50*time.Millisecond)
			}
		},
	})
	silent := MustGateway(t, gatewayConfig{productAddr: blackhole(t), opts: gateway.Options{CallTimeout: budget}})
	dir := t.TempDir()
	// A file takes the snapshot goroutine's log line safely.
	logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	stop, err := telemetry.StartFlightRecorder(telemetry.FlightConfig{Dir: dir, Name: "gateway", Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	path := "/api/v1/products/9000001"
	slow.Store(true)
	if got := late.do(t, request{method: http.MethodGet, path: path}); got.status < 500 {
		t.Fatalf("a product lookup its downstream refused got %d", got.status)
	}
	time.Sleep(200 * time.Millisecond) // a snapshot is written in the background
	if names, _ := filepath.Glob(filepath.Join(dir, "*.trace")); len(names) != 0 {
		t.Fatalf("a request whose calls all answered wrote %v", names)
	}
	if got := silent.do(t, request{method: http.MethodGet, path: path}); got.status != http.StatusServiceUnavailable {
		t.Fatalf("a product lookup whose downstream never answered got %d, want 503", got.status)
	}
	stop() // waits for the snapshot being written

	names, err := filepath.Glob(filepath.Join(dir, "*.trace"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || !strings.HasSuffix(names[0], "-slow-request.trace") {
		t.Fatalf("snapshots %v, want one of the request past its deadline", names)
	}
	if fi, err := os.Stat(names[0]); err != nil || fi.Size() < 1024 {
		t.Fatalf("snapshot %s: %v", names[0], err)
	}
	b, err := os.ReadFile(logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	if line := string(b); !strings.Contains(line, names[0]) || !strings.Contains(line, `"route":"GET /api/v1/products/{sku_id}"`) {
		t.Fatalf("no log line names the snapshot and the route:\n%s", line)
	}
}
