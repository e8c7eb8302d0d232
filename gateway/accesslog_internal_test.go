package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flashsale/flashsale/platform/clock"
)

// The access log writes every 5xx and every slow request, and of the
// ordinary ones the rate a second (a burst of that many at once), counts
// the ones it leaves out, writes every request at rate 0, and builds no
// line at all for a level that is off.
func TestAccessLogSamplesOrdinaryLinesAndKeepsTheOnesThatMatter(t *testing.T) {
	c := clock.NewManual(time.Unix(1_800_000_000, 0))
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := newAccessLog(log, c, 2, 2*time.Second, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	line := func(name string) func() []slog.Attr {
		return func() []slog.Attr { return []slog.Attr{slog.String("req", name)} }
	}
	ctx := context.Background()
	for _, r := range []struct {
		name   string
		status int
		took   time.Duration
	}{
		{"ok-1", 200, time.Millisecond}, {"ok-2", 202, time.Millisecond}, {"ok-3", 429, time.Millisecond},
		{"fail", 503, time.Millisecond}, {"slow", 202, 1500 * time.Millisecond}, {"ok-4", 409, time.Millisecond},
	} {
		a.write(ctx, slog.LevelInfo, r.status, r.took, line(r.name))
	}
	c.Advance(time.Second)
	a.write(ctx, slog.LevelInfo, 200, time.Millisecond, line("next-second"))
	built := false
	a.write(ctx, slog.LevelDebug, 200, time.Millisecond, func() []slog.Attr { built = true; return nil })

	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		_, after, _ := strings.Cut(l, `"req":"`)
		name, _, _ := strings.Cut(after, `"`)
		got = append(got, name)
	}
	if want := "ok-1 ok-2 fail slow next-second"; strings.Join(got, " ") != want {
		t.Errorf("written %v, want %s", got, want)
	}
	if n := testutil.ToFloat64(a.dropped); n != 2 {
		t.Errorf("dropped %v, want 2 (ok-3 and ok-4)", n)
	}
	if built {
		t.Error("a line was built for a level that is off")
	}

	out.Reset()
	all, err := newAccessLog(log, c, 0, 2*time.Second, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		all.write(ctx, slog.LevelInfo, 200, time.Millisecond, line("x"))
	}
	if n := strings.Count(out.String(), "\n"); n != 5 {
		t.Errorf("rate 0 wrote %d of 5 lines, want all", n)
	}
}

// BenchmarkAccessLog is the access log's cost per answered request on a
// JSON handler writing to /dev/null (a write system call a line, as to a
// container's stdout): every request logged, against the default sample
// of 100 a second at a spike's rate (almost every line left out).
func BenchmarkAccessLog(b *testing.B) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	log := slog.New(slog.NewJSONHandler(devNull, nil))
	attrs := func() []slog.Attr {
		return []slog.Attr{
			slog.String("method", "POST"), slog.String("path", "/api/v1/seckill/orders"), slog.String("route", seckillRoute),
			slog.Int("status", 202), slog.Int("bytes", 52), slog.Float64("duration_ms", 4.2),
			slog.String("remote", "10.0.0.7:51234"), slog.Int64("user_id", 100042),
		}
	}
	for _, bc := range []struct {
		name string
		rate float64
	}{{"every request", 0}, {"sampled", DefaultAccessLogRate}} {
		b.Run(bc.name, func(b *testing.B) {
			a, err := newAccessLog(log, clock.Real{}, bc.rate, 2*time.Second, prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for b.Loop() {
				a.write(ctx, slog.LevelInfo, 202, 4*time.Millisecond, attrs)
			}
		})
	}
}
