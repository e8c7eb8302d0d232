package loadtest

import (
	"context"
	"fmt"
	"math"

	dto "github.com/prometheus/client_model/go"

	"github.com/flashsale/flashsale/loadtest/result"
)

// seckillRoute is the flash-sale route as the gateway labels its series.
const seckillRoute = "POST /api/v1/seckill/orders"

// ReadRefusals reads, from the gateway's /metrics, how long the gateway
// itself took to answer the flash-sale buys it refused with 429
// (gateway_http_refusal_duration_seconds, since it started): the
// platform's own cost of a refusal, without the wait for a connection or
// a core that the client's figure includes. Nil when it refused none.
func ReadRefusals(ctx context.Context, url string) (*result.Refusals, error) {
	families, err := scrape(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("refusals: %w", err)
	}
	for _, m := range families["gateway_http_refusal_duration_seconds"].GetMetric() {
		if label(m, "route") != seckillRoute || m.GetHistogram().GetSampleCount() == 0 {
			continue
		}
		h := m.GetHistogram()
		return &result.Refusals{
			Count: h.GetSampleCount(),
			P50Ms: boundMs(h, 0.50),
			P99Ms: boundMs(h, 0.99),
		}, nil
	}
	return nil, nil
}

// label is the value of m's label name ("" without one).
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// boundMs is the upper bound, in milliseconds, of the bucket of h (in
// seconds) that holds its q-quantile: the quantile is at most that. It is
// -1 for a quantile past the largest finite bound (JSON has no +Inf).
func boundMs(h *dto.Histogram, q float64) float64 {
	rank := q * float64(h.GetSampleCount())
	for _, b := range h.GetBucket() {
		if float64(b.GetCumulativeCount()) >= rank && !math.IsInf(b.GetUpperBound(), 1) {
			return b.GetUpperBound() * 1000
		}
	}
	return -1
}
