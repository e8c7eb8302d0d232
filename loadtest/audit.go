package loadtest

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/gateway/api"
)

// Check is one audited invariant.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// SeckillBooks is what the audit reads back after the order topic drained:
// the activity as the API reports it and the orders Postgres holds for it.
type SeckillBooks struct {
	Activity api.Activity
	// StoredOrders maps each stored order id to its buyer.
	StoredOrders map[string]int64
	// StoredRows counts rows, which exceeds len(StoredOrders) only if an
	// order was stored twice.
	StoredRows int
	// UnitsByUser sums stored quantities per buyer.
	UnitsByUser map[int64]int64
}

// ReadSeckillBooks loads the books of activity from the orders database.
func ReadSeckillBooks(ctx context.Context, cl *Client, orders *pgxpool.Pool, activityID string) (*SeckillBooks, error) {
	act, err := cl.GetActivity(ctx, activityID)
	if err != nil {
		return nil, fmt.Errorf("audit: activity: %w", err)
	}
	id, err := strconv.ParseInt(activityID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("audit: activity id %q: %w", activityID, err)
	}
	rows, err := orders.Query(ctx, `SELECT o.order_id, o.user_id, COALESCE(SUM(l.quantity), 0)
		FROM orders o LEFT JOIN order_lines l ON l.order_id = o.order_id
		WHERE o.activity_id = $1 GROUP BY o.order_id, o.user_id`, id)
	if err != nil {
		return nil, fmt.Errorf("audit: orders: %w", err)
	}
	defer rows.Close()
	b := &SeckillBooks{Activity: act, StoredOrders: map[string]int64{}, UnitsByUser: map[int64]int64{}}
	for rows.Next() {
		var orderID, userID, units int64
		if err := rows.Scan(&orderID, &userID, &units); err != nil {
			return nil, fmt.Errorf("audit: scan: %w", err)
		}
		b.StoredRows++
		b.StoredOrders[strconv.FormatInt(orderID, 10)] = userID
		b.UnitsByUser[userID] += units
	}
	return b, rows.Err()
}

// AuditSeckill checks a burst's outcome against the books: nothing
// oversold or undersold, no user over the limit, and every accepted order
// stored exactly once (and nothing else stored).
func AuditSeckill(res *BurstResult, b *SeckillBooks) []Check {
	stock, limit := b.Activity.Stock, b.Activity.PerUserLimit
	var sold int64
	maxUser, maxUnits := int64(0), int64(0)
	for u, n := range b.UnitsByUser {
		sold += n
		if n > maxUnits {
			maxUser, maxUnits = u, n
		}
	}
	want := min(stock, res.DemandUnits)
	checks := []Check{{
		Name:   "sold units = min(stock, demand)",
		OK:     sold == want,
		Detail: fmt.Sprintf("sold %d, stock %d, demand %d", sold, stock, res.DemandUnits),
	}, {
		Name:   "stock conserved (remaining = stock - sold)",
		OK:     b.Activity.Remaining == stock-sold && b.Activity.Remaining >= 0,
		Detail: fmt.Sprintf("remaining %d, stock %d, sold %d", b.Activity.Remaining, stock, sold),
	}, {
		Name:   "nobody above the per-user limit",
		OK:     maxUnits <= limit,
		Detail: fmt.Sprintf("most units of one user: %d (user %d), limit %d", maxUnits, maxUser, limit),
	}}

	missing, extra, wrongBuyer := 0, 0, 0
	for id, user := range res.Orders {
		got, ok := b.StoredOrders[id]
		switch {
		case !ok:
			missing++
		case got != user:
			wrongBuyer++
		}
	}
	for id := range b.StoredOrders {
		if _, ok := res.Orders[id]; !ok {
			extra++
		}
	}
	checks = append(checks, Check{
		Name: "Postgres holds exactly the accepted orders, once each",
		OK:   missing == 0 && extra == 0 && wrongBuyer == 0 && b.StoredRows == len(b.StoredOrders),
		Detail: fmt.Sprintf("accepted %d, stored %d (rows %d), missing %d, unexpected %d, wrong buyer %d",
			len(res.Orders), len(b.StoredOrders), b.StoredRows, missing, extra, wrongBuyer),
	}, Check{
		Name:   "a repeated Idempotency-Key returns the first order",
		OK:     res.ReplayMismatches == 0,
		Detail: fmt.Sprintf("%d replays answered, %d with another order id", res.Counts[Replayed], res.ReplayMismatches),
	})
	return checks
}
