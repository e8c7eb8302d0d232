package audit

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/platform/postgres"
	"github.com/flashsale/flashsale/platform/shadow"
)

// createdOf is the sale as the replay created it when the platform shows
// it as it is in b.
func createdOf(b *SeckillBooks) result.ActivityStat {
	return result.ActivityStat{Stock: b.Activity.Stock, PerUserLimit: b.Activity.PerUserLimit, Price: b.Activity.Price}
}

// books returns settled books for a sale of stock units with limit 1 in
// which the given orders (order id → user) were stored.
func books(stock int64, stored map[string]int64) *SeckillBooks {
	b := &SeckillBooks{Activity: api.Activity{Stock: stock, PerUserLimit: 1}, StoredOrders: stored, UnitsByUser: map[int64]int64{}, Units: map[string]int64{}}
	var sold int64
	for _, u := range stored {
		b.UnitsByUser[u]++
		b.Units["PAID"]++
		sold++
	}
	b.Activity.Remaining = stock - sold
	b.EverSold = sold
	return b
}

// oversold makes the books hold more than the stock (with the remaining
// stock agreeing, so only the oversell check can catch it).
func oversold(b *SeckillBooks) *SeckillBooks {
	b.Activity.Remaining = 0
	return b
}

// resold adds a cancelled order (its unit was then sold again).
func resold(b *SeckillBooks) *SeckillBooks {
	b.StoredOrders["3"] = 12
	b.EverSold++
	return b
}

func failed(checks []result.Check) []string {
	var out []string
	for _, c := range checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestAuditSeckill(t *testing.T) {
	good := map[string]int64{"1": 10, "2": 11}
	tests := []struct {
		name  string
		res   *result.Sale
		books *SeckillBooks
		want  string // substring of the one failing check, "" when all pass
	}{
		{"clean sale", &result.Sale{Orders: good, DemandUnits: 5}, books(2, good), ""},
		{"undersold", &result.Sale{Orders: good, DemandUnits: 5}, books(3, good), "none undersold"},
		{"oversold", &result.Sale{Orders: good, DemandUnits: 5}, oversold(books(1, good)), "none oversold"},
		{"cancelled stock sold again", &result.Sale{Orders: map[string]int64{"1": 10, "2": 11, "3": 12}, DemandUnits: 5},
			resold(books(2, map[string]int64{"1": 10, "2": 11})), ""},
		{"accepted order lost", &result.Sale{Orders: map[string]int64{"1": 10, "2": 11, "3": 12}, DemandUnits: 3}, books(2, good), "exactly the accepted"},
		{"order stored that nobody was told of", &result.Sale{Orders: map[string]int64{"1": 10}, DemandUnits: 1}, books(1, map[string]int64{"1": 10, "9": 19}), "exactly the accepted"},
		{"replay answered with a new order", &result.Sale{Orders: good, DemandUnits: 2, ReplayMismatches: 1}, books(2, good), "Idempotency-Key"},
		{"one order id handed to two keys", &result.Sale{Orders: good, DemandUnits: 2, DuplicateIDs: 1}, books(2, good), "exactly the accepted"},
		{"an attempt never answered", &result.Sale{Orders: good, DemandUnits: 2, Counts: map[result.Outcome]int{result.Failed: 1}}, books(2, good), "every attempt was answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(failed(Seckill(tt.res, createdOf(tt.books), tt.books)), "; ")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("failing checks = %q, want one matching %q", got, tt.want)
			}
		})
	}
}

func TestAuditCatchesMalformedOrders(t *testing.T) {
	b := books(2, map[string]int64{"1": 10, "2": 11})
	b.MalformedOrders = 1
	got := strings.Join(failed(Seckill(&result.Sale{Orders: map[string]int64{"1": 10, "2": 11}, DemandUnits: 2}, createdOf(b), b)), "; ")
	if !strings.Contains(got, "exactly the accepted") {
		t.Fatalf("an order without exactly one line not caught: %q", got)
	}
}

// A full refund gives the buyer's limit back: the unit still counts as
// sold against the stock, not against the limit.
func TestRefundedOrderLeavesTheLimit(t *testing.T) {
	b := newSeckillBooks()
	b.Activity = api.Activity{Stock: 3, PerUserLimit: 1, Remaining: 1}
	b.add("1", 10, "REFUNDED", 1, 1)
	b.add("2", 10, "PAID", 1, 1)
	res := &result.Sale{Orders: map[string]int64{"1": 10, "2": 10}, DemandUnits: 2}
	if got := failed(Seckill(res, createdOf(b), b)); len(got) != 0 {
		t.Fatalf("failing checks = %q, want none", got)
	}
}

func TestAuditCatchesLimitAndStockViolations(t *testing.T) {
	stored := map[string]int64{"1": 10, "2": 10}
	b := books(2, stored)
	got := strings.Join(failed(Seckill(&result.Sale{Orders: stored, DemandUnits: 1}, createdOf(b), b)), "; ")
	if !strings.Contains(got, "per-user limit") {
		t.Fatalf("two units for a limit-1 user not caught: %q", got)
	}
	b = books(2, map[string]int64{"1": 10})
	b.Activity.Remaining = 5 // more than stock minus sold: stock appeared from nowhere
	got = strings.Join(failed(Seckill(&result.Sale{Orders: map[string]int64{"1": 10}, DemandUnits: 1}, createdOf(b), b)), "; ")
	if !strings.Contains(got, "stock conserved") {
		t.Fatalf("unconserved stock not caught: %q", got)
	}
}

// The audit holds the sale and its orders to what the replay created: a
// sale shown with other stock, limit or price, or an order priced at
// anything but the sale's price, fails it (the platform's own numbers
// agree with each other however wrong they are).
func TestAuditSeckillPrices(t *testing.T) {
	created := result.ActivityStat{Stock: 2, PerUserLimit: 1, Price: 199_00}
	right := OrderMoney{UnitPrice: 199_00, Units: 1, Total: 199_00, Payable: 199_00}
	tests := []struct {
		name  string
		shown api.Activity
		money OrderMoney
		want  string
	}{
		{"as created", api.Activity{Stock: 2, PerUserLimit: 1, Price: 199_00}, right, ""},
		{"more stock shown", api.Activity{Stock: 3, PerUserLimit: 1, Price: 199_00}, right, "as created"},
		{"a higher limit shown", api.Activity{Stock: 2, PerUserLimit: 2, Price: 199_00}, right, "as created"},
		{"sold a cent cheap", api.Activity{Stock: 2, PerUserLimit: 1, Price: 199_00},
			OrderMoney{UnitPrice: 198_99, Units: 1, Total: 198_99, Payable: 198_99}, "priced at its price"},
		{"a discount on a flash sale", api.Activity{Stock: 2, PerUserLimit: 1, Price: 199_00},
			OrderMoney{UnitPrice: 199_00, Units: 1, Total: 199_00, Discount: 1_00, Payable: 198_00}, "priced at its price"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := books(2, map[string]int64{"1": 10})
			b.Activity.PerUserLimit, b.Activity.Price = tt.shown.PerUserLimit, tt.shown.Price
			b.Activity.Remaining += tt.shown.Stock - b.Activity.Stock
			b.Activity.Stock = tt.shown.Stock
			b.Money = map[string]OrderMoney{"1": tt.money}
			got := strings.Join(failed(Seckill(&result.Sale{Orders: map[string]int64{"1": 10}, DemandUnits: 1}, created, b)), "; ")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("failing checks = %q, want one matching %q", got, tt.want)
			}
		})
	}
}

func TestAuditPayments(t *testing.T) {
	paid := func(id, payment string) api.Order {
		return api.Order{OrderID: id, Status: "PAID", Payment: &api.OrderPayment{PaymentID: payment, Channel: "alipay", Status: "SUCCEEDED"}}
	}
	unpaid := func(id, status string) api.Order { return api.Order{OrderID: id, Status: status} }
	pay := func(id, status string) PaymentRecord {
		return PaymentRecord{PaymentID: id, Channel: "alipay", Status: status}
	}
	tests := []struct {
		name      string
		order     api.Order
		payments  []PaymentRecord
		cancelled bool
		want      string // substring of the one failing check, "" when all pass
	}{
		{"paid once", paid("1", "p1"), []PaymentRecord{pay("p1", "SUCCEEDED")}, false, ""},
		{"paid twice, the second refunded", paid("1", "p1"), []PaymentRecord{pay("p1", "SUCCEEDED"), pay("p2", "REFUNDED")}, false, ""},
		{"expired, the late money refunded", unpaid("1", "EXPIRED"), []PaymentRecord{pay("p1", "REFUNDED")}, false, ""},
		{"cancelled as the buyer was told", unpaid("1", "CANCELLED"), nil, true, ""},
		{"refunded in full at the buyer's request", api.Order{OrderID: "1", Status: "REFUNDED", Payment: &api.OrderPayment{PaymentID: "p1"}},
			[]PaymentRecord{pay("p1", "REFUNDED")}, false, ""},
		{"partially refunded, the payment kept", api.Order{OrderID: "1", Status: "PARTIALLY_REFUNDED", Payment: &api.OrderPayment{PaymentID: "p1"}},
			[]PaymentRecord{pay("p1", "SUCCEEDED")}, false, ""},
		{"paid, its payment refunded in full", paid("1", "p1"), []PaymentRecord{pay("p1", "REFUNDED")}, false, "two final states"},
		{"refunded in full, its payment still kept", api.Order{OrderID: "1", Status: "REFUNDED", Payment: &api.OrderPayment{PaymentID: "p1"}},
			[]PaymentRecord{pay("p1", "SUCCEEDED")}, false, "exactly one successful"},
		{"refunded in full, a duplicate kept", api.Order{OrderID: "1", Status: "REFUNDED", Payment: &api.OrderPayment{PaymentID: "p1"}},
			[]PaymentRecord{pay("p1", "REFUNDED"), pay("p2", "SUCCEEDED")}, false, "exactly one successful"},
		{"paid twice, both kept", paid("1", "p1"), []PaymentRecord{pay("p1", "SUCCEEDED"), pay("p2", "SUCCEEDED")}, false, "exactly one successful"},
		{"paid by a payment it does not name", paid("1", "p2"), []PaymentRecord{pay("p1", "SUCCEEDED")}, false, "exactly one successful"},
		{"paid without money", paid("1", "p1"), []PaymentRecord{pay("p1", "PAYING")}, false, "exactly one successful"},
		{"expired, the late money kept", unpaid("1", "EXPIRED"), []PaymentRecord{pay("p1", "SUCCEEDED")}, false, "no money kept"},
		{"cancelled for the buyer, then paid", paid("1", "p1"), []PaymentRecord{pay("p1", "SUCCEEDED")}, true, "two final states"},
		{"expired and naming a payment", api.Order{OrderID: "1", Status: "EXPIRED", Payment: &api.OrderPayment{PaymentID: "p1"}},
			[]PaymentRecord{pay("p1", "REFUNDED")}, false, "two final states"},
		{"paid a cent short", api.Order{OrderID: "1", UserID: "10", Status: "PAID", Payable: 199_00, Payment: &api.OrderPayment{PaymentID: "p1"}},
			[]PaymentRecord{{PaymentID: "p1", UserID: "10", Status: "SUCCEEDED", Amount: 198_99}}, false, "its order's payable"},
		{"paid by another user", api.Order{OrderID: "1", UserID: "10", Status: "PAID", Payable: 199_00, Payment: &api.OrderPayment{PaymentID: "p1"}},
			[]PaymentRecord{{PaymentID: "p1", UserID: "11", Status: "SUCCEEDED", Amount: 199_00}}, false, "its order's buyer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &result.Replay{Features: []result.Feature{{Name: result.FeaturePay, Available: true}}, Regular: map[string]int64{"1": 10},
				Trails: map[string]*result.Trail{"1": {Cancelled: tt.cancelled}}}
			b := &Books{Orders: map[string]api.Order{"1": tt.order}, Payments: map[string][]PaymentRecord{"1": tt.payments}}
			got := strings.Join(failed(checkPayments(res, b)), "; ")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("failing checks = %q, want one matching %q", got, tt.want)
			}
		})
	}
}

func TestAuditExpiry(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		name  string
		order api.Order
		ok    bool
	}{
		{"expired", api.Order{Status: "EXPIRED", ExpiresAt: at(-time.Minute)}, true},
		{"pending, not due", api.Order{Status: "PENDING_PAYMENT", ExpiresAt: at(time.Minute)}, true},
		{"pending, just due", api.Order{Status: "PENDING_PAYMENT", ExpiresAt: at(-time.Second)}, true},
		{"pending long past its window", api.Order{Kind: "REGULAR", Status: "PENDING_PAYMENT", ExpiresAt: at(-time.Minute)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &result.Replay{Regular: map[string]int64{"1": 10}}
			c := checkExpiry(res, &Books{Orders: map[string]api.Order{"1": tt.order}, Listed: map[string]time.Time{"1": now}})
			if c.OK != tt.ok {
				t.Fatalf("ok = %v, want %v (%s)", c.OK, tt.ok, c.Detail)
			}
		})
	}
}

// Lateness is judged at the moment the books were read, not when the
// check runs: the demo measures the redis-benchmark ceiling between the
// two, and an order read pending just before its deadline had expired
// on time by the audit's clock many seconds later (a FAIL of
// overload.yaml, whose worker expired every order within 14 s).
func TestAuditExpiryIsJudgedWhenTheBooksWereRead(t *testing.T) {
	listed := time.Now().Add(-time.Hour) // the check runs an hour after the read
	due := listed.Add(-5 * time.Second)
	res := &result.Replay{Regular: map[string]int64{"1": 10, "2": 10}}
	pending := api.Order{Kind: "REGULAR", Status: "PENDING_PAYMENT", ExpiresAt: &due}
	b := &Books{Orders: map[string]api.Order{"1": pending}, Listed: map[string]time.Time{"1": listed}}
	if c := checkExpiry(res, b); !c.OK {
		t.Errorf("an order 5 s past its deadline when listed failed the check: %s", c.Detail)
	}
	// Each order by its own list's time: one listed 20 s after its
	// deadline is late, whenever the others were listed.
	b.Orders["2"], b.Listed["2"] = pending, due.Add(20*time.Second)
	if c := checkExpiry(res, b); c.OK {
		t.Errorf("an order listed pending 20 s past its deadline passed the check: %s", c.Detail)
	}
}

func TestAuditRefunds(t *testing.T) {
	line := func(qty, payable, refQty, refunded int64) api.OrderLine {
		return api.OrderLine{LineID: "1", Quantity: qty, Payable: payable, RefundedQuantity: refQty, Refunded: refunded}
	}
	order := func(status string, refunded int64, lines ...api.OrderLine) api.Order {
		o := api.Order{OrderID: "9", Status: status, Refunded: refunded, Lines: lines}
		for _, l := range lines {
			o.Payable += l.Payable
		}
		return o
	}
	tests := []struct {
		name  string
		order api.Order
		ok    bool
	}{
		{"1 of 3 units back", order("PARTIALLY_REFUNDED", 935, line(3, 2807, 1, 935)), true},
		{"all units back", order("REFUNDED", 2807, line(3, 2807, 3, 2807)), true},
		{"lines and order disagree", order("PARTIALLY_REFUNDED", 936, line(3, 2807, 1, 935)), false},
		{"more back than payable", order("REFUNDED", 2808, line(3, 2807, 3, 2808)), false},
		{"all units back but not all money", order("PARTIALLY_REFUNDED", 2806, line(3, 2807, 3, 2806)), false},
		{"REFUNDED short of payable", order("REFUNDED", 935, line(3, 2807, 1, 935)), false},
		{"partial that returned everything", order("PARTIALLY_REFUNDED", 2807, line(3, 2807, 2, 2807)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checkRefunds(map[string]api.Order{"9": tt.order})
			if c.OK != tt.ok {
				t.Fatalf("OK = %v (%s), want %v", c.OK, c.Detail, tt.ok)
			}
		})
	}
	if c := checkRefunds(map[string]api.Order{"9": order("PARTIALLY_REFUNDED", 935, line(3, 2807, 1, 935))}); !strings.Contains(c.Detail, "1 of 3 units (payable 2807) returned 935; refunded 935, kept 1872") {
		t.Fatalf("the detail does not work the partial refund through: %s", c.Detail)
	}
}

// An unexpected order is explained by what its key was answered, so a
// failed audit says which answer misled the buyer.
func TestUnexpectedOrderIsExplainedByItsKeysAnswers(t *testing.T) {
	b := books(2, map[string]int64{"1": 10, "9": 19})
	b.Keys = map[string]string{"1": "k10-1", "9": "k19-1"}
	res := &result.Sale{Orders: map[string]int64{"1": 10}, DemandUnits: 2,
		Answers: map[int64]map[string][]result.Outcome{19: {"k19-1": {result.Failed, result.Overloaded, result.SoldOut}}}}
	for _, c := range Seckill(res, createdOf(b), b) {
		if strings.Contains(c.Name, "exactly the accepted") {
			if c.OK || !strings.Contains(c.Detail, "errors then overloaded then sold_out 1") {
				t.Fatalf("check %+v: want it failed, explained by the key's answers", c)
			}
			return
		}
	}
	t.Fatal("no check of the stored orders")
}

// An order made for a buy the platform never answered about (503, then
// 429s: its buyer gave up not knowing) is no lie if it ended unpaid with
// its unit back on sale; the same order paid, or a key that was once
// answered SOLD_OUT, is.
func TestOrderOfANeverAnsweredBuyMustEndReleased(t *testing.T) {
	for _, tt := range []struct {
		name    string
		status  string
		answers []result.Outcome
		ok      bool
	}{
		{"503 then 429, expired", "EXPIRED", []result.Outcome{result.Unavailable, result.Overloaded, result.RateLimited}, true},
		{"no answer, cancelled", "CANCELLED", []result.Outcome{result.Failed}, true},
		{"503 then 429, paid", "PAID", []result.Outcome{result.Unavailable, result.Overloaded}, false},
		{"503 then SOLD_OUT, expired", "EXPIRED", []result.Outcome{result.Unavailable, result.SoldOut}, false},
		{"never asked, expired", "EXPIRED", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newSeckillBooks()
			b.Activity = api.Activity{Stock: 2, PerUserLimit: 1, Remaining: 1}
			b.add("1", 10, "PAID", 1, 1)
			b.add("9", 19, tt.status, 1, 1)
			b.Keys["1"], b.Keys["9"] = "k10-1", "k19-1"
			if !released(tt.status) {
				b.Activity.Remaining = 0
			}
			res := &result.Sale{Orders: map[string]int64{"1": 10}, DemandUnits: 1,
				Answers: map[int64]map[string][]result.Outcome{19: {"k19-1": tt.answers}}}
			for _, c := range Seckill(res, createdOf(b), b) {
				if strings.Contains(c.Name, "exactly the accepted") && c.OK != tt.ok {
					t.Fatalf("%s: ok %v, want %v (%s)", c.Name, c.OK, tt.ok, c.Detail)
				}
			}
		})
	}
}

// 5xx are the documented degradation only under a fault that can fail
// the endpoint: inside its window or within recoverWithin seconds of its
// lift; anywhere else, on an endpoint the fault does not reach (a buy
// while a channel is down), or a fault the platform never recovered
// from, fails the check.
func TestDegradationOnlyUnderFaults(t *testing.T) {
	fault := result.FaultStat{Fault: "kafka blackhole at 10s for 5s", Status: "applied and lifted", OnS: 10.1, OffS: 15.2, RecoveredS: 2}
	channel := result.FaultStat{Fault: "alipay down at 10s for 5s", Status: "applied and lifted", OnS: 10.1, OffS: 15.2, RecoveredS: 0,
		Reaches: []string{"POST pay", "POST wallet"}}
	const buy, pay = "POST seckill", "POST pay"
	for _, tt := range []struct {
		name     string
		endpoint string
		failures map[int]int
		faults   []result.FaultStat
		ok       bool
	}{
		{"none", buy, nil, nil, true},
		{"inside and after the window", buy, map[int]int{10: 40, 14: 3, 24: 1}, []result.FaultStat{fault}, true},
		{"before the fault", buy, map[int]int{9: 1, 12: 40}, []result.FaultStat{fault}, false},
		{"past the recovery", buy, map[int]int{26: 1}, []result.FaultStat{fault}, false},
		{"no fault at all", buy, map[int]int{30: 1}, nil, false},
		{"a skipped fault covers nothing", buy, map[int]int{12: 1}, []result.FaultStat{{Fault: "redis kill at 10s for 2s", Status: "skipped"}}, false},
		{"never recovered", buy, nil, []result.FaultStat{{Fault: fault.Fault, OnS: 10.1, OffS: 15.2, RecoveredS: -1}}, false},
		{"a payment while its channel is down", pay, map[int]int{11: 5, 20: 1}, []result.FaultStat{channel}, true},
		{"a buy while a channel is down", buy, map[int]int{11: 5}, []result.FaultStat{channel}, false},
		{"a buy while a channel and kafka are down", buy, map[int]int{11: 5}, []result.FaultStat{channel, fault}, true},
		{"failures of no known endpoint while a channel is down", "", map[int]int{11: 5}, []result.FaultStat{channel}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := &result.Replay{Faults: tt.faults}
			for i := range 40 {
				s := result.SecondStat{T: i, Failures: tt.failures[i]}
				if s.Failures > 0 && tt.endpoint != "" {
					s.FailedBy = map[string]int{tt.endpoint: s.Failures}
				}
				res.Seconds = append(res.Seconds, s)
			}
			if c := checkDegradation(res); c.OK != tt.ok {
				t.Fatalf("ok %v, want %v: %s", c.OK, tt.ok, c.Detail)
			}
		})
	}
}

// The bots' check passes only when the bots tried and every request was
// refused, and no order, listed or stored, is a bot account's.
func TestAuditBots(t *testing.T) {
	if c := checkBots(&result.Replay{}, nil, nil); !c.OK || !c.Skipped {
		t.Errorf("no bots phase: %+v, want skipped", c)
	}
	bots := []client.User{{ID: 900}, {ID: 901}}
	refused := func() *result.BotStats {
		return &result.BotStats{Accounts: 2, Answers: map[string]map[string]int{
			result.TrickNoChallenge: {"challenge_required": 7, "rate_limited": 3}, result.TrickBlocked: {"blocked": 2}}}
	}
	stored := map[string]int64{"o1": 100, "o2": 101} // buyers' orders
	for _, tt := range []struct {
		name   string
		stats  *result.BotStats
		listed map[string]api.Order
		stored map[string]int64
		ok     bool
		detail string
	}{
		{"all refused, none held", refused(), nil, stored, true, "12 requests from 2 bot accounts answered: blocked 2, challenge_required 7, rate_limited 3; 0 placed; 0 orders held by bots"},
		{"the bots sent nothing", &result.BotStats{Accounts: 2, Answers: map[string]map[string]int{}}, nil, stored, false, "the wall was not tried"},
		{"a bot buy placed", func() *result.BotStats {
			s := refused()
			s.Answers[result.TrickReused] = map[string]int{"ok": 1}
			return s
		}(), nil, stored, false, "1 placed"},
		{"an order listed for a bot", refused(), map[string]api.Order{"o9": {OrderID: "o9", UserID: "901"}}, stored, false, "o9 (listed for 901)"},
		{"an order stored for a bot", refused(), nil, map[string]int64{"o1": 100, "o8": 900}, false, "o8 (stored for 900)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := checkBots(&result.Replay{Bots: tt.stats, BotsList: bots}, tt.listed, tt.stored)
			if c.OK != tt.ok || !strings.Contains(c.Detail, tt.detail) {
				t.Errorf("got ok %v %q, want ok %v and %q", c.OK, c.Detail, tt.ok, tt.detail)
			}
		})
	}
}

// A marked audit reads the shadow schema through a postgres.Router; a
// plain pool would read the real tables, and is refused before any
// query. A real audit reads either.
func TestMarkedAuditNeedsARoutedDatabase(t *testing.T) {
	ctx := context.Background()
	var plain *pgxpool.Pool
	if _, err := queryBooks(shadow.With(ctx), plain, 1); !errors.Is(err, errUnrouted) {
		t.Fatalf("marked read through a plain pool: %v, want errUnrouted", err)
	}
	if _, err := queryPayments(shadow.With(ctx), plain, []string{"1"}); !errors.Is(err, errUnrouted) {
		t.Fatalf("marked payments through a plain pool: %v, want errUnrouted", err)
	}
	if db, err := classDB(ctx, plain); err != nil || db != postgres.DB(plain) {
		t.Fatalf("real read: %v, %v", db, err)
	}
	routed := &postgres.Router{}
	if db, err := classDB(shadow.With(ctx), routed); err != nil || db != postgres.DB(routed) {
		t.Fatalf("marked read through a router: %v, %v", db, err)
	}
}

// A platform that refuses everything the replay asks of it keeps its
// books empty and so in order; checkServed fails it: an endpoint the
// buyers used that never answered them successfully, or a sale buyers
// asked of that accepted nothing. Bots are the bots check's.
func TestAuditServed(t *testing.T) {
	served := []result.EndpointStat{
		{Endpoint: "POST pay", Outcome: "ok", Count: 10}, {Endpoint: "POST pay", Outcome: "overloaded", Count: 3},
		{Endpoint: "POST seckill", Outcome: "accepted", Count: 5}, {Endpoint: "POST seckill", Outcome: "sold_out", Count: 50},
		{Endpoint: result.EndpointBot, Outcome: "blocked", Count: 9},
	}
	sale := &result.Sale{Counts: map[result.Outcome]int{result.Accepted: 5, result.SoldOut: 50}, Orders: map[string]int64{"1": 10}}
	tests := []struct {
		name      string
		endpoints []result.EndpointStat
		sale      *result.Sale
		want      string
	}{
		{"served", served, sale, ""},
		{"every pay refused", []result.EndpointStat{{Endpoint: "POST pay", Outcome: "overloaded", Count: 13}}, sale, "POST pay (13 asked)"},
		{"a sale that accepted nothing", served, &result.Sale{Counts: map[result.Outcome]int{result.Overloaded: 70}}, "sale phone (70 buys"},
	}
	if c := checkServed(&result.Replay{PressureTest: true, Endpoints: tests[1].endpoints}); !c.OK || !c.Skipped {
		t.Fatalf("a pressure test refused whole: %+v, want skipped (it yields to real buyers)", c)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &result.Replay{Endpoints: tt.endpoints, Activities: []result.ActivityStat{{Key: "phone"}},
				Sales: map[string]*result.Sale{"phone": tt.sale}}
			c := checkServed(res)
			expectCheck(t, "checkServed", c, tt.want)
		})
	}
}

// A coupon is one use: two orders that hold it at once fail the coupons
// check, and an order that gave it back (cancelled, expired, refunded in
// full) holds it no more.
func TestAuditCouponHeldTwice(t *testing.T) {
	withCoupon := func(id, status string) api.Order {
		return api.Order{OrderID: id, Status: status, CouponID: "c1", Promotions: []api.Promotion{{Kind: "COUPON", ID: "c1"}}}
	}
	res := &result.Replay{Trails: map[string]*result.Trail{"1": {Coupon: "c1"}, "2": {Coupon: "c1"}}}
	for _, tt := range []struct {
		second string
		ok     bool
	}{{"PENDING_PAYMENT", false}, {"PAID", false}, {"CANCELLED", true}, {"EXPIRED", true}, {"REFUNDED", true}} {
		orders := map[string]api.Order{"1": withCoupon("1", "PAID"), "2": withCoupon("2", tt.second)}
		if c := checkCoupons(res, orders); c.OK != tt.ok {
			t.Errorf("the coupon on a PAID order and a %s one: %v (%s), want %v", tt.second, c.OK, c.Detail, tt.ok)
		}
	}
}

// A stranger is refused: any of their requests served, answered other
// than FORBIDDEN (a CONFLICT tells them the order's state) or an order
// they tried that ended cancelled or refunded without its buyer asking
// fails the check; answers that say nothing (429, 503, none) pass it.
// The stranger's FORBIDDEN answers do not fail the served check.
func TestAuditStrangers(t *testing.T) {
	stranger := func(endpoint, outcome string, n int64) result.EndpointStat {
		return result.EndpointStat{Endpoint: result.StrangerEndpoint(endpoint), Outcome: outcome, Count: n}
	}
	refused := []result.EndpointStat{stranger("GET order", "forbidden", 3), stranger("POST cancel", "forbidden", 3),
		stranger("POST pay", "unavailable", 1), stranger("POST refund", "errors", 1)}
	visited := map[string]*result.Trail{"1": {Visited: true}, "2": {Visited: true, CancelSent: true, RefundSent: true}}
	left := map[string]api.Order{"1": {OrderID: "1", Status: "EXPIRED"}, "2": {OrderID: "2", Status: "CANCELLED"}}
	tests := []struct {
		name      string
		endpoints []result.EndpointStat
		trails    map[string]*result.Trail
		orders    map[string]api.Order
		want      string
	}{
		{"refused", refused, visited, left, ""},
		{"a read served", append(slices.Clone(refused), stranger("GET order", "ok", 1)), visited, left, "stranger: GET order answered ok"},
		{"a refund told the order's state", append(slices.Clone(refused), stranger("POST refund", "conflict", 2)), visited, left, "answered conflict 2 times"},
		{"a 500", append(slices.Clone(refused), stranger("POST cancel", "internal", 1)), visited, left, "answered internal"},
		{"cancelled by the stranger", refused, visited, map[string]api.Order{"1": {OrderID: "1", Status: "CANCELLED"}}, "order 1 is CANCELLED"},
		{"refunded by the stranger", refused, visited, map[string]api.Order{"1": {OrderID: "1", Status: "PARTIALLY_REFUNDED", Refunded: 500}}, "order 1 had 500 cents refunded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checkStrangers(&result.Replay{Endpoints: tt.endpoints, Trails: tt.trails}, tt.orders)
			expectCheck(t, "checkStrangers", c, tt.want)
		})
	}
	if c := checkStrangers(&result.Replay{Trails: map[string]*result.Trail{"1": {}}}, left); !c.OK || !c.Skipped {
		t.Errorf("no order visited: %+v, want skipped", c)
	}
	served := append(slices.Clone(refused), result.EndpointStat{Endpoint: "GET order", Outcome: "ok", Count: 1})
	if c := checkServed(&result.Replay{Endpoints: served}); !c.OK {
		t.Errorf("checkServed with the strangers' refusals: %s, want them left out", c.Detail)
	}
}

// A refund answered 200 must be on its order: an order that shows less
// refunded than its buyer was answered fails the check.
func TestAuditRefundsApplied(t *testing.T) {
	res := &result.Replay{Trails: map[string]*result.Trail{"1": {Refund: 935}, "2": {}}}
	for _, tt := range []struct {
		name     string
		refunded int64
		want     string
	}{
		{"applied", 935, ""},
		{"never recorded", 0, "order 1 was answered a refund of 935 cents and shows 0 refunded"},
		{"short by a cent", 934, "shows 934 refunded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := checkRefundsApplied(res, map[string]api.Order{"1": {OrderID: "1", Status: "PARTIALLY_REFUNDED", Refunded: tt.refunded}, "2": {OrderID: "2", Status: "PAID"}})
			expectCheck(t, "checkRefundsApplied", c, tt.want)
		})
	}
	if c := checkRefundsApplied(&result.Replay{Trails: map[string]*result.Trail{"2": {}}}, nil); !c.OK || !c.Skipped {
		t.Errorf("no refund answered: %+v, want skipped", c)
	}
}

// A payment its buyer paid at the channel must settle: SUCCEEDED, or
// REFUNDED when the order did not want it; left PAYING (money taken for
// an order that may expire) or FAILED (money never given back) fails.
func TestAuditPaidAtTheChannelSettles(t *testing.T) {
	res := &result.Replay{Trails: map[string]*result.Trail{"1": {Confirmed: []string{"p1", "p2"}}, "2": {Confirmed: []string{"p9"}}}}
	for _, tt := range []struct {
		name     string
		statuses [2]string
		want     string
	}{
		{"settled", [2]string{"SUCCEEDED", "REFUNDED"}, ""},
		{"left paying", [2]string{"SUCCEEDED", "PAYING"}, "payment p2 of order 1 is PAYING"},
		{"failed", [2]string{"FAILED", "REFUNDED"}, "payment p1 of order 1 is FAILED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &Books{Payments: map[string][]PaymentRecord{"1": {{PaymentID: "p1", Status: tt.statuses[0]}, {PaymentID: "p2", Status: tt.statuses[1]}}}}
			c := checkPaidSettled(res, b)
			if c.OK != (tt.want == "") || !strings.Contains(c.Detail, tt.want) || !strings.Contains(c.Detail, "2 paid at the channel") {
				t.Fatalf("checkPaidSettled = %v (%s), want failing on %q, 2 paid (p9 not read)", c.OK, c.Detail, tt.want)
			}
		})
	}
	if c := checkPaidSettled(&result.Replay{Trails: map[string]*result.Trail{"1": {}}}, &Books{}); !c.OK || !c.Skipped {
		t.Errorf("nothing paid at a channel: %+v, want skipped", c)
	}
}

// The products' stock must be what their regular orders leave: more is
// stock back that an order holds (sold twice), less beyond what the
// unanswered checkouts may hold is stock stranded.
func TestAuditRegularStock(t *testing.T) {
	var stock atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/products/7" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(api.Product{SKUID: "7", Stock: stock.Load()})
	}))
	defer srv.Close()
	gateway := client.New(srv.URL, 4)
	res := &result.Replay{Regular: map[string]int64{"1": 11, "2": 12, "3": 13, "4": 14},
		RegularStock: result.RegularStock{Start: map[string]int64{"7": 100}, Unknown: map[string]int64{"7": 3}}}
	orders := map[string]api.Order{
		"1": {OrderID: "1", Kind: "REGULAR", Status: "PAID", Lines: []api.OrderLine{{SKUID: "7", Quantity: 3}, {SKUID: "8", Quantity: 5}}},
		"2": {OrderID: "2", Kind: "REGULAR", Status: "PENDING_PAYMENT", Lines: []api.OrderLine{{SKUID: "7", Quantity: 1}}},
		"3": {OrderID: "3", Kind: "REGULAR", Status: "EXPIRED", Lines: []api.OrderLine{{SKUID: "7", Quantity: 4}}},
		"4": {OrderID: "4", Kind: "REGULAR", Status: "REFUNDED", Lines: []api.OrderLine{{SKUID: "7", Quantity: 2}}},
		"5": {OrderID: "5", Kind: "SECKILL", Status: "PAID", Lines: []api.OrderLine{{SKUID: "7", Quantity: 1}}},
		// Told 503, stored all the same: it holds its unit, and that unit
		// is no longer one an unanswered checkout may hold.
		"6": {OrderID: "6", Kind: "REGULAR", Status: "PAID", Lines: []api.OrderLine{{SKUID: "7", Quantity: 1}}},
	}
	same := func() (map[string]api.Order, error) { return orders, nil }
	for _, tt := range []struct {
		name  string
		stock int64
		want  string
	}{
		{"conserved", 93, ""},
		{"two unanswered checkouts hold theirs", 91, ""},
		{"an expired order gave its units back twice", 97, "4 units back that orders hold"},
		{"a refund gave its units back", 95, "2 units back that orders hold"},
		{"a cancel kept its units", 87, "6 units stranded, 4 more than the unanswered checkouts may hold"},
		{"three stranded where two may be", 90, "3 units stranded, 1 more than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stock.Store(tt.stock)
			c, err := checkRegularStock(context.Background(), gateway, res, orders, same, 0)
			if err != nil {
				t.Fatal(err)
			}
			expectCheck(t, "checkRegularStock", c, tt.want)
		})
	}
	if c, err := checkRegularStock(context.Background(), gateway, &result.Replay{}, orders, same, 0); err != nil || !c.OK || !c.Skipped {
		t.Errorf("no products: %+v %v, want skipped", c, err)
	}

	// An order that expires while the audit runs gives its unit back:
	// read again, the orders account for it.
	later := maps.Clone(orders)
	o := later["2"]
	o.Status = "EXPIRED"
	later["2"] = o
	stock.Store(94)
	c, err := checkRegularStock(context.Background(), gateway, res, orders, func() (map[string]api.Order, error) { return later, nil }, 5*time.Second)
	if err != nil || !c.OK {
		t.Errorf("an order expired during the audit: %+v %v, want passing once the orders are read again", c, err)
	}

	// A product the gateway cannot answer for fails the check, not the
	// audit.
	c, err = checkRegularStock(context.Background(), gateway, &result.Replay{RegularStock: result.RegularStock{Start: map[string]int64{"404": 1}}}, orders, same, 0)
	if err != nil || c.OK || !strings.Contains(c.Detail, "product 404 unread") {
		t.Errorf("an unreadable product: %+v %v, want the check failed naming it", c, err)
	}
}

// Coupons must agree with their orders: an order holding a coupon finds
// it USED for itself, a USED coupon is held by its order, and no
// template issues more than its total or a buyer more than one.
func TestAuditCouponsConserved(t *testing.T) {
	var mu sync.Mutex
	lists := map[string][]api.Coupon{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(api.Coupons{Coupons: lists[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]})
	}))
	defer srv.Close()
	gateway := client.New(srv.URL, 4)
	res := &result.Replay{UsersList: []client.User{{ID: 1, Token: "a"}, {ID: 2, Token: "b"}},
		Coupons: result.CouponStats{Issued: map[string]int64{"T": 2}, Claimed: 2, Unanswered: map[string]bool{"c9": true}}}
	orders := map[string]api.Order{
		"10": {OrderID: "10", UserID: "1", Kind: "REGULAR", Status: "PAID", CouponID: "c1"},
		"11": {OrderID: "11", UserID: "2", Kind: "REGULAR", Status: "CANCELLED", CouponID: "c2"},
	}
	same := func() (map[string]api.Order, error) { return orders, nil }
	coupon := func(id, status, order string) api.Coupon {
		return api.Coupon{CouponID: id, TemplateID: "T", Status: status, OrderID: order}
	}
	for _, tt := range []struct {
		name string
		a, b []api.Coupon
		want string
	}{
		{"conserved", []api.Coupon{coupon("c1", "USED", "10")}, []api.Coupon{coupon("c2", "AVAILABLE", "")}, ""},
		{"a held coupon left available", []api.Coupon{coupon("c1", "AVAILABLE", "")}, []api.Coupon{coupon("c2", "AVAILABLE", "")}, "order 10 (PAID) holds coupon c1, which is AVAILABLE"},
		{"a cancel kept its coupon", []api.Coupon{coupon("c1", "USED", "10")}, []api.Coupon{coupon("c2", "USED", "11")}, "coupon c2 is USED for order 11, which does not hold it (CANCELLED)"},
		{"over-issued", []api.Coupon{coupon("c1", "USED", "10")}, []api.Coupon{coupon("c2", "AVAILABLE", ""), coupon("c3", "AVAILABLE", "")}, "template T issued 3 coupons, its total is 2"},
		{"used by an order never stored", []api.Coupon{coupon("c1", "USED", "10")}, []api.Coupon{coupon("c2", "USED", "99")}, "coupon c2 is USED for order 99, which does not hold it (no such order)"},
		// c9's checkout was answered 503: its order may never have been
		// stored, and the stray sweep gives the coupon back later.
		{"used by the unanswered checkout's order", []api.Coupon{coupon("c1", "USED", "10")}, []api.Coupon{coupon("c9", "USED", "99")}, ""},
		{"another buyer's coupon", nil, []api.Coupon{coupon("c1", "USED", "10"), coupon("c2", "AVAILABLE", "")}, "order 10 of buyer 1 holds coupon c1 of buyer 2"},
		{"a coupon lost", []api.Coupon{coupon("c1", "USED", "10")}, nil, "2 coupons claimed, 1 in their buyers' lists"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			lists["a"], lists["b"] = tt.a, tt.b
			mu.Unlock()
			c, err := checkCouponsConserved(context.Background(), gateway, res, orders, same, 0)
			if err != nil {
				t.Fatal(err)
			}
			expectCheck(t, "checkCouponsConserved", c, tt.want)
		})
	}
	if c, err := checkCouponsConserved(context.Background(), gateway, &result.Replay{}, orders, same, 0); err != nil || !c.OK || !c.Skipped {
		t.Errorf("no templates: %+v %v, want skipped", c, err)
	}
	// A buyer whose coupons cannot be read fails the check, not the audit.
	broken := &result.Replay{UsersList: []client.User{{ID: 3, Token: "c"}}, Coupons: res.Coupons}
	srv.Close()
	if c, err := checkCouponsConserved(context.Background(), gateway, broken, orders, same, 0); err != nil || c.OK || !strings.Contains(c.Detail, "coupons unread") {
		t.Errorf("unreadable coupons: %+v %v, want the check failed", c, err)
	}
}

// expectCheck fails the test unless c passed (want "") or failed with
// want in its detail; name is the check's function.
func expectCheck(t *testing.T, name string, c result.Check, want string) {
	t.Helper()
	if c.OK != (want == "") || !strings.Contains(c.Detail, want) {
		t.Fatalf("%s = %v (%s), want failing on %q", name, c.OK, c.Detail, want)
	}
}
