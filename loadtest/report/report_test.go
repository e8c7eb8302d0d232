package report

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/loadtest/result"
)

// sampleResult is a small replay result with every chart's data.
func sampleResult() *result.Replay {
	res := &result.Replay{Scenario: "sample", Target: "http://gw", Users: 10, ElapsedS: 10,
		Stock:    map[string][]result.StockPoint{"phone-sale": {{T: 0, Remaining: 100}, {T: 3, Remaining: 60}, {T: 6, Remaining: 0}}},
		Payments: map[string]map[string]int{"alipay": {"SUCCEEDED": 7}, "wechat": {"SUCCEEDED": 3, "FAILED": 1}},
		Endpoints: []result.EndpointStat{{Endpoint: "POST seckill", Outcome: "accepted", Count: 100, P50: 2, P99: 9},
			{Endpoint: "POST seckill", Outcome: "sold_out", Count: 900, P50: 1, P99: 4}},
		Checks: []result.Check{{Name: "stock conserved", OK: true}, {Name: "payments", OK: true, Skipped: true, Detail: "skipped"}},
		Sales:  map[string]*result.Sale{},
		Channels: []result.ChannelStat{{Channel: "alipay", Opened: 8, Confirmed: 7, PayP50: 12, PayP99: 30, WalletP50: 2, WalletP99: 5,
			Final: map[string]int{"SUCCEEDED": 6, "REFUNDED": 1}}},
		Orders: &result.OrderStates{ByStatus: map[string]int{"PAID": 6, "EXPIRED": 3}, ReleasedUnits: 3, LateRefunds: 1},
		Bots: &result.BotStats{Accounts: 2, Answers: map[string]map[string]int{
			result.TrickNoChallenge: {"challenge_required": 7, "rate_limited": 3}, result.TrickBlocked: {"blocked": 2}}},
		Faults: []result.FaultStat{{Fault: "kafka blackhole at 3s for 2s", Status: "applied and lifted", OnS: 3.1, OffS: 5.2,
			Requests: 400, Failures: 100, FailureRate: 0.25, P99: 900, RecoveredS: 1.8},
			{Fault: "wechat slow at 1s for 1s", Status: "skipped: no channel simulator admin URL"}},
	}
	for i := range 10 {
		res.Seconds = append(res.Seconds, result.SecondStat{T: i, Arrivals: 100 * i, Completions: 95 * i, P50: 1, P99: float64(i), P999: float64(2 * i)})
	}
	return res
}

func mustChromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Fatal("chromium not found: `make test-deps` installs it (apt-get install chromium)")
	return ""
}

// render runs headless Chromium on page with extra flags and returns its
// standard output.
func render(tb testing.TB, page string, flags ...string) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + tb.TempDir()}, flags...)
	cmd := exec.CommandContext(ctx, mustChromium(tb), append(args, "file://"+page)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return out
}

func TestReportHTMLRendersCharts(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := WriteHTML(&buf, sampleResult()); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{" src=", "<link", "@import"} {
		if strings.Contains(buf.String(), ref) {
			t.Fatalf("the report refers to something outside itself (%q)", ref)
		}
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	dom := string(render(t, page, "--dump-dom"))
	for _, want := range []string{"<td>alipay</td>", "REFUNDED 1", "1 late, 0 duplicate"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks the payments' %q", want)
		}
	}
	for _, want := range []string{"<td>no challenge</td><td>challenge_required 7; rate_limited 3; </td>", "<td>blocklisted device</td><td>blocked 2; </td>"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks the bots' %q", want)
		}
	}
	for _, want := range []string{"<td>kafka blackhole at 3s for 2s</td>", "<td class=\"n\">25.0 %</td>", "<td class=\"n\">1.8</td>"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks the fault window's %q", want)
		}
	}
	if got := strings.Count(dom, `<rect class="fault"`); got != 3 {
		t.Errorf("rendered DOM shades the fault on %d charts, want 3 (rates, latency, stock; the skipped fault on none)", got)
	}
	if got := strings.Count(dom, `<svg class="chart"`); got != 5 {
		t.Errorf("rendered DOM has %d charts, want 5", got)
	}
	if got := strings.Count(dom, `<polyline class="series"`); got < 6 {
		t.Errorf("rendered DOM has %d chart lines, want at least 6 (2 rates, 3 percentiles, 1 stock)", got)
	}
	if got := strings.Count(dom, `class="bar"`); got != 5 {
		t.Errorf("rendered DOM has %d bars, want 5 (2 outcomes, 3 payment kinds)", got)
	}

	shot := filepath.Join(dir, "shot.png")
	render(t, page, "--screenshot="+shot, "--window-size=1000,1600", "--hide-scrollbars")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// The first series colour (#1f77b4) must be painted: charts drawn,
	// not a blank page.
	blue, ink := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if r < 240 || g < 240 || bl < 240 {
				ink++
			}
			if r < 60 && g > 100 && g < 140 && bl > 160 && bl < 200 {
				blue++
			}
		}
	}
	if blue < 200 || ink < b.Dx()*b.Dy()/100 {
		t.Fatalf("screenshot looks blank: %d chart-blue pixels, %d non-white of %d", blue, ink, b.Dx()*b.Dy())
	}
}

// TestTextReportListsFaultWindows checks the text report's fault table:
// a row for the fault that ran, none for the skipped one.
func TestTextReportListsFaultWindows(t *testing.T) {
	var buf bytes.Buffer
	Print(&buf, sampleResult())
	out := buf.String()
	row := regexp.MustCompile(`kafka blackhole at 3s for 2s\s+3\.1\s+5\.2\s+400\s+100\s+25\.0%\s+900\.0\s+1\.8`)
	if !row.MatchString(out) {
		t.Errorf("no fault window row for the blackhole in:\n%s", out)
	}
	for _, want := range []string{"Bots: 2 accounts sent 12 requests, 0 placed; answered: blocked 2 challenge_required 7 rate_limited 3",
		"  no challenge        challenge_required 7 rate_limited 3", "  blocklisted device  blocked 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("the text report lacks the bots' %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "wechat slow") != 1 {
		t.Errorf("the skipped fault should appear once (its status), not in the window table:\n%s", out)
	}
}

// The report's cache line gives each level's hit ratio and what the
// Bloom filter refused (the levels as ReadCacheLevels sums them).
func TestCacheLine(t *testing.T) {
	levels := []result.CacheLevel{{Level: "l1", Lookups: 10, Hits: 8}, {Level: "bloom", Lookups: 5, Hits: 1, Refused: 4}}
	if line := cacheLine(levels); !strings.Contains(line, "l1 80.0 % of 10") || !strings.Contains(line, "bloom refused 4 unknown ids of 5") {
		t.Fatalf("line %q", line)
	}
}
