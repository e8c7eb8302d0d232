package payment_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/flashsale/flashsale/services/payment"
)

func MustRouter(tb testing.TB) *payment.Router {
	tb.Helper()
	r, err := payment.NewRouter(payment.RouterConfig{Channels: []string{"alipay", "wechat", "unionpay"}, Seed: 3})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// firsts counts which channel comes first over n routings.
func firsts(tb testing.TB, r *payment.Router, preferred string, n int) map[string]int {
	tb.Helper()
	got := map[string]int{}
	for range n {
		c, err := r.Candidates(preferred)
		if err != nil {
			tb.Fatal(err)
		}
		got[c[0]]++
	}
	return got
}

func TestRouterWeightsAndPreference(t *testing.T) {
	r := MustRouter(t)
	if _, err := r.Set("wechat", 300, true); err != nil {
		t.Fatal(err)
	}
	got := firsts(t, r, payment.Auto, 5000)
	// Weights 100:300:100 give wechat three fifths.
	if w := got["wechat"]; w < 2700 || w > 3300 {
		t.Errorf("wechat first %d of 5000, want about 3000 (%v)", w, got)
	}
	if got := firsts(t, r, "unionpay", 100); got["unionpay"] != 100 {
		t.Errorf("preferred unionpay first %d of 100, want all", got["unionpay"])
	}
	if _, err := r.Set("unionpay", 100, false); err != nil {
		t.Fatal(err)
	}
	if got := firsts(t, r, "unionpay", 200); got["unionpay"] != 0 {
		t.Errorf("disabled unionpay chosen %d times", got["unionpay"])
	}
}

func TestRouterHealthDownWeights(t *testing.T) {
	r := MustRouter(t)
	fail := errors.New("down")
	// alipay fails a quarter of its calls: healthy enough not to trip
	// its breaker, sick enough to lose the preference and a quarter of
	// its share.
	for i := range 8 {
		_, _ = r.Call("alipay", func() (payment.Trade, error) {
			if i%4 == 0 {
				return payment.Trade{}, fail
			}
			return payment.Trade{}, nil
		})
	}
	got := firsts(t, r, "alipay", 5000)
	// Scores 75:100:100 give alipay 3/11, about 1364 of 5000.
	if a := got["alipay"]; a < 1150 || a > 1580 {
		t.Errorf("alipay first %d of 5000, want about 1364 (%v)", a, got)
	}
}

func TestRouterRejects(t *testing.T) {
	r := MustRouter(t)
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"unknown preference", func() error { _, err := r.Candidates("paypal"); return err }, payment.ErrInvalid},
		{"unknown channel", func() error { _, err := r.Set("paypal", 1, true); return err }, payment.ErrNotFound},
		{"negative weight", func() error { _, err := r.Set("alipay", -1, true); return err }, payment.ErrInvalid},
		{"all disabled", func() error {
			for _, c := range []string{"alipay", "wechat", "unionpay"} {
				if _, err := r.Set(c, 0, true); err != nil {
					return err
				}
			}
			_, err := r.Candidates(payment.Auto)
			return err
		}, payment.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// A channel that refuses a request (a 4xx: INVALID, CONFLICT) answered,
// and the refusal is about the request: it counts neither for nor against
// the channel. One buyer's unpayable request, tried on every channel in
// turn, must not trip their breakers or cost them their share; a channel
// that fails to answer does trip, and a channel that refuses every
// request does not gain a share it would not have had.
func TestRouterCountsARefusalAsAnAnswer(t *testing.T) {
	r := MustRouter(t)
	for i := range 10 {
		kind := payment.ErrInvalid
		if i%2 == 1 {
			kind = payment.ErrConflict
		}
		if _, err := r.Call("alipay", func() (payment.Trade, error) {
			return payment.Trade{}, fmt.Errorf("alipay /trades: 400 bad_request: %w", kind)
		}); !errors.Is(err, kind) {
			t.Fatalf("refusal %d: %v, want the channel's own answer", i, err)
		}
		_, _ = r.Call("wechat", func() (payment.Trade, error) { return payment.Trade{}, errors.New("timeout") })
	}
	ran := false
	if _, err := r.Call("alipay", func() (payment.Trade, error) { ran = true; return payment.Trade{}, nil }); err != nil || !ran {
		t.Errorf("alipay after ten refusals: ran %v, %v; want its breaker closed", ran, err)
	}
	if got := firsts(t, r, "alipay", 100); got["alipay"] != 100 {
		t.Errorf("preferred alipay first %d of 100 after refusals, want all: it is healthy (%v)", got["alipay"], got)
	}
	if _, err := r.Call("wechat", func() (payment.Trade, error) { return payment.Trade{}, nil }); !errors.Is(err, payment.ErrUnavailable) {
		t.Errorf("wechat after ten timeouts: %v, want its breaker open (UNAVAILABLE)", err)
	}
	// unionpay fails a quarter of its calls and then refuses ten requests:
	// the refusals do not dilute its failures into health.
	r2 := MustRouter(t)
	for i := range 8 {
		_, _ = r2.Call("unionpay", func() (payment.Trade, error) {
			if i%4 == 0 {
				return payment.Trade{}, errors.New("down")
			}
			return payment.Trade{}, nil
		})
	}
	for range 10 {
		_, _ = r2.Call("unionpay", func() (payment.Trade, error) { return payment.Trade{}, payment.ErrInvalid })
	}
	// Scores 100:100:75 give unionpay 3/11, about 1364 of 5000 (counted
	// as successes, the refusals would lift it to 89 and about 1538).
	if u := firsts(t, r2, payment.Auto, 5000)["unionpay"]; u < 1250 || u > 1480 {
		t.Errorf("unionpay first %d of 5000 after failures and refusals, want about 1364: refusals count neither way", u)
	}
}
