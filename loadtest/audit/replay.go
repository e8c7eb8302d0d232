// Package audit checks the platform's books after a load-test run: it
// reads what the platform stored (through the HTTP API as a buyer sees it,
// or, for two queries only, the services' databases: dbread.go) and holds
// it against what the replay was told (result.Replay): nothing oversold,
// every accepted order stored once, payments and refunds balanced, unpaid
// orders expired, 5xx only under faults, bots and strangers refused.
package audit

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/platform/postgres"
)

// Replay checks the platform's books after a replay drained. The
// stored orders come from Postgres when pool is not nil and from the API
// otherwise; orders are every user's orders as the API lists them.
func Replay(ctx context.Context, gateway *client.Client, res *result.Replay, books *Books, pool postgres.DB) ([]result.Check, error) {
	var checks []result.Check
	orders := books.Orders
	res.Orders = orderStates(res, books)
	stored := map[string]int64{} // every sale's stored orders, by buyer, for the bots' check
	for _, a := range res.Activities {
		var sale *SeckillBooks
		var err error
		if pool != nil {
			sale, err = ReadSeckillBooks(ctx, gateway, pool, a.ActivityID)
		} else {
			sale, err = seckillBooksFromAPI(ctx, gateway, orders, a.ActivityID)
		}
		if err != nil {
			return nil, err
		}
		maps.Copy(stored, sale.StoredOrders)
		res.Orders.ReleasedUnits += sale.Units["EXPIRED"] + sale.Units["CANCELLED"]
		for _, c := range Seckill(res.Sales[a.Key], a, sale) {
			c.Name = a.Key + ": " + c.Name
			checks = append(checks, c)
		}
	}
	botOrders, err := ReadAllOrders(ctx, gateway, res.BotsList)
	if err != nil {
		return nil, err
	}
	checks = append(checks, checkBots(res, botOrders, stored), checkServed(res), checkStrangers(res, orders))
	checks = append(checks, checkDegradation(res), checkRegular(res, orders), checkCoupons(res, orders), checkLines(orders), checkRefunds(orders), checkRefundsApplied(res, orders), checkExpiry(res, books))
	// The checks that wait for the books to agree read the orders again;
	// each starts from the latest list, not the settled books' first.
	latest := orders
	relist := func() (map[string]api.Order, error) {
		b, err := readBooksOrders(ctx, gateway, res.UsersList)
		if err != nil {
			return nil, err
		}
		latest = b.Orders
		return latest, nil
	}
	stock, err := checkRegularStock(ctx, gateway, res, latest, relist, regularStockWait)
	if err != nil {
		return nil, err
	}
	coupons, err := checkCouponsConserved(ctx, gateway, res, latest, relist, couponWait)
	if err != nil {
		return nil, err
	}
	checks = append(checks, stock, coupons)
	return append(checks, checkPayments(res, books)...), nil
}

// orderStates counts where the accepted orders and their payments ended,
// and tallies each channel's final payment statuses into res.Channels.
func orderStates(res *result.Replay, b *Books) *result.OrderStates {
	st := &result.OrderStates{ByStatus: map[string]int{}, Payments: map[string]int{}}
	final := map[string]map[string]int{}
	for _, id := range accepted(res) {
		o, ok := b.Orders[id]
		if !ok {
			continue
		}
		st.ByStatus[o.Status]++
		for _, p := range b.Payments[id] {
			st.Payments[p.Status]++
			if final[p.Channel] == nil {
				final[p.Channel] = map[string]int{}
			}
			final[p.Channel][p.Status]++
			switch {
			case p.Status != "REFUNDED":
			case names(o, p):
				st.BuyerRefunds++
			case slices.Contains(paidStatuses, o.Status):
				st.DuplicateRefunds++
			default:
				st.LateRefunds++
			}
		}
	}
	for ch, m := range final {
		i := slices.IndexFunc(res.Channels, func(c result.ChannelStat) bool { return c.Channel == ch })
		if i < 0 {
			res.Channels = append(res.Channels, result.ChannelStat{Channel: ch})
			i = len(res.Channels) - 1
		}
		res.Channels[i].Final = m
	}
	slices.SortFunc(res.Channels, func(a, b result.ChannelStat) int { return cmp.Compare(a.Channel, b.Channel) })
	return st
}

func featureReason(res *result.Replay, name string) string {
	if f := res.Feature(name); !f.Available {
		return f.Reason
	}
	return "none placed"
}

// checkServed fails a platform that refuses what the replay asks of it:
// every endpoint the buyers used answered some of their requests
// successfully, and every sale buyers asked of accepted some buys.
// Without it a platform that refused everyone passed, its books empty
// and so in order (the bots' answers are the bots check's).
func checkServed(res *result.Replay) result.Check {
	c := result.Check{Name: "the platform served what it was asked: every endpoint used answered some requests, every sale accepted some buys"}
	if res.PressureTest {
		c.OK, c.Skipped, c.Detail = true, true, "a pressure test yields to real buyers: it may be refused whole (docs/pressure-test.md)"
		return c
	}
	asked, served := map[string]int64{}, map[string]int64{}
	for _, e := range res.Endpoints {
		if e.Endpoint == result.EndpointBot || result.IsStrangerEndpoint(e.Endpoint) {
			continue
		}
		asked[e.Endpoint] += e.Count
		if e.Outcome == "ok" || e.Outcome == string(result.Accepted) {
			served[e.Endpoint] += e.Count
		}
	}
	var refused []string
	for _, ep := range slices.Sorted(maps.Keys(asked)) {
		if asked[ep] > 0 && served[ep] == 0 {
			refused = append(refused, fmt.Sprintf("%s (%d asked)", ep, asked[ep]))
		}
	}
	for _, a := range res.Activities {
		sale := res.Sales[a.Key]
		if sale == nil {
			continue
		}
		var tries int
		for _, n := range sale.Counts {
			tries += n
		}
		if tries > 0 && len(sale.Orders) == 0 {
			refused = append(refused, fmt.Sprintf("sale %s (%d buys, none accepted)", a.Key, tries))
		}
	}
	c.OK, c.Detail = len(refused) == 0, fmt.Sprintf("%d endpoints, %d sales", len(asked), len(res.Activities))
	if len(refused) > 0 {
		c.Detail += "; refused all: " + strings.Join(refused, ", ")
	}
	return c
}
