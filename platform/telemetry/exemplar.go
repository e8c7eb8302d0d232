package telemetry

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// ExemplarTraceLabel is the exemplar label that carries the trace id; the
// Grafana data source links it to Jaeger (deploy/grafana).
const ExemplarTraceLabel = "trace_id"

// Observe records v in h and, when ctx carries a sampled trace, attaches
// the trace id as the bucket's exemplar, so a slow bucket on a latency
// panel leads to one trace that landed in it (docs/operations.md). The
// exemplars are exposed only in the OpenMetrics format, which /metrics
// offers to a scraper that asks for it (Prometheus does, with
// --enable-feature=exemplar-storage).
func Observe(ctx context.Context, h prometheus.Observer, v float64) {
	sc := trace.SpanContextFromContext(ctx)
	if eo, ok := h.(prometheus.ExemplarObserver); ok && sc.IsSampled() {
		eo.ObserveWithExemplar(v, prometheus.Labels{ExemplarTraceLabel: sc.TraceID().String()})
		return
	}
	h.Observe(v)
}
