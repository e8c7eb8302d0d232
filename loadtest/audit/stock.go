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
// gives its stock back just after its status changes, and a release that
// failed under a fault is retried by the expiry worker's sweep.
const regularStockWait = 15 * time.Second

// checkRegularStock checks that the products' stock is conserved: each
// product holds what it started with (once the flash sales took theirs),
// less the units of the regular orders that still hold theirs (every
// status but CANCELLED and EXPIRED), as the buyers' order lists show
// them. More than that means stock came back that an order still holds,
// or came back twice: units that can be sold again although they exist
// once (an oversell of regular stock). Less means units stranded, beyond
// what the checkouts answered 5xx or not at all may hold until the stray
// sweep (StrayAfter, ten minutes) gives them back. The stock is read
// again, a second apart, for up to wait while it is not within bounds.
func checkRegularStock(ctx context.Context, gateway *client.Client, res *result.Replay, orders map[string]api.Order, wait time.Duration) (result.Check, error) {
	c := result.Check{Name: "every product's stock is what its regular orders leave"}
	if len(res.RegularStock.Start) == 0 {
		c.OK, c.Skipped, c.Detail = true, true, "no products"
		return c, nil
	}
	held := map[string]int64{}
	for _, o := range orders {
		if o.Kind == "REGULAR" && !released(o.Status) {
			for _, l := range o.Lines {
				held[l.SKUID] += l.Quantity
			}
		}
	}
	skus := slices.Sorted(maps.Keys(res.RegularStock.Start))
	deadline := time.Now().Add(wait)
	for {
		var wrong []string
		var sold, unanswered, maybe int64
		for _, id := range skus {
			p, err := client.WithRetryAfter(ctx, func() (api.Product, error) { return gateway.GetProduct(ctx, id) })
			if err != nil {
				return c, fmt.Errorf("audit: product %s: %w", id, err)
			}
			want, unknown := res.RegularStock.Start[id]-held[id], res.RegularStock.Unknown[id]
			sold, maybe = sold+held[id], maybe+unknown
			if p.Stock < want {
				unanswered += want - p.Stock
			}
			switch {
			case p.Stock > want:
				wrong = append(wrong, fmt.Sprintf("product %s has %d, its orders leave %d: %d units back that orders hold", id, p.Stock, want, p.Stock-want))
			case p.Stock < want-unknown:
				wrong = append(wrong, fmt.Sprintf("product %s has %d, its orders leave %d: %d units stranded, %d more than the unanswered checkouts may hold", id, p.Stock, want, want-p.Stock, want-unknown-p.Stock))
			}
		}
		c.OK = len(wrong) == 0
		c.Detail = fmt.Sprintf("%d products, %d units held by regular orders, %d by checkouts not answered (of the %d they asked for)", len(skus), sold, unanswered, maybe)
		if !c.OK {
			c.Detail += ": " + strings.Join(wrong, "; ")
		}
		if c.OK || time.Now().After(deadline) {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
