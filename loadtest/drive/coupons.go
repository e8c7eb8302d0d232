package drive

import (
	"context"
	"net/http"
	"sync"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// heldCoupon is a coupon a buyer claimed and has not used yet.
type heldCoupon struct {
	id        string
	threshold int64
}

// couponWallet holds the coupons the buyers claimed and have not used
// yet, by buyer (the index in users), and counts what became of them.
type couponWallet struct {
	mu    sync.Mutex
	held  map[int][]heldCoupon
	stats result.CouponStats
}

// count updates the coupons' counts.
func (w *couponWallet) count(fn func(*result.CouponStats)) {
	w.mu.Lock()
	fn(&w.stats)
	w.mu.Unlock()
}

// claim has each of the users claim one coupon of the template, 32 at a
// time, waiting out rate limits as SignIn does.
func (r *replay) claim(ctx context.Context, templateID string, threshold int64, users []int) {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, i := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := client.WithRetryAfter(ctx, func() (api.Coupon, error) {
				var c api.Coupon
				// One claim per buyer and template: the key makes a retry
				// answer the coupon instead of claiming another.
				_, err := r.gateway.Do(ctx, http.MethodPost, "/api/v1/coupons/"+templateID+"/claim", r.users[i].Token,
					map[string]string{"Idempotency-Key": "claim-" + templateID}, nil, &c)
				return c, err
			})
			r.coupons.mu.Lock()
			defer r.coupons.mu.Unlock()
			if err != nil {
				r.coupons.stats.ClaimFailed++
				return
			}
			r.coupons.stats.Claimed++
			r.coupons.held[i] = append(r.coupons.held[i], heldCoupon{id: c.CouponID, threshold: threshold})
		})
	}
	wg.Wait()
}

// take hands out one of the user's coupons whose threshold the
// cart's list price clears twice over (promotions come off first, and a
// coupon below its threshold is refused), or "" when there is none.
func (w *couponWallet) take(user int, listTotal int64) (heldCoupon, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	held := w.held[user]
	for i, c := range held {
		if listTotal >= 2*c.threshold {
			w.held[user] = append(held[:i:i], held[i+1:]...)
			return c, true
		}
	}
	return heldCoupon{}, false
}

// giveBack returns a coupon take handed out.
func (w *couponWallet) giveBack(user int, c heldCoupon) {
	w.mu.Lock()
	w.held[user] = append(w.held[user], c)
	w.mu.Unlock()
}
