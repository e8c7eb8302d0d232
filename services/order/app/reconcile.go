package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/services/order"
	orderkafka "github.com/flashsale/flashsale/services/order/kafka"
)

// writerLag is the order-writer group's lag on orders.placed: the
// published orders the stock reconciler waits to see stored.
type writerLag struct{ brokers []string }

func (l writerLag) InFlight(ctx context.Context) (int64, error) {
	return pkafka.Lag(ctx, l.brokers, pkafka.Group(ctx, orderkafka.GroupWriter), shadow.Topic(ctx, orderkafka.TopicPlaced))
}

// reconcileBudget bounds one round run by POST /reconcile-stock: after a
// Redis restart it rebuilds every fenced sale, one after another, each
// from all its stored orders, which may take far longer than the admin
// server's timeouts allow an ordinary request.
const reconcileBudget = 5 * time.Minute

// reconcileHandler serves POST /reconcile-stock on the admin port: one
// round of the stock reconciler now, instead of at its next tick, within
// reconcileBudget. It answers 200 {"rebuilt": [activity ids]} or 503
// {"error": "..."} (the inventory unreachable, orders still in flight,
// the budget spent: try again; a sale rebuilt stays rebuilt).
func reconcileHandler(r *order.StockReconciler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel, err := telemetry.LongRequest(w, req, reconcileBudget)
		defer cancel()
		if err != nil {
			log.WarnContext(ctx, "reconcile-stock: the answer of a round longer than the server's write timeout will be lost", "err", err)
		}
		rebuilt, err := r.RunOnce(ctx)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		if rebuilt == nil {
			rebuilt = []int64{}
		}
		_ = json.NewEncoder(w).Encode(map[string][]int64{"rebuilt": rebuilt})
	})
}
