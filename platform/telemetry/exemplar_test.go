package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// scrape reads the registry through the admin handler the way Prometheus
// does when it asks for OpenMetrics (the only format that carries
// exemplars).
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(telemetry.AdminHandler(reg, nil, nil))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func TestLatencyBucketsLeadToTheirTrace(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "test_seconds", Help: "test", Buckets: []float64{.01, .1, 1}})
	reg.MustRegister(h)

	sampled := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11},
		SpanID:  trace.SpanID{0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22},
	})
	telemetry.Observe(trace.ContextWithSpanContext(context.Background(), sampled), h, 0.05)
	telemetry.Observe(trace.ContextWithSpanContext(context.Background(), unsampled), h, 0.5)
	telemetry.Observe(context.Background(), h, 0.005)

	out := scrape(t, reg)
	var withExemplar []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " # {") {
			withExemplar = append(withExemplar, line)
		}
	}
	if len(withExemplar) != 1 {
		t.Fatalf("want exactly one bucket with an exemplar (the sampled trace's), got %d:\n%s", len(withExemplar), out)
	}
	if l := withExemplar[0]; !strings.HasPrefix(l, `test_seconds_bucket{le="0.1"}`) ||
		!strings.Contains(l, `# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.05`) {
		t.Errorf("exemplar line = %q, want the 0.1 bucket with the sampled trace id and value 0.05", l)
	}
	if !strings.Contains(out, "test_seconds_count 3") {
		t.Errorf("every observation counts, sampled or not:\n%s", out)
	}
}
