package gateway

import (
	"net/http"
	"sync"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
)

// Bounds of a flash-sale request.
const (
	maxIdempotencyKeyLen = 128
	maxSeckillQuantity   = 1000
)

type seckillRequest struct {
	ActivityID *string `json:"activity_id"`
	Quantity   *int64  `json:"quantity"`
}

// placeSeckillOrder is the hot path. Everything that can refuse a request
// without the order service does so first, cheapest first: the header,
// the body, the local sold-out flag, the cached activity's window. Only
// then does the request reach order (and through it Redis).
func (g *Gateway) placeSeckillOrder(w http.ResponseWriter, r *http.Request) error {
	key := r.Header.Get("Idempotency-Key")
	if key == "" || len(key) > maxIdempotencyKeyLen {
		return errorf(errcode.InvalidArgument, "header Idempotency-Key is required (1 to 128 characters)")
	}
	var req seckillRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var f fields
	activityID := f.id("activity_id", req.ActivityID)
	quantity := f.int("quantity", req.Quantity, 1, maxSeckillQuantity)
	if f.err != nil {
		return f.err
	}
	ctx := r.Context()
	if g.soldOut.marked(activityID) {
		return errorf(errcode.SoldOut, "sold out")
	}
	act, err := g.activity.Get(ctx, activityID)
	if err != nil {
		return err
	}
	if now := g.clock.Now(); now.Before(act.GetStartsAt().AsTime()) || !now.Before(act.GetEndsAt().AsTime()) {
		return errorf(errcode.ActivityNotActive, "the flash sale is not running now")
	}
	cctx, cancel := g.callCtx(ctx)
	defer cancel()
	resp, err := g.order.PlaceSeckillOrder(cctx, &orderv1.PlaceSeckillOrderRequest{
		UserId: callerOf(ctx).UserID, ActivityId: activityID, Quantity: quantity, IdempotencyKey: key,
	})
	if err != nil {
		if errcode.Of(err) == errcode.SoldOut {
			g.soldOut.mark(activityID)
		}
		return err
	}
	writeJSON(w, http.StatusAccepted, api.SeckillAccepted{OrderID: formatID(resp.GetOrderId()), Status: orderStatus(resp.GetStatus())})
	return nil
}

// soldOutFlags remember, per activity, that order answered SOLD_OUT, so
// the flood that follows a sell-out is refused in this process without
// touching order or Redis. A flag lasts only ttl: stock comes back when
// reservations expire or are cancelled, and must be sellable again.
type soldOutFlags struct {
	clock clock.Clock
	ttl   time.Duration

	mu    sync.RWMutex
	until map[int64]time.Time
}

func newSoldOutFlags(c clock.Clock, ttl time.Duration) *soldOutFlags {
	return &soldOutFlags{clock: c, ttl: ttl, until: map[int64]time.Time{}}
}

// mark flags the activity as sold out for ttl from now.
func (s *soldOutFlags) mark(activityID int64) {
	s.mu.Lock()
	s.until[activityID] = s.clock.Now().Add(s.ttl)
	s.mu.Unlock()
}

// marked reports whether the activity's flag is up, dropping it once it
// has expired.
func (s *soldOutFlags) marked(activityID int64) bool {
	s.mu.RLock()
	until, ok := s.until[activityID]
	s.mu.RUnlock()
	if !ok {
		return false
	}
	if s.clock.Now().Before(until) {
		return true
	}
	s.mu.Lock()
	if u, ok := s.until[activityID]; ok && u == until {
		delete(s.until, activityID)
	}
	s.mu.Unlock()
	return false
}
