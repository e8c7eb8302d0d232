package loadtest

import (
	"context"
	"fmt"
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"

	"github.com/flashsale/flashsale/loadtest/result"
)

// seckillRoute is the flash-sale route as the gateway labels its series.
const seckillRoute = "POST /api/v1/seckill/orders"

// ReadGatewayTimes reads, from the gateway's /metrics, how long the
// gateway itself took to answer the flash-sale buys it refused with 429
// (OVERLOADED or RATE_LIMITED) and those it answered SOLD_OUT
// (gateway_http_error_duration_seconds, since it started): the
// platform's own share of those answers, without the wait for a
// connection or a core that the client's figures include. A figure is
// nil when the gateway gave no such answer; the whole is nil when it gave
// neither.
func ReadGatewayTimes(ctx context.Context, url string) (*result.GatewayTimes, error) {
	families, err := scrape(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("gateway times: %w", err)
	}
	errs := families["gateway_http_error_duration_seconds"].GetMetric()
	t := &result.GatewayTimes{}
	if t.Refused, err = timing(errs, "OVERLOADED", "RATE_LIMITED"); err != nil {
		return nil, fmt.Errorf("gateway times: %w", err)
	}
	if t.SoldOut, err = timing(errs, "SOLD_OUT"); err != nil {
		return nil, fmt.Errorf("gateway times: %w", err)
	}
	if t.Refused == nil && t.SoldOut == nil {
		return nil, nil
	}
	return t, nil
}

// timing merges the flash-sale route's histograms of the codes into one
// figure (nil when they hold no answer). The series of one histogram
// share their buckets; one that does not is an error.
func timing(ms []*dto.Metric, codes ...string) (*result.Timing, error) {
	var merged *dto.Histogram
	for _, m := range ms {
		if label(m, "route") != seckillRoute || !slices.Contains(codes, label(m, "code")) {
			continue
		}
		h := m.GetHistogram()
		switch {
		case merged == nil:
			merged = &dto.Histogram{SampleCount: new(uint64)}
			for _, b := range h.GetBucket() {
				merged.Bucket = append(merged.Bucket, &dto.Bucket{UpperBound: b.UpperBound, CumulativeCount: new(uint64)})
			}
		case !sameBounds(merged.GetBucket(), h.GetBucket()):
			return nil, fmt.Errorf("the series of code %s has other buckets than its siblings", label(m, "code"))
		}
		*merged.SampleCount += h.GetSampleCount()
		for i, b := range h.GetBucket() {
			*merged.Bucket[i].CumulativeCount += b.GetCumulativeCount()
		}
	}
	if merged.GetSampleCount() == 0 {
		return nil, nil
	}
	return &result.Timing{Count: merged.GetSampleCount(), P50Ms: boundMs(merged, 0.50), P99Ms: boundMs(merged, 0.99)}, nil
}

// sameBounds reports whether two histograms' buckets have the same upper
// bounds, in order.
func sameBounds(a, b []*dto.Bucket) bool {
	return slices.EqualFunc(a, b, func(x, y *dto.Bucket) bool { return x.GetUpperBound() == y.GetUpperBound() })
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
