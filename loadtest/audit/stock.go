package audit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// regularStockWait bounds how long the check waits for the products'
// stock to come within its bounds: an order that ended a moment ago
// gives its stock back just after its status changes, a release that
// failed under a fault is retried by the expiry worker's sweep, and a
// product copy whose invalidation a Redis fault lost lives out the
// shared cache's minute (the product service's DefaultSharedTTL).
const regularStockWait = 75 * time.Second

// checkRegularStock checks that the products' stock is conserved: each
// product holds what it started with (once the flash sales took theirs),
// less the units of the regular orders that still hold theirs (every
// status but CANCELLED and EXPIRED), as the buyers' order lists show
// them. More than that means stock came back that an order still holds,
// or came back twice: units that can be sold again although they exist
// once (an oversell of regular stock). Less means units stranded, beyond
// what the checkouts the replay could not account for may hold until the
// stray sweep (StrayAfter, ten minutes) gives them back: those answered
// 5xx, not at all or CONFLICT (a coupon refused after the stock was
// taken, whose undo may have failed under a fault), less those whose
// order was stored all the same (listed, though the replay was told no).
// While the stock is out of bounds the orders and the stock are read
// again, a second apart, for up to wait (orders keep expiring while the
// audit runs); relist reads the orders again.
func checkRegularStock(ctx context.Context, gateway *client.Client, res *result.Replay, orders map[string]api.Order, relist func() (map[string]api.Order, error), wait time.Duration) (result.Check, error) {
	c := result.Check{Name: "every product's stock is what its regular orders leave"}
	if len(res.RegularStock.Start) == 0 {
		c.OK, c.Skipped, c.Detail = true, true, "no products"
		return c, nil
	}
	skus := slices.Sorted(maps.Keys(res.RegularStock.Start))
	return untilAgreed(ctx, orders, relist, wait, func(orders map[string]api.Order) (result.Check, error) {
		held, unknown := regularHolds(res, orders)
		var wrong []string
		var sold, unanswered, maybe int64
		for _, id := range skus {
			p, err := client.WithRetryAfter(ctx, func() (api.Product, error) { return gateway.GetProduct(ctx, id) })
			if err != nil {
				wrong = append(wrong, fmt.Sprintf("product %s unread: %v", id, err))
				continue
			}
			want := res.RegularStock.Start[id] - held[id]
			sold, maybe = sold+held[id], maybe+unknown[id]
			if p.Stock < want {
				unanswered += want - p.Stock
			}
			switch {
			case p.Stock > want:
				wrong = append(wrong, fmt.Sprintf("product %s has %d, its orders leave %d: %d units back that orders hold", id, p.Stock, want, p.Stock-want))
			case p.Stock < want-unknown[id]:
				wrong = append(wrong, fmt.Sprintf("product %s has %d, its orders leave %d: %d units stranded, %d more than the unanswered checkouts may hold", id, p.Stock, want, want-p.Stock, want-unknown[id]-p.Stock))
			}
		}
		c.OK = len(wrong) == 0
		c.Detail = fmt.Sprintf("%d products, %d units held by regular orders, %d by checkouts not answered (of the %d they asked for)", len(skus), sold, unanswered, maybe)
		if !c.OK {
			c.Detail += ": " + strings.Join(wrong, "; ")
		}
		return c, nil
	})
}

// regularHolds sums, by sku id, the units of the listed regular orders
// that hold their stock, and the units the checkouts the replay could
// not account for may hold: res.RegularStock.Unknown less the units of
// the listed regular orders it was never told of (stored all the same,
// so counted in held).
func regularHolds(res *result.Replay, orders map[string]api.Order) (held, unknown map[string]int64) {
	held, unknown = map[string]int64{}, maps.Clone(res.RegularStock.Unknown)
	if unknown == nil {
		unknown = map[string]int64{}
	}
	for id, o := range orders {
		if o.Kind != "REGULAR" {
			continue
		}
		_, told := res.Regular[id]
		for _, l := range o.Lines {
			if !released(o.Status) {
				held[l.SKUID] += l.Quantity
			}
			if !told {
				unknown[l.SKUID] = max(unknown[l.SKUID]-l.Quantity, 0)
			}
		}
	}
	return held, unknown
}
