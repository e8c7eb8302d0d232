package channelsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/services/channelsim"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
)

// merchant records the notifications posted to it, answering each with
// status (200 unless set) and a body, as the gateway does.
type merchant struct {
	mu     sync.Mutex
	got    []wire.Notification
	bad    int // deliveries whose signature did not verify
	status int
	calls  int
	conns  atomic.Int64 // connections the simulator opened to it
}

func (m *merchant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.status != 0 {
		w.WriteHeader(m.status)
		return
	}
	if !wire.Verify([]byte("alipay-dev-secret"), body, r.Header.Get(wire.SignatureHeader)) || r.URL.Path != "/cb/alipay" {
		m.bad++
	}
	var n wire.Notification
	_ = json.Unmarshal(body, &n)
	m.got = append(m.got, n)
	_, _ = io.WriteString(w, `{"result":"accepted"}`)
}

func (m *merchant) notifications() ([]wire.Notification, int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]wire.Notification(nil), m.got...), m.bad, m.calls
}

type fixture struct {
	sim   *channelsim.Simulator
	url   string
	clock *clock.Manual
	merch *merchant
}

// setStatus makes the merchant answer status (0: 200) from now on.
func (m *merchant) setStatus(status int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status = status
}

// MustSimulator serves a simulator of the default channels notifying a
// recording merchant, until the test ends; adjust changes its
// configuration.
func MustSimulator(tb testing.TB, adjust ...func(*channelsim.Config)) *fixture {
	tb.Helper()
	m := &merchant{}
	ms := httptest.NewUnstartedServer(m)
	ms.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			m.conns.Add(1)
		}
	}
	ms.Start()
	tb.Cleanup(ms.Close)
	clk := clock.NewManual(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	cfg := channelsim.Config{
		NotifyURL: ms.URL + "/cb", Clock: clk, Seed: 42, NotifyBackoff: time.Millisecond, NotifyAttempts: 3,
	}
	for _, f := range adjust {
		f(&cfg)
	}
	sim, err := channelsim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Serve(ctx, lis) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return &fixture{sim: sim, url: "http://" + lis.Addr().String(), clock: clk, merch: m}
}

// call sends body (JSON unless nil) and decodes the answer into out,
// returning the status.
func (f *fixture) call(tb testing.TB, method, path string, body, out any) int {
	tb.Helper()
	return f.callAs(tb, false, method, path, body, out)
}

func (f *fixture) mustCreate(tb testing.TB, ref string, amount int64) wire.Trade {
	tb.Helper()
	var t wire.Trade
	if st := f.call(tb, "POST", "/alipay/payments", wire.CreatePayment{MerchantRef: ref, Amount: amount}, &t); st != 200 {
		tb.Fatalf("create: status %d", st)
	}
	return t
}

// readStatement reads the whole statement of alipay, marked or not, page
// by page with the query given, following the cursors, and returns its
// trades and the number of pages.
func (f *fixture) readStatement(tb testing.TB, marked bool, query string) ([]wire.Trade, int) {
	tb.Helper()
	var trades []wire.Trade
	for pages, cursor := 1, ""; ; pages++ {
		var st wire.Statement
		path := "/alipay/statement?" + query
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if code := f.callAs(tb, marked, "GET", path, nil, &st); code != http.StatusOK {
			tb.Fatalf("GET %s: status %d", path, code)
		}
		trades = append(trades, st.Trades...)
		if st.Next == "" {
			return trades, pages
		}
		if pages > len(trades)+1 {
			tb.Fatal("the cursor never ends")
		}
		cursor = st.Next
	}
}

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestPayNotifiesSigned(t *testing.T) {
	f := MustSimulator(t)
	tr := f.mustCreate(t, "p1", 990)
	if again := f.mustCreate(t, "p1", 990); again.TradeNo != tr.TradeNo {
		t.Fatalf("second create with one ref made trade %s, want %s", again.TradeNo, tr.TradeNo)
	}
	var paid wire.Trade
	if st := f.call(t, "POST", tr.PayURL[len(f.url):], nil, &paid); st != 200 || paid.Status != wire.TradePaid {
		t.Fatalf("wallet pay: status %d, trade %+v", st, paid)
	}
	waitFor(t, "the notification", func() bool { n, _, _ := f.merch.notifications(); return len(n) == 1 })
	got, bad, _ := f.merch.notifications()
	if bad != 0 {
		t.Errorf("%d notifications had a bad signature or path", bad)
	}
	if n := got[0]; n.TradeNo != tr.TradeNo || n.MerchantRef != "p1" || n.Amount != 990 || n.Status != wire.TradePaid || !n.PaidAt.Equal(f.clock.Now()) {
		t.Errorf("notification = %+v", n)
	}
	var q wire.Trade
	if st := f.call(t, "GET", "/alipay/payments?merchant_ref=p1", nil, &q); st != 200 || q.Status != wire.TradePaid {
		t.Errorf("query: status %d, trade %+v", st, q)
	}
}

// Notifications reuse their connections to the merchant: the answer's
// body is read before it is closed, without which the client closes the
// connection, and the gateway answered every notification of a
// Double-11 replay on a connection of its own (about 3,700 a run).
func TestNotificationsReuseTheirConnections(t *testing.T) {
	f := MustSimulator(t)
	const payments = 20
	for i := range payments {
		tr := f.mustCreate(t, fmt.Sprintf("reuse-%d", i), 100)
		if st := f.call(t, "POST", tr.PayURL[len(f.url):], nil, nil); st != 200 {
			t.Fatalf("wallet pay: status %d", st)
		}
		// One at a time, so each notification could reuse the last one's
		// connection.
		waitFor(t, "the notification", func() bool { n, _, _ := f.merch.notifications(); return len(n) == i+1 })
	}
	if n := f.merch.conns.Load(); n > 2 {
		t.Errorf("%d notifications posted one after the other opened %d connections, want 1 (or 2)", payments, n)
	}
}

func TestNotificationFaults(t *testing.T) {
	tests := []struct {
		name       string
		behaviour  channelsim.Behaviour
		status     int // the merchant's answer
		wantCalls  int
		wantStats  channelsim.Stats
		wantGotten int
	}{
		{"duplicated", channelsim.Behaviour{NotifyDuplicateRate: 1}, 0, 2,
			channelsim.Stats{Notified: 1, Delivered: 2, Duplicated: 1}, 2},
		{"delayed", channelsim.Behaviour{NotifyDelayMS: 20}, 0, 1,
			channelsim.Stats{Notified: 1, Delivered: 1}, 1},
		{"dropped", channelsim.Behaviour{NotifyDropRate: 1}, 0, 0,
			channelsim.Stats{Notified: 1, Dropped: 1}, 0},
		{"merchant failing: retried up to the attempts", channelsim.Behaviour{}, 500, 3,
			channelsim.Stats{Notified: 1, Failed: 3}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := MustSimulator(t)
			f.merch.status = tt.status
			if err := f.sim.SetBehaviour("alipay", tt.behaviour); err != nil {
				t.Fatal(err)
			}
			tr := f.mustCreate(t, "p", 100)
			if _, err := f.sim.Pay("alipay", tr.TradeNo); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the deliveries", func() bool {
				s := f.sim.Stats("alipay")
				return s.Delivered+s.Failed+s.Dropped >= max(tt.wantCalls, 1)
			})
			f.sim.Close()
			if got := f.sim.Stats("alipay"); got != tt.wantStats {
				t.Errorf("stats = %+v, want %+v", got, tt.wantStats)
			}
			got, _, calls := f.merch.notifications()
			if calls != tt.wantCalls || len(got) != tt.wantGotten {
				t.Errorf("merchant got %d calls, %d notifications; want %d, %d", calls, len(got), tt.wantCalls, tt.wantGotten)
			}
		})
	}
}

func TestRefundIdempotentAndStatement(t *testing.T) {
	f := MustSimulator(t)
	tr := f.mustCreate(t, "p", 500)
	var ref wire.Refund
	if st := f.call(t, "POST", "/alipay/refunds", wire.RefundRequest{TradeNo: tr.TradeNo, RefundRef: "r1", Amount: 500}, &ref); st != http.StatusConflict {
		t.Fatalf("refund of an unpaid trade: status %d, want 409", st)
	}
	if _, err := f.sim.Pay("alipay", tr.TradeNo); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if st := f.call(t, "POST", "/alipay/refunds", wire.RefundRequest{TradeNo: tr.TradeNo, RefundRef: "r1", Amount: 500}, &ref); st != 200 {
			t.Fatalf("refund: status %d", st)
		}
	}
	if st := f.call(t, "POST", "/alipay/refunds", wire.RefundRequest{TradeNo: tr.TradeNo, RefundRef: "r2", Amount: 500}, nil); st != http.StatusConflict {
		t.Errorf("a second refund under another ref: status %d, want 409", st)
	}
	f.mustCreate(t, "unpaid", 1)
	var st wire.Statement
	f.call(t, "GET", "/alipay/statement", nil, &st)
	if len(st.Trades) != 1 || st.Trades[0].Status != wire.TradeRefunded || st.Trades[0].Refunded != 500 ||
		len(st.Trades[0].Refunds) != 1 || st.Trades[0].Refunds[0] != ref {
		t.Errorf("statement = %+v, want the one refunded trade with refund %+v", st, ref)
	}
}

func TestPartialRefunds(t *testing.T) {
	f := MustSimulator(t)
	tr := f.mustCreate(t, "p", 1000)
	if _, err := f.sim.Pay("alipay", tr.TradeNo); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name         string
		ref          string
		amount       int64
		wantStatus   int
		wantRefunded int64
		wantTrade    wire.TradeStatus
	}{
		{"first part", "a", 300, http.StatusOK, 300, wire.TradePaid},
		{"repeat of the first part", "a", 300, http.StatusOK, 300, wire.TradePaid},
		{"same ref, another amount", "a", 301, http.StatusConflict, 300, wire.TradePaid},
		{"zero", "z", 0, http.StatusBadRequest, 300, wire.TradePaid},
		{"more than is left", "b", 701, http.StatusConflict, 300, wire.TradePaid},
		{"second part", "b", 650, http.StatusOK, 950, wire.TradePaid},
		{"the rest", "c", 50, http.StatusOK, 1000, wire.TradeRefunded},
		{"repeat after the trade is refunded", "b", 650, http.StatusOK, 1000, wire.TradeRefunded},
		{"a cent more", "d", 1, http.StatusConflict, 1000, wire.TradeRefunded},
	}
	for _, s := range steps {
		if got := f.call(t, "POST", "/alipay/refunds", wire.RefundRequest{TradeNo: tr.TradeNo, RefundRef: s.ref, Amount: s.amount}, nil); got != s.wantStatus {
			t.Errorf("%s: status %d, want %d", s.name, got, s.wantStatus)
		}
		got, _ := f.sim.Trade("alipay", "p")
		if got.Refunded != s.wantRefunded || got.Status != s.wantTrade {
			t.Errorf("%s: trade %s refunded %d, want %s refunded %d", s.name, got.Status, got.Refunded, s.wantTrade, s.wantRefunded)
		}
	}
	var st wire.Statement
	f.call(t, "GET", "/alipay/statement", nil, &st)
	var sum int64
	for _, r := range st.Trades[0].Refunds {
		sum += r.Amount
	}
	if len(st.Trades[0].Refunds) != 3 || sum != 1000 {
		t.Errorf("statement refunds %+v, want three adding up to 1000", st.Trades[0].Refunds)
	}
}

func TestConcurrentRefundsNeverExceedTheTrade(t *testing.T) {
	f := MustSimulator(t)
	tr := f.mustCreate(t, "p", 1000)
	if _, err := f.sim.Pay("alipay", tr.TradeNo); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			b, _ := json.Marshal(wire.RefundRequest{TradeNo: tr.TradeNo, RefundRef: strconv.Itoa(i), Amount: 70})
			resp, err := http.Post(f.url+"/alipay/refunds", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	got, _ := f.sim.Trade("alipay", "p")
	if got.Refunded != 980 || len(got.Refunds) != 14 {
		t.Errorf("trade refunded %d in %d refunds, want 980 in 14 (fourteen of 70 fit in 1000)", got.Refunded, len(got.Refunds))
	}
}

func TestOutagesAndFailures(t *testing.T) {
	f := MustSimulator(t)
	now := f.clock.Now()
	create := func() int {
		return f.call(t, "POST", "/alipay/payments", wire.CreatePayment{MerchantRef: "x", Amount: 1}, nil)
	}
	// Through the admin endpoint, as an operator or the demo would.
	b := channelsim.Behaviour{Outages: []channelsim.Window{{From: now.Add(time.Minute), Until: now.Add(2 * time.Minute)}}}
	if st := f.call(t, "PUT", "/admin/channels/alipay", b, nil); st != 200 {
		t.Fatalf("admin put: status %d", st)
	}
	steps := []struct {
		at   time.Duration
		want int
	}{{0, 200}, {time.Minute, 503}, {90 * time.Second, 503}, {2 * time.Minute, 200}}
	for _, s := range steps {
		f.clock.Set(now.Add(s.at))
		if got := create(); got != s.want {
			t.Errorf("at +%s: status %d, want %d", s.at, got, s.want)
		}
	}
	if st := f.call(t, "PUT", "/admin/channels/alipay", channelsim.Behaviour{FailureRate: 2}, nil); st != 400 {
		t.Errorf("a rate over 1: status %d, want 400", st)
	}
	if st := f.call(t, "PUT", "/admin/channels/nope", channelsim.Behaviour{}, nil); st != 404 {
		t.Errorf("unknown channel: status %d, want 404", st)
	}
	f.call(t, "PUT", "/admin/channels/alipay", channelsim.Behaviour{FailureRate: 0.5}, nil)
	failed := 0
	for range 200 {
		if create() == 503 {
			failed++
		}
	}
	if failed < 60 || failed > 140 {
		t.Errorf("%d of 200 calls failed at a failure rate of 0.5", failed)
	}
}

// TestStatementPages: a statement is read page by page from a time on,
// in payment order, and a page's cursor leads to exactly the trades after
// it, however many trades share one instant.
func TestStatementPages(t *testing.T) {
	f := MustSimulator(t)
	start := f.clock.Now()
	var want []string
	for i := range 7 {
		tr := f.mustCreate(t, fmt.Sprintf("p%d", i), 100)
		if _, err := f.sim.Pay("alipay", tr.TradeNo); err != nil {
			t.Fatal(err)
		}
		if i >= 2 {
			want = append(want, tr.TradeNo)
		}
		if i%2 == 1 { // pairs of trades paid at one instant
			f.clock.Advance(time.Second)
		}
	}
	f.mustCreate(t, "unpaid", 1)
	since := start.Add(time.Second).Format(time.RFC3339Nano) // p0 and p1 were paid before
	var got []string
	read, pages := f.readStatement(t, false, "limit=2&since="+url.QueryEscape(since))
	for _, tr := range read {
		got = append(got, tr.TradeNo)
	}
	var whole wire.Statement
	f.call(t, "GET", "/alipay/statement?since="+url.QueryEscape(since), nil, &whole)
	var order []string
	for i, tr := range whole.Trades {
		order = append(order, tr.TradeNo)
		if i > 0 && tr.PaidAt.Before(*whole.Trades[i-1].PaidAt) {
			t.Errorf("statement not in payment order: %v", whole.Trades)
		}
	}
	if whole.Next != "" || !slices.Equal(slices.Sorted(slices.Values(order)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("one-page statement since the second instant = %v (next %q), want %v", order, whole.Next, want)
	}
	if !slices.Equal(got, order) || pages != 3 {
		t.Errorf("statement in pages of 2 = %v in %d pages, want %v in 3", got, pages, order)
	}
	for _, bad := range []string{"?since=yesterday", "?cursor=nonsense", "?cursor=12.", "?limit=0", "?limit=1001"} {
		if code := f.call(t, "GET", "/alipay/statement"+bad, nil, nil); code != http.StatusBadRequest {
			t.Errorf("GET statement%s: status %d, want 400", bad, code)
		}
	}
}

// TestStatementOverManyTrades: a statement read page by page over
// hundreds of trades, paid in another order than they were opened, many
// at one instant and some on a clock set back, lists each paid trade
// exactly once, refunded ones included, in payment order and then trade
// number order, and neither the unpaid trades nor the marked ones.
func TestStatementOverManyTrades(t *testing.T) {
	f := MustSimulator(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	var opened []wire.Trade
	for i := range 400 {
		opened = append(opened, f.mustCreate(t, fmt.Sprintf("m%d", i), 100))
	}
	var marked wire.Trade
	f.callAs(t, true, "POST", "/alipay/payments", wire.CreatePayment{MerchantRef: "m0", Amount: 100}, &marked)
	if st := f.callAs(t, true, "POST", "/alipay/wallet/"+marked.TradeNo, nil, nil); st != http.StatusOK {
		t.Fatalf("marked pay: status %d", st)
	}
	start := f.clock.Now()
	var want []wire.Trade
	refunded := map[string]bool{}
	for _, i := range rnd.Perm(len(opened)) {
		n := rnd.IntN(10)
		switch {
		case n == 0: // never paid
			continue
		case n == 1:
			f.clock.Advance(-time.Duration(rnd.IntN(3000)) * time.Millisecond)
		case n < 5:
			f.clock.Advance(time.Duration(rnd.IntN(1000)) * time.Millisecond)
		} // otherwise paid at the instant of the trade before
		paid, err := f.sim.Pay("alipay", opened[i].TradeNo)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, paid)
		if n == 2 {
			if st := f.call(t, "POST", "/alipay/refunds", wire.RefundRequest{TradeNo: paid.TradeNo, RefundRef: "r", Amount: 100}, nil); st != http.StatusOK {
				t.Fatalf("refund: status %d", st)
			}
			refunded[paid.TradeNo] = true
		}
	}
	slices.SortFunc(want, func(a, b wire.Trade) int {
		if c := a.PaidAt.Compare(*b.PaidAt); c != 0 {
			return c
		}
		return strings.Compare(a.TradeNo, b.TradeNo)
	})
	since := start.Add(2 * time.Second)
	tests := []struct {
		name  string
		query string
		want  []wire.Trade
	}{
		{"whole", "limit=7", want},
		{"since an instant", "limit=7&since=" + url.QueryEscape(since.Format(time.RFC3339Nano)),
			slices.DeleteFunc(slices.Clone(want), func(tr wire.Trade) bool { return tr.PaidAt.Before(since) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := f.readStatement(t, false, tt.query)
			if wantPages := max(1, (len(tt.want)+6)/7); pages != wantPages {
				t.Errorf("%d pages, want %d", pages, wantPages)
			}
			if !slices.Equal(tradeNos(got), tradeNos(tt.want)) {
				t.Fatalf("statement = %v,\nwant %v", tradeNos(got), tradeNos(tt.want))
			}
			for _, tr := range got {
				if wantStatus := map[bool]wire.TradeStatus{false: wire.TradePaid, true: wire.TradeRefunded}[refunded[tr.TradeNo]]; tr.Status != wantStatus {
					t.Errorf("trade %s is %s on the statement, want %s", tr.TradeNo, tr.Status, wantStatus)
				}
			}
		})
	}
	if got, _ := f.readStatement(t, true, "limit=7"); !slices.Equal(tradeNos(got), []string{marked.TradeNo}) {
		t.Errorf("the marked statement = %v, want only %s", tradeNos(got), marked.TradeNo)
	}
}

func tradeNos(trades []wire.Trade) []string {
	out := make([]string, len(trades))
	for i, t := range trades {
		out[i] = t.TradeNo
	}
	return out
}

// TestRetention: a channel forgets a paid trade the default retention
// (two days) after its payment and an unpaid one as long after its
// creation, real and marked alike: gone from query, wallet, statement
// and the channel's memory, while a trade paid since stays.
func TestRetention(t *testing.T) {
	f := MustSimulator(t)
	start := f.clock.Now()
	mustPay := func(tr wire.Trade) {
		t.Helper()
		if _, err := f.sim.Pay("alipay", tr.TradeNo); err != nil {
			t.Fatal(err)
		}
	}
	oldPaid, oldUnpaid, late := f.mustCreate(t, "old-paid", 100), f.mustCreate(t, "old-unpaid", 100), f.mustCreate(t, "late", 100)
	mustPay(oldPaid)
	var marked wire.Trade
	f.callAs(t, true, "POST", "/alipay/payments", wire.CreatePayment{MerchantRef: "old-paid", Amount: 100}, &marked)
	f.callAs(t, true, "POST", "/alipay/wallet/"+marked.TradeNo, nil, nil)
	f.clock.Advance(30 * time.Hour)
	mustPay(late) // opened with the old ones, paid 30 hours later
	recent := f.mustCreate(t, "recent", 100)
	mustPay(recent)

	type held struct{ trades, refs, paid int }
	steps := []struct {
		at         time.Duration
		wantKnown  []string // merchant refs the query finds
		wantStmt   []string // trade numbers of the statement
		wantReal   held
		wantMarked held
	}{
		{48*time.Hour - time.Second, []string{"old-paid", "old-unpaid", "late", "recent"},
			[]string{oldPaid.TradeNo, late.TradeNo, recent.TradeNo}, held{4, 4, 3}, held{1, 1, 1}},
		{48 * time.Hour, []string{"late", "recent"}, []string{late.TradeNo, recent.TradeNo}, held{2, 2, 2}, held{}},
		{78 * time.Hour, nil, nil, held{}, held{}},
	}
	for _, s := range steps {
		f.clock.Set(start.Add(s.at))
		for _, ref := range []string{"old-paid", "old-unpaid", "late", "recent"} {
			want := slices.Contains(s.wantKnown, ref)
			if code := f.call(t, "GET", "/alipay/payments?merchant_ref="+ref, nil, nil); (code == http.StatusOK) != want {
				t.Errorf("at +%s: query of %s: status %d, want it known: %t", s.at, ref, code, want)
			}
		}
		got, _ := f.readStatement(t, false, "limit=2")
		if !slices.Equal(tradeNos(got), s.wantStmt) {
			t.Errorf("at +%s: statement %v, want %v", s.at, tradeNos(got), s.wantStmt)
		}
		if got, _ := f.readStatement(t, true, "limit=2"); len(got) != s.wantMarked.paid {
			t.Errorf("at +%s: marked statement %v, want %d trades", s.at, tradeNos(got), s.wantMarked.paid)
		}
		for _, h := range []struct {
			marked bool
			want   held
		}{{false, s.wantReal}, {true, s.wantMarked}} {
			var got held
			got.trades, got.refs, got.paid = f.sim.Held("alipay", h.marked)
			if got != h.want {
				t.Errorf("at +%s: marked %t: holds %+v, want %+v", s.at, h.marked, got, h.want)
			}
		}
	}
	if code := f.call(t, "POST", "/alipay/wallet/"+oldUnpaid.TradeNo, nil, nil); code != http.StatusNotFound {
		t.Errorf("paying a forgotten trade: status %d, want 404", code)
	}
}

// TestNotifyQueueIsBounded: while the merchant's callback is down
// (answering 503), the notifications of many more paid trades than the
// queue holds do not pile up: the queue keeps its bound, waiting for
// their retries without a goroutine each, and the rest are given up and
// counted. A pressure test that filled its own share first takes none of
// the real one's. When the merchant is back, the queued ones are
// delivered.
func TestNotifyQueueIsBounded(t *testing.T) {
	const bound, trades = 20, 500
	f := MustSimulator(t, func(cfg *channelsim.Config) {
		// Fourteen attempts 1ms, 2ms, ... apart keep each notification
		// under way for 16 seconds, far longer than the paying takes.
		cfg.NotifyQueue, cfg.NotifyAttempts, cfg.NotifyBackoff = bound, 14, time.Millisecond
	})
	f.merch.setStatus(http.StatusServiceUnavailable)
	for i := range bound + 5 { // the marked share, full
		var tr wire.Trade
		f.callAs(t, true, "POST", "/alipay/payments", wire.CreatePayment{MerchantRef: fmt.Sprint("m", i), Amount: 100}, &tr)
		if code := f.callAs(t, true, "POST", "/alipay/wallet/"+tr.TradeNo, nil, nil); code != http.StatusOK {
			t.Fatalf("marked wallet payment: status %d", code)
		}
	}
	if got := f.sim.Pending(true); got != bound {
		t.Fatalf("%d marked notifications pending, want the bound, %d", got, bound)
	}
	var nos []string
	for i := range trades {
		nos = append(nos, f.mustCreate(t, fmt.Sprint("q", i), 100).TradeNo)
	}
	before := runtime.NumGoroutine()
	for _, no := range nos {
		if _, err := f.sim.Pay("alipay", no); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "retries", func() bool { return f.sim.Stats("alipay").Failed >= 3*bound })
	if got := f.sim.Pending(false); got != bound {
		t.Errorf("%d real notifications pending, want the bound, %d", got, bound)
	}
	// The workers' connections to the merchant and the merchant's
	// handlers come and go; one goroutine per notification would be
	// hundreds.
	if grown := runtime.NumGoroutine() - before; grown > 4*channelsim.NotifyWorkers+20 {
		t.Errorf("%d more goroutines with %d notifications made", grown, trades)
	}
	st := f.sim.Stats("alipay")
	if st.Notified != trades || st.Overflowed != trades-bound || st.Delivered != 0 {
		t.Errorf("while the merchant is down: stats %+v, want %d notified, %d overflowed, none delivered", st, trades, trades-bound)
	}

	f.merch.setStatus(0)
	waitFor(t, "the queued notifications", func() bool { return f.sim.Stats("alipay").Delivered == bound })
	waitFor(t, "an empty queue", func() bool { return f.sim.Pending(false)+f.sim.Pending(true) == 0 })
	got, _, _ := f.merch.notifications()
	var real []wire.Notification
	refs := map[string]bool{}
	for _, n := range got {
		if !n.PressureTest {
			real, refs[n.MerchantRef] = append(real, n), true
		}
	}
	if len(real) != bound || len(refs) != bound || len(got) != 2*bound {
		t.Errorf("the merchant got %d real notifications of %d trades and %d in all, want %d of as many and %d in all",
			len(real), len(refs), len(got), bound, 2*bound)
	}
	if st := f.sim.Stats("alipay"); st.Overflowed != trades-bound {
		t.Errorf("after the merchant came back: stats %+v, want %d overflowed", st, trades-bound)
	}
}
