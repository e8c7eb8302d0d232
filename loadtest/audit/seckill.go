package audit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/platform/postgres"
)

// SeckillBooks is what the audit reads back after the order topic drained:
// the activity as the API reports it and the orders Postgres holds for it.
type SeckillBooks struct {
	Activity api.Activity
	// StoredOrders maps each stored order id to its buyer.
	StoredOrders map[string]int64
	// Keys maps each stored order id to its Idempotency-Key, when the
	// books come from Postgres (the API does not show keys).
	Keys map[string]string
	// Status maps each stored order id to its status.
	Status map[string]string
	// UnitsByUser sums stored quantities per buyer that count towards
	// the purchase limit: not released, not refunded in full (a full
	// refund gives the limit back).
	UnitsByUser map[int64]int64
	// MalformedOrders counts stored flash-sale orders without exactly one
	// line.
	MalformedOrders int
	// EverSold sums the units of every stored order, released or not:
	// stock that a cancellation gave back may be sold twice.
	EverSold int64
	// Units sums the stored orders' units by order status.
	Units map[string]int64
	// Money holds each stored order's prices as stored.
	Money map[string]OrderMoney
}

// OrderMoney is a flash-sale order's prices as the platform stored them:
// its line's unit price and units, and the order's sums.
type OrderMoney struct {
	UnitPrice, Units, Total, Discount, Payable int64
}

// priced reports whether m is what units at price cost: a flash-sale
// order takes no promotion and no coupon.
func (m OrderMoney) priced(price int64) bool {
	return m.UnitPrice == price && m.Total == m.Units*price && m.Discount == 0 && m.Payable == m.Total
}

func newSeckillBooks() *SeckillBooks {
	return &SeckillBooks{StoredOrders: map[string]int64{}, Keys: map[string]string{}, Status: map[string]string{},
		UnitsByUser: map[int64]int64{}, Units: map[string]int64{}, Money: map[string]OrderMoney{}}
}

// held is the units the stored orders hold: paid (refunded or not: a
// refund returns money, not stock) or awaiting payment.
func (b *SeckillBooks) held() int64 {
	var n int64
	for status, u := range b.Units {
		if !released(status) {
			n += u
		}
	}
	return n
}

// catalogSettle bounds how long the API's activity may lag Redis: the
// gateway and product cache catalog reads for about a second.
const catalogSettle = 3 * time.Second

// ReadSeckillBooks loads the books of activity from the orders database,
// then reads the activity through the API until its remaining stock
// reflects what the orders hold. Cancelled and expired orders are stored
// but hold no units: their stock is back in the sale.
func ReadSeckillBooks(ctx context.Context, gateway *client.Client, orders postgres.DB, activityID string) (*SeckillBooks, error) {
	id, err := strconv.ParseInt(activityID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("audit: activity id %q: %w", activityID, err)
	}
	return settleBooks(ctx, gateway, activityID, func() (*SeckillBooks, error) { return queryBooks(ctx, orders, id) })
}

// released reports whether an order's stock went back to the sale
// (cancelled by the buyer or expired unpaid).
func released(status string) bool { return status == "CANCELLED" || status == "EXPIRED" }

// add books one stored order; once its stock was released it holds no
// units.
func (b *SeckillBooks) add(orderID string, userID int64, status string, lines, units int64) {
	if lines != 1 {
		b.MalformedOrders++
	}
	b.StoredOrders[orderID] = userID
	b.Status[orderID] = status
	b.EverSold += units
	b.Units[status] += units
	if !released(status) && status != "REFUNDED" {
		b.UnitsByUser[userID] += units
	}
}

// settleBooks reads the books and the activity (through the API, whose
// catalog cache lags) until the remaining stock reflects what the orders
// hold, or catalogSettle passes, leaving the check to fail. Both are read
// again each time, so an order expiring meanwhile only costs a round.
func settleBooks(ctx context.Context, gateway *client.Client, activityID string, read func() (*SeckillBooks, error)) (*SeckillBooks, error) {
	deadline := time.Now().Add(catalogSettle)
	for {
		b, err := read()
		if err != nil {
			return nil, err
		}
		if b.Activity, err = gateway.GetActivity(ctx, activityID); err != nil {
			return nil, fmt.Errorf("audit: activity: %w", err)
		}
		if b.Activity.Remaining == b.Activity.Stock-b.held() || time.Now().After(deadline) {
			return b, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Seckill checks a burst's outcome against the books: nothing
// oversold or undersold, no user over the limit, and every accepted order
// stored exactly once (and nothing else stored).
func Seckill(res *result.Sale, created result.ActivityStat, b *SeckillBooks) []result.Check {
	checks := append(stockChecks(res, created, b), orderChecks(res, b)...)
	return append(checks, priceCheck(created, b))
}

// priceCheck holds the sale the platform shows, and every order it
// stored, to the sale the replay created: its stock, limit and price,
// and each order's unit price and sums.
func priceCheck(created result.ActivityStat, b *SeckillBooks) result.Check {
	a := b.Activity
	saleOK := a.Stock == created.Stock && a.PerUserLimit == created.PerUserLimit && a.Price == created.Price
	wrong, example := 0, ""
	for _, id := range slices.Sorted(maps.Keys(b.Money)) {
		if m := b.Money[id]; !m.priced(created.Price) {
			wrong++
			if example == "" {
				example = fmt.Sprintf(", e.g. order %s: %d units at %d, total %d, discount %d, payable %d", id, m.Units, m.UnitPrice, m.Total, m.Discount, m.Payable)
			}
		}
	}
	return result.Check{
		Name: "the sale is as created (stock, limit, price) and every order is priced at its price",
		OK:   saleOK && wrong == 0,
		Detail: fmt.Sprintf("created %d units at %d, limit %d; the platform shows %d at %d, limit %d; %d orders, %d mispriced%s",
			created.Stock, created.Price, created.PerUserLimit, a.Stock, a.Price, a.PerUserLimit, len(b.Money), wrong, example),
	}
}

// stockChecks holds the sale's units against the stock and limit it was
// created with (not what the platform shows of it), its demand and the
// per-user limit.
func stockChecks(res *result.Sale, created result.ActivityStat, b *SeckillBooks) []result.Check {
	stock, limit := created.Stock, created.PerUserLimit
	sold := b.held()
	maxUser, maxUnits := int64(0), int64(0)
	for u, n := range b.UnitsByUser {
		if n > maxUnits {
			maxUser, maxUnits = u, n
		}
	}
	want := min(stock, res.DemandUnits)
	checks := []result.Check{{
		// Held units never exceed stock (no oversell), and every unit
		// found a buyer while buyers asked (no undersell). Units given
		// back by cancellations or expiry may be sold again, so the
		// second bound counts every order ever stored.
		Name: "none oversold (held <= stock), none undersold (ever sold >= min(stock, demand))",
		OK:   sold <= stock && b.EverSold >= want,
		Detail: fmt.Sprintf("held %d, ever sold %d, stock %d, demand %d",
			sold, b.EverSold, stock, res.DemandUnits),
	}, {
		// Whatever is neither paid for nor awaiting payment is back on
		// sale: expired and cancelled orders' units are in remaining.
		Name: "stock conserved (stock = paid + pending + remaining; expired and cancelled back in remaining)",
		OK:   b.Activity.Remaining == stock-sold && b.Activity.Remaining >= 0,
		Detail: fmt.Sprintf("stock %d, paid %d + pending %d + remaining %d = %d; released %d (expired %d, cancelled %d)",
			stock, sold-b.Units["PENDING_PAYMENT"], b.Units["PENDING_PAYMENT"], b.Activity.Remaining, sold+b.Activity.Remaining,
			b.Units["EXPIRED"]+b.Units["CANCELLED"], b.Units["EXPIRED"], b.Units["CANCELLED"]),
	}, {
		Name:   "nobody above the per-user limit",
		OK:     maxUnits <= limit,
		Detail: fmt.Sprintf("most units of one user: %d (user %d), limit %d", maxUnits, maxUser, limit),
	}}
	return checks
}

// orderChecks holds the stored orders against the accepted ones, the
// keys' answers against their orders, and every answer against the
// documented codes.
func orderChecks(res *result.Sale, b *SeckillBooks) []result.Check {
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
	// An order whose buyer never heard of it is a lie unless no answer
	// ever spoke of its key (503 or none, then 429s: the buyer gave up
	// not knowing) and it ended unpaid with its units back on sale.
	told := map[string]int{} // what the keys of unexpected orders were answered
	unanswered := 0
	for id, user := range b.StoredOrders {
		if _, ok := res.Orders[id]; ok {
			continue
		}
		got := res.Answers[user][b.Keys[id]]
		if b.Keys[id] != "" && neverAnswered(got) && released(b.Status[id]) {
			unanswered++
			continue
		}
		extra++
		told[answersOf(res, user, b.Keys[id])]++
	}
	detail := fmt.Sprintf("accepted %d, stored %d, missing %d, unexpected %d, wrong buyer %d, not one line %d, id given twice %d; "+
		"%d made for attempts never answered about their key (503 or no answer, then refused), each released unpaid",
		len(res.Orders), len(b.StoredOrders), missing, extra, wrongBuyer, b.MalformedOrders, res.DuplicateIDs, unanswered)
	if extra > 0 {
		detail += "; the unexpected orders' keys were answered: " + result.Tally(told)
	}
	return []result.Check{{
		Name:   "Postgres holds exactly the accepted orders, once each (and orders never answered about, released)",
		OK:     missing == 0 && extra == 0 && wrongBuyer == 0 && b.MalformedOrders == 0 && res.DuplicateIDs == 0,
		Detail: detail,
	}, {
		Name:   "a repeated Idempotency-Key returns the first order",
		OK:     res.ReplayMismatches == 0,
		Detail: fmt.Sprintf("%d replays answered with their order, %d keys answered otherwise", res.Counts[result.Replayed], res.ReplayMismatches),
	}, {
		Name: "every attempt was answered with a documented code (no 500, no transport error, after retries)",
		OK:   res.Counts[result.Failed] == 0,
		Detail: fmt.Sprintf("%d failed; %d answered 503 UNAVAILABLE (degraded: see the 5xx check and the fault windows); "+
			"%d without an answer at first answered when their buyer came back with the key", res.Counts[result.Failed], res.Counts[result.Unavailable], res.AskedAgain),
	}}
}

// answersOf says what the replay's attempts with user's key were answered,
// in order ("errors then sold_out"), for the audit's detail.
func answersOf(res *result.Sale, user int64, key string) string {
	got := res.Answers[user][key]
	if key == "" || len(got) == 0 {
		return "never asked"
	}
	parts := make([]string, len(got))
	for i, o := range got {
		parts[i] = string(o)
	}
	return strings.Join(parts, " then ")
}

// neverAnswered says whether a key's answers never spoke of it: each was
// a 503, no answer, or a 429 (the gateway did not look).
func neverAnswered(got []result.Outcome) bool {
	for _, o := range got {
		if !o.Unknown() && !o.Refused() {
			return false
		}
	}
	return len(got) > 0
}
