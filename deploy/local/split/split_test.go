//go:build split

package split

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
)

// TestSplitReplayPassesItsAudit builds the services as the Dockerfile
// does, runs docker-compose.yml's platform with each service its own
// process (every address the compose environment names mapped onto a
// random 127.a.b.0/24, so runs side by side do not collide), replays
// loadtest/scenarios/split.yaml through compose's loadtest service and
// requires its audit to pass. The services find each other through the
// Consul-API process alone: compose gives them no other address. Close
// leaves nothing listening.
//
// It takes about a minute on two cores (build, start-up, replay, audit),
// so it is behind the split build tag: make test-split runs it, and CI
// (.ci/run) after make test.
func TestSplitReplayPassesItsAudit(t *testing.T) {
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := t.TempDir()
	var build bytes.Buffer
	if err := Build(ctx, root, bin, &build); err != nil {
		t.Fatalf("%v\n%s", err, build.String())
	}
	sc, err := scenario.Load(filepath.Join(root, "loadtest", "scenarios", "split.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	reports := t.TempDir()
	subnet := fmt.Sprintf("127.%d.%d", 1+rand.IntN(254), rand.IntN(256))
	p, err := Start(ctx, Options{
		Root: root, Bin: bin, Subnet: subnet,
		Env:    map[string]string{"FLASHSALE_SCENARIO": "split", "FLASHSALE_PAYMENT_WINDOW": sc.Platform.PaymentWindow.D().String()},
		Mounts: map[string]string{"/reports": reports},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			p.Close()
		}
	}()
	if !strings.HasPrefix(p.GatewayURL, "http://"+subnet+".") {
		t.Errorf("gateway at %s, not on %s.0/24", p.GatewayURL, subnet)
	}
	var out bytes.Buffer
	if err := p.Replay(ctx, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "RESULT: PASS") {
		t.Fatalf("the replay did not pass:\n%s", out.String())
	}
	// The report, in the directory mounted as the service's /reports:
	// every check ran and passed, none skipped (the slow and failing
	// faults need the simulator's URL, the payment checks the payment
	// database), the sale sold out, and payments were made.
	var res result.Replay
	b, err := os.ReadFile(filepath.Join(reports, "report.json"))
	if err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err != nil {
		t.Fatalf("report.json in the mounted reports directory: %v", err)
	}
	for _, c := range res.Checks {
		if !c.OK || c.Skipped {
			t.Errorf("check %q: ok %v, skipped %v: %s", c.Name, c.OK, c.Skipped, c.Detail)
		}
	}
	for _, f := range res.Faults {
		if f.OffS <= 0 {
			t.Errorf("fault %+v did not run", f)
		}
	}
	// Accepted may pass the stock: cancelled and expired orders give
	// their units back to later buyers (the audit checks they were sold once).
	if len(res.Activities) != 1 || int64(res.Activities[0].Accepted) < res.Activities[0].Stock {
		t.Errorf("activities %+v: want the one sale sold out", res.Activities)
	}
	if res.FollowUps.Paid == 0 || res.Orders == nil {
		t.Errorf("paid %d, orders read from Postgres: %v", res.FollowUps.Paid, res.Orders != nil)
	}
	select {
	case <-p.Failed():
		t.Errorf("a process stopped during the replay: %v", p.Err())
	default:
	}

	closed = true
	if err := p.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	for name, ip := range p.IPs {
		for _, port := range []string{"8080", "8500", "9092", "9101", "9102", "9103", "9104", "9105", "9301"} {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), time.Second); err == nil {
				c.Close()
				t.Errorf("after Close, %s:%s (%s) still accepts connections", ip, port, name)
			}
		}
	}
}

// testWriter sends the platform's warnings to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
