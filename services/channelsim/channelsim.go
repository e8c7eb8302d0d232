// Package channelsim simulates external payment channels (alipay, wechat,
// unionpay, or any configured set) behind one HTTP server with the API of
// package wire: create a payment (which answers a pay URL), the buyer's
// confirmation in the "wallet", signed asynchronous notifications to the
// merchant that may arrive late, twice or never, query, refund and a
// statement for reconciliation. Each channel's latency, failure rate,
// outages and notification faults change at runtime through an admin
// endpoint, so the payment service can be tested against the failures real
// channels have. Times come from an injectable clock and faults from a
// seeded random source, so a test decides what happens.
package channelsim

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/telemetry"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
)

// Window is a span of time, on the simulator's clock, during which a
// channel is down.
type Window struct {
	From  time.Time `json:"from"`
	Until time.Time `json:"until"`
}

// Behaviour is how a channel misbehaves. The zero value is a perfect
// channel. Rates are probabilities in [0, 1].
type Behaviour struct {
	// LatencyMS delays every merchant and wallet call.
	LatencyMS int64 `json:"latency_ms"`
	// FailureRate is the share of calls answered 503.
	FailureRate float64 `json:"failure_rate"`
	// Down answers every call 503 until cleared.
	Down bool `json:"down"`
	// Outages answer every call 503 while the clock is inside one.
	Outages []Window `json:"outages,omitempty"`
	// NotifyDelayMS delays each notification's first delivery.
	NotifyDelayMS int64 `json:"notify_delay_ms"`
	// NotifyDropRate is the share of notifications never sent at all.
	NotifyDropRate float64 `json:"notify_drop_rate"`
	// NotifyDuplicateRate is the share of notifications delivered twice.
	NotifyDuplicateRate float64 `json:"notify_duplicate_rate"`
}

func (b Behaviour) validate() error {
	rates := []float64{b.FailureRate, b.NotifyDropRate, b.NotifyDuplicateRate}
	if slices.ContainsFunc(rates, func(r float64) bool { return r < 0 || r > 1 }) {
		return errors.New("rates must be within [0, 1]")
	}
	if b.LatencyMS < 0 || b.NotifyDelayMS < 0 {
		return errors.New("delays must not be negative")
	}
	return nil
}

// down reports whether the channel is out of service at t.
func (b Behaviour) down(t time.Time) bool {
	return b.Down || slices.ContainsFunc(b.Outages, func(w Window) bool { return !t.Before(w.From) && t.Before(w.Until) })
}

// Config configures a Simulator.
type Config struct {
	// Channels are the simulated channels (default: wire.DefaultChannels).
	Channels []wire.Channel
	// Stub makes the simulator a stub of the channels for pressure tests
	// beside live ones (the 挡板 of docs/pressure-test.md): it refuses
	// every channel request without wire.PressureTestHeader, so it serves
	// only the twins a pressure test pays through and never stands in
	// for a real channel (its admin endpoint stays open: it changes what
	// pressure tests see). Its Channels' secrets are its own, not the
	// live channels': the payment service takes a notification it signed
	// only as a pressure test's.
	Stub bool
	// NotifyURL is the merchant's callback base: a channel's
	// notifications are posted to NotifyURL + "/" + channel name.
	NotifyURL string
	// BaseURL is the simulator's own address, the base of pay URLs; Run
	// and Serve set it from the listener when it is empty.
	BaseURL string
	// Clock stamps trades and decides outage windows (default: wall
	// clock).
	Clock clock.Clock
	// Seed seeds the faults' random source.
	Seed uint64
	// NotifyAttempts bounds the deliveries of one notification that the
	// merchant does not answer 2xx (default 5); NotifyBackoff is the wait
	// before the first retry, doubled for each next one (default 200ms).
	// Delays and backoffs are waited on the wall clock, not Clock: a
	// test's manual clock does not hold them up.
	NotifyAttempts int
	NotifyBackoff  time.Duration
	// NotifyQueue bounds the notifications under way of each traffic
	// class, all channels together: waiting for their delay or a retry,
	// or being posted (default DefaultNotifyQueue), so a pressure test
	// that fills its share never crowds out a real notification. One
	// made while its class's share is full is
	// given up unsent and counted in Stats.Overflowed. A real channel
	// that cannot reach the merchant gives up too: the payment service's
	// sweep, which queries the channel about each payment still PAYING,
	// and its reconciliation settle the payment anyway.
	NotifyQueue int
	// HTTPClient posts notifications (default: a client with a 5s
	// timeout that keeps a connection open per notifier).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// StatementPage is a statement page's size when the merchant asks
	// for none (default wire.StatementPageMax); tests make it small to
	// make every reconciliation read several pages.
	StatementPage int
	// Retention is how long a channel keeps a trade before it forgets
	// it, as a real channel archives old trades: a paid trade for
	// Retention after its payment, one never paid for Retention after
	// its creation (default DefaultRetention). A forgotten trade is
	// gone from query, wallet, refund and statement. It must comfortably
	// exceed how far back the payment service asks: its reconciliation
	// window (ReconcileWindow, 24h) plus the hour of slack its statement
	// starts earlier, and the day it keeps querying a payment still
	// PAYING (QueryFor, 24h after creation).
	Retention time.Duration
}

// DefaultRetention is the default of Config.Retention: two days, a day
// more than the payment service's reconciliation window and its
// statement slack need.
const DefaultRetention = 48 * time.Hour

// DefaultNotifyQueue is the default of Config.NotifyQueue: far more
// notifications than a healthy merchant leaves waiting, a few megabytes
// when a dead one leaves the queue full.
const DefaultNotifyQueue = 10_000

// maxAnswer bounds what is read of the merchant's answer to a
// notification (its status is all that counts).
const maxAnswer = 64 << 10

// notifyWorkers is how many notifications the simulator posts at once,
// all channels together.
const notifyWorkers = 8

// Stats count what happened to one channel's notifications.
type Stats struct {
	Notified   int // notifications made (one per paid trade)
	Delivered  int // deliveries answered 2xx, duplicates included
	Duplicated int // notifications delivered a second time on purpose
	Dropped    int // notifications never sent on purpose
	Overflowed int // notifications given up unsent: the delivery queue was full
	Failed     int // deliveries not answered 2xx
}

type trade struct {
	wire.Trade
	// refunds indexes Trade.Refunds by the merchant's refund ref.
	refunds map[string]int
}

type channelState struct {
	wire.Channel
	behaviour Behaviour
	trades    map[string]*trade // by trade number
	byRef     map[string]string // merchant ref → trade number
	// created holds the trades in the order they were opened, so the
	// retention forgets the unpaid ones from its front.
	created []*trade
	// paid is the statement's index: the paid trades (refunded ones
	// included) ordered by statementKey, so a page is a binary search
	// and the page's trades, not a scan and sort of the channel. The
	// retention forgets paid trades from its front.
	paid  []*trade
	stats Stats
	// shadow: the channel's twin for pressure-test traffic
	// (wire.PressureTestHeader), as a sandbox merchant account: its
	// trades, refunds, statement and notifications never meet the real
	// ones. It behaves as the real channel does.
	shadow bool
}

func newChannelState(c wire.Channel, shadow bool) *channelState {
	return &channelState{Channel: c, trades: map[string]*trade{}, byRef: map[string]string{}, shadow: shadow}
}

// forget drops the trades that have aged past cut: the paid ones paid
// then or before, the unpaid ones opened then or before. Both queues are
// ordered by the time they are read by (a clock set back only keeps a
// trade behind a younger one a little longer), so each trade is looked
// at once when it leaves a queue's front: the cost is constant per
// trade, however many the channel holds.
func (c *channelState) forget(cut time.Time) {
	for len(c.paid) > 0 && !c.paid[0].PaidAt.After(cut) {
		c.drop(c.paid[0])
		c.paid[0] = nil // the backing array outlives the slice's front
		c.paid = c.paid[1:]
	}
	for len(c.created) > 0 && !c.created[0].CreatedAt.After(cut) {
		if t := c.created[0]; t.Status == wire.TradeWaitPay {
			c.drop(t)
		} // a paid one leaves with the paid index
		c.created[0] = nil
		c.created = c.created[1:]
	}
}

// class is the index of c's traffic class: 0 real, 1 marked.
func (c *channelState) class() int {
	if c.shadow {
		return 1
	}
	return 0
}

func (c *channelState) drop(t *trade) {
	delete(c.trades, t.TradeNo)
	delete(c.byRef, t.MerchantRef)
}

// Simulator is the channels' server. It is safe for concurrent use.
type Simulator struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	mu       sync.Mutex
	rnd      *rand.Rand
	channels map[string]*channelState
	shadows  map[string]*channelState
	seq      int64
	// queue holds the notifications waiting for their next delivery,
	// the earliest due first. pending counts them and those a worker is
	// posting, per traffic class (real, marked), each at most
	// cfg.NotifyQueue. A push that may make a notification due earlier
	// than a waiting worker expects sends on wake.
	queue    deliveries
	pending  [2]int
	wake     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	inflight sync.WaitGroup // the delivery workers
}

// New returns a simulator of cfg.Channels.
func New(cfg Config) (*Simulator, error) {
	if len(cfg.Channels) == 0 {
		cfg.Channels = wire.DefaultChannels
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.NotifyAttempts <= 0 {
		cfg.NotifyAttempts = 5
	}
	if cfg.NotifyBackoff <= 0 {
		cfg.NotifyBackoff = 200 * time.Millisecond
	}
	if cfg.NotifyQueue <= 0 {
		cfg.NotifyQueue = DefaultNotifyQueue
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.StatementPage <= 0 || cfg.StatementPage > wire.StatementPageMax {
		cfg.StatementPage = wire.StatementPageMax
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = telemetry.NewClient(5*time.Second, notifyWorkers)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Simulator{
		cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), wake: make(chan struct{}, 1),
		rnd:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		channels: map[string]*channelState{}, shadows: map[string]*channelState{},
	}
	for _, c := range cfg.Channels {
		if c.Name == "" || c.Secret == "" {
			return nil, errors.New("channelsim: every channel needs a name and a secret")
		}
		if _, dup := s.channels[c.Name]; dup {
			return nil, fmt.Errorf("channelsim: channel %q configured twice", c.Name)
		}
		s.channels[c.Name] = newChannelState(c, false)
		s.shadows[c.Name] = newChannelState(c, true)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.inflight.Add(notifyWorkers)
	for range notifyWorkers {
		go s.deliver()
	}
	s.mux.HandleFunc("POST /{channel}/payments", s.gated(s.create))
	s.mux.HandleFunc("GET /{channel}/payments", s.gated(s.query))
	s.mux.HandleFunc("POST /{channel}/wallet/{trade_no}", s.gated(s.wallet))
	s.mux.HandleFunc("POST /{channel}/refunds", s.gated(s.refund))
	s.mux.HandleFunc("GET /{channel}/statement", s.gated(s.statement))
	s.mux.HandleFunc("GET /admin/channels", s.getBehaviours)
	s.mux.HandleFunc("PUT /admin/channels/{channel}", s.putBehaviour)
	return s, nil
}

// ServeHTTP serves the channels' API and the admin endpoint.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve serves lis until ctx ends, then stops delivering notifications.
func (s *Simulator) Serve(ctx context.Context, lis net.Listener) error {
	s.mu.Lock()
	if s.cfg.BaseURL == "" {
		s.cfg.BaseURL = "http://" + lis.Addr().String()
	}
	s.mu.Unlock()
	s.log.Info("channel simulator serving", "addr", lis.Addr().String(), "notify", s.cfg.NotifyURL)
	err := telemetry.ServeHTTP(ctx, s.log, lis, s, 5*time.Second)
	s.Close()
	return err
}

// Close stops notification deliveries, aborting those being posted, and
// waits for the delivery workers that New started to return.
func (s *Simulator) Close() {
	s.cancel()
	s.inflight.Wait()
}

// forget drops channel's trades, real and marked, that are older than
// the retention at now. Callers hold s.mu.
func (s *Simulator) forget(channel string, now time.Time) {
	cut := now.Add(-s.cfg.Retention)
	for _, states := range []map[string]*channelState{s.channels, s.shadows} {
		if c, ok := states[channel]; ok {
			c.forget(cut)
		}
	}
}

// SetBehaviour changes how a channel behaves from now on.
func (s *Simulator) SetBehaviour(channel string, b Behaviour) error {
	if err := b.validate(); err != nil {
		return fmt.Errorf("channelsim: %s: %w", channel, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[channel]
	if !ok {
		return fmt.Errorf("channelsim: unknown channel %q", channel)
	}
	c.behaviour = b
	return nil
}

// Stats returns the notification counts of a channel.
func (s *Simulator) Stats(channel string) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.channels[channel]; ok {
		return c.stats
	}
	return Stats{}
}

// Trade returns the trade the merchant created with ref on channel.
func (s *Simulator) Trade(channel, ref string) (wire.Trade, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget(channel, s.cfg.Clock.Now())
	c, ok := s.channels[channel]
	if !ok {
		return wire.Trade{}, false
	}
	t, ok := c.trades[c.byRef[ref]]
	if !ok {
		return wire.Trade{}, false
	}
	return s.view(t), true
}

// Pay is the buyer confirming trade tradeNo in the wallet, in process: it
// bypasses the channel's latency and faults, which apply to the HTTP
// wallet call only.
func (s *Simulator) Pay(channel, tradeNo string) (wire.Trade, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget(channel, s.cfg.Clock.Now())
	return s.pay(s.channels, channel, tradeNo)
}

// apiError is an answer of the channel API other than 2xx.
type apiError struct {
	status int
	body   wire.Error
}

func (e *apiError) Error() string { return e.body.Code + ": " + e.body.Message }

func fail(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, body: wire.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// gated applies the channel's latency, outages and failure rate before h,
// as a real channel's network and backend would.
func (s *Simulator) gated(h func(c *channelState, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("channel")
		states := s.channels
		if r.Header.Get(wire.PressureTestHeader) != "" {
			states = s.shadows
		} else if s.cfg.Stub {
			writeJSON(w, http.StatusForbidden, wire.Error{Code: wire.CodeForbidden, Message: "a stub of the channels serves pressure tests only (" + wire.PressureTestHeader + ")"})
			return
		}
		s.mu.Lock()
		c, ok := states[name]
		var b Behaviour
		var unlucky bool
		now := s.cfg.Clock.Now()
		if ok {
			b = s.channels[name].behaviour
			unlucky = b.FailureRate > 0 && s.rnd.Float64() < b.FailureRate
			s.forget(name, now)
		}
		s.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: "unknown channel " + name})
			return
		}
		if b.LatencyMS > 0 {
			select {
			case <-time.After(time.Duration(b.LatencyMS) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		if b.down(now) || unlucky {
			writeJSON(w, http.StatusServiceUnavailable, wire.Error{Code: wire.CodeUnavailable, Message: name + " is unavailable"})
			return
		}
		out, err := h(c, r)
		if ae := (*apiError)(nil); errors.As(err, &ae) {
			writeJSON(w, ae.status, ae.body)
			return
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, wire.Error{Code: wire.CodeInvalid, Message: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Simulator) create(c *channelState, r *http.Request) (any, error) {
	var req wire.CreatePayment
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, fmt.Errorf("malformed body: %w", err)
	}
	if req.MerchantRef == "" || req.Amount <= 0 {
		return nil, fail(http.StatusBadRequest, wire.CodeInvalid, "merchant_ref and a positive amount are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if no, ok := c.byRef[req.MerchantRef]; ok {
		t := c.trades[no]
		if t.Amount != req.Amount {
			return nil, fail(http.StatusConflict, wire.CodeState, "merchant_ref %s was created with another amount", req.MerchantRef)
		}
		return s.view(t), nil
	}
	s.seq++
	no := fmt.Sprintf("%s-%d", c.Name, s.seq)
	if c.shadow {
		no = "shadow-" + no
	}
	t := &trade{Trade: wire.Trade{
		TradeNo: no, MerchantRef: req.MerchantRef, Channel: c.Name, Amount: req.Amount,
		Status: wire.TradeWaitPay, CreatedAt: s.cfg.Clock.Now(),
	}}
	c.trades[no], c.byRef[req.MerchantRef] = t, no
	c.created = append(c.created, t)
	return s.view(t), nil
}

// view returns t as the API shows it; callers hold s.mu.
func (s *Simulator) view(t *trade) wire.Trade {
	v := t.Trade
	v.PayURL = s.cfg.BaseURL + "/" + t.Channel + "/wallet/" + t.TradeNo
	if t.PaidAt != nil {
		at := *t.PaidAt
		v.PaidAt = &at
	}
	v.Refunds = slices.Clone(t.Refunds)
	return v
}

func (s *Simulator) query(c *channelState, r *http.Request) (any, error) {
	ref := r.URL.Query().Get("merchant_ref")
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := c.trades[c.byRef[ref]]
	if !ok {
		return nil, fail(http.StatusNotFound, wire.CodeNotFound, "no trade with merchant_ref %q", ref)
	}
	return s.view(t), nil
}

func (s *Simulator) wallet(c *channelState, r *http.Request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	states := s.channels
	if c.shadow {
		states = s.shadows
	}
	return s.pay(states, c.Name, r.PathValue("trade_no"))
}

// pay marks the trade paid and notifies the merchant; paying a paid trade
// again answers it unchanged. Callers hold s.mu.
func (s *Simulator) pay(states map[string]*channelState, channel, tradeNo string) (wire.Trade, error) {
	c, ok := states[channel]
	if !ok {
		return wire.Trade{}, fail(http.StatusNotFound, wire.CodeNotFound, "unknown channel %q", channel)
	}
	t, ok := c.trades[tradeNo]
	if !ok {
		return wire.Trade{}, fail(http.StatusNotFound, wire.CodeNotFound, "no trade %q", tradeNo)
	}
	if t.Status != wire.TradeWaitPay {
		return s.view(t), nil
	}
	// The wall time alone: a statement cursor carries no monotonic
	// reading, and the index must order trades as the cursor compares
	// them.
	now := s.cfg.Clock.Now().Round(0)
	t.Status, t.PaidAt = wire.TradePaid, &now
	c.index(t)
	c.stats.Notified++
	n := wire.Notification{
		NotifyID: "n-" + t.TradeNo, Channel: c.Name, TradeNo: t.TradeNo, MerchantRef: t.MerchantRef,
		Amount: t.Amount, Status: wire.TradePaid, PaidAt: now, PressureTest: c.shadow,
	}
	b := c.behaviour
	switch {
	case b.NotifyDropRate > 0 && s.rnd.Float64() < b.NotifyDropRate:
		c.stats.Dropped++
	default:
		copies := 1
		if b.NotifyDuplicateRate > 0 && s.rnd.Float64() < b.NotifyDuplicateRate {
			c.stats.Duplicated++
			copies = 2
		}
		s.enqueue(c, n, time.Duration(b.NotifyDelayMS)*time.Millisecond, copies)
	}
	return s.view(t), nil
}

// delivery is a notification under way: its signed body, the copies
// still to deliver (the one being tried included) and when the current
// copy's next attempt is due.
type delivery struct {
	c        *channelState
	body     []byte
	sig      string
	copies   int
	attempts int // attempts made at the current copy
	due      time.Time
}

// deliveries is a heap of deliveries, the earliest due at its root.
type deliveries []*delivery

func (q deliveries) Len() int           { return len(q) }
func (q deliveries) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q deliveries) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *deliveries) Push(x any)        { *q = append(*q, x.(*delivery)) }
func (q *deliveries) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return d
}

// enqueue queues n for delivery, copies times, after delay, or gives it
// up when its class's share of the queue is full. Callers hold s.mu.
func (s *Simulator) enqueue(c *channelState, n wire.Notification, delay time.Duration, copies int) {
	if s.pending[c.class()] >= s.cfg.NotifyQueue {
		c.stats.Overflowed++
		return
	}
	body, err := json.Marshal(n)
	if err != nil {
		s.log.Error("notification not encodable", "err", err)
		return
	}
	s.pending[c.class()]++
	s.push(&delivery{c: c, body: body, sig: wire.Sign([]byte(c.Secret), body), copies: copies, due: time.Now().Add(delay)})
}

// push queues d and wakes a waiting worker, whose wait may now be too
// long. Callers hold s.mu.
func (s *Simulator) push(d *delivery) {
	heap.Push(&s.queue, d)
	s.nudge()
}

// nudge wakes a waiting worker to look at the queue again.
func (s *Simulator) nudge() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already waiting for a worker
	}
}

// deliver is a delivery worker: it posts each notification when due
// until the simulator closes.
func (s *Simulator) deliver() {
	defer s.inflight.Done()
	timer := time.NewTimer(0) // reset before each wait it serves
	defer timer.Stop()
	for s.ctx.Err() == nil {
		d, wait := s.next()
		if d != nil {
			s.attempt(d)
			continue
		}
		var due <-chan time.Time // none: the queue is empty
		if wait > 0 {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-due:
		case <-s.wake:
		case <-s.ctx.Done():
		}
	}
}

// next takes the queue's earliest delivery if it is due, or says how
// long until it is (zero: the queue is empty). A worker that takes one
// passes the wake-up on, as another may be due too.
func (s *Simulator) next() (*delivery, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil, 0
	}
	if wait := time.Until(s.queue[0].due); wait > 0 {
		return nil, wait
	}
	d := heap.Pop(&s.queue).(*delivery)
	if len(s.queue) > 0 {
		s.nudge()
	}
	return d, 0
}

// attempt posts d once and queues what is left of it: the same copy
// after a doubling backoff if the merchant did not answer 2xx and
// attempts remain, else the next copy at once, if any.
func (s *Simulator) attempt(d *delivery) {
	ok := s.post(d.c.Name, d.body, d.sig)
	s.mu.Lock()
	defer s.mu.Unlock()
	d.attempts++
	if ok {
		d.c.stats.Delivered++
	} else {
		d.c.stats.Failed++
	}
	switch {
	case !ok && d.attempts < s.cfg.NotifyAttempts:
		d.due = time.Now().Add(s.cfg.NotifyBackoff << (d.attempts - 1))
	case d.copies > 1:
		d.copies, d.attempts, d.due = d.copies-1, 0, time.Now()
	default:
		s.pending[d.c.class()]--
		return
	}
	s.push(d)
}

func (s *Simulator) post(channel string, body []byte, sig string) bool {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.cfg.NotifyURL+"/"+channel, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(wire.SignatureHeader, sig)
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		s.log.Warn("notification not delivered", "channel", channel, "err", err)
		return false
	}
	// Read to its end, so the connection is kept for the next one: a
	// body closed unread makes the client close the connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

func (s *Simulator) refund(c *channelState, r *http.Request) (any, error) {
	var req wire.RefundRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, fmt.Errorf("malformed body: %w", err)
	}
	if req.RefundRef == "" {
		return nil, fail(http.StatusBadRequest, wire.CodeInvalid, "refund_ref is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := c.trades[req.TradeNo]
	if !ok {
		return nil, fail(http.StatusNotFound, wire.CodeNotFound, "no trade %q", req.TradeNo)
	}
	if i, ok := t.refunds[req.RefundRef]; ok {
		if t.Refunds[i].Amount != req.Amount {
			return nil, fail(http.StatusConflict, wire.CodeState, "refund_ref %s was refunded with another amount", req.RefundRef)
		}
		return t.Refunds[i], nil
	}
	switch {
	case t.Status != wire.TradePaid:
		return nil, fail(http.StatusConflict, wire.CodeState, "trade %s is %s", t.TradeNo, t.Status)
	case req.Amount <= 0:
		return nil, fail(http.StatusBadRequest, wire.CodeInvalid, "a refund needs a positive amount")
	case t.Refunded+req.Amount > t.Amount:
		return nil, fail(http.StatusConflict, wire.CodeState, "refund of %d: trade %s has %d of %d left",
			req.Amount, t.TradeNo, t.Amount-t.Refunded, t.Amount)
	}
	done := wire.Refund{
		RefundNo: fmt.Sprintf("r-%s-%d", t.TradeNo, len(t.Refunds)+1), RefundRef: req.RefundRef,
		TradeNo: t.TradeNo, Amount: req.Amount,
	}
	if t.refunds == nil {
		t.refunds = map[string]int{}
	}
	t.refunds[req.RefundRef] = len(t.Refunds)
	t.Refunds = append(t.Refunds, done)
	t.Refunded += req.Amount
	if t.Refunded == t.Amount {
		t.Status = wire.TradeRefunded
	}
	return done, nil
}

func (s *Simulator) statement(c *channelState, r *http.Request) (any, error) {
	q := r.URL.Query()
	var from statementKey
	if v := q.Get("since"); v != "" {
		since, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, fail(http.StatusBadRequest, wire.CodeInvalid, "since: %v", err)
		}
		from.paidAt = since
	}
	after, err := parseCursor(q.Get("cursor"))
	if err != nil {
		return nil, fail(http.StatusBadRequest, wire.CodeInvalid, "cursor: %v", err)
	}
	limit := s.cfg.StatementPage
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > wire.StatementPageMax {
			return nil, fail(http.StatusBadRequest, wire.CodeInvalid, "limit must be 1..%d", wire.StatementPageMax)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The page starts at the first trade paid at since or later (no
	// trade number sorts before from's empty one) and after the cursor.
	start, _ := slices.BinarySearchFunc(c.paid, from, compareKey)
	if after != nil {
		i, found := slices.BinarySearchFunc(c.paid, *after, compareKey)
		if found {
			i++
		}
		start = max(start, i)
	}
	rest := c.paid[start:]
	st := wire.Statement{Channel: c.Name, Trades: make([]wire.Trade, 0, min(len(rest), limit))}
	for _, t := range rest[:min(len(rest), limit)] {
		st.Trades = append(st.Trades, s.view(t))
	}
	if len(rest) > limit {
		st.Next = rest[limit-1].key().cursor()
	}
	return st, nil
}

// index adds the newly paid t to the statement's index. Trades are
// nearly always paid in clock order, so its place is nearly always the
// end and the insertion moves nothing.
func (c *channelState) index(t *trade) {
	i, _ := slices.BinarySearchFunc(c.paid, t.key(), compareKey)
	c.paid = slices.Insert(c.paid, i, t)
}

// key is a paid trade's place in the statement.
func (t *trade) key() statementKey { return statementKey{*t.PaidAt, t.TradeNo} }

func compareKey(t *trade, k statementKey) int { return t.key().compare(k) }

// statementKey orders a statement: payment time, then trade number.
type statementKey struct {
	paidAt  time.Time
	tradeNo string
}

func (k statementKey) compare(o statementKey) int {
	if c := k.paidAt.Compare(o.paidAt); c != 0 {
		return c
	}
	return strings.Compare(k.tradeNo, o.tradeNo)
}

// cursor is the opaque cursor of the page after k: its time in Unix
// nanoseconds and its trade number.
func (k statementKey) cursor() string {
	return strconv.FormatInt(k.paidAt.UnixNano(), 10) + "." + k.tradeNo
}

func parseCursor(v string) (*statementKey, error) {
	if v == "" {
		return nil, nil
	}
	ns, no, ok := strings.Cut(v, ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || no == "" {
		return nil, fmt.Errorf("%q is not a cursor this channel gave", v)
	}
	return &statementKey{time.Unix(0, n).UTC(), no}, nil
}

func (s *Simulator) getBehaviours(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := make(map[string]Behaviour, len(s.channels))
	for name, c := range s.channels {
		out[name] = c.behaviour
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Simulator) putBehaviour(w http.ResponseWriter, r *http.Request) {
	var b Behaviour
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeJSON(w, http.StatusBadRequest, wire.Error{Code: wire.CodeInvalid, Message: err.Error()})
		return
	}
	name := r.PathValue("channel")
	s.mu.Lock()
	_, known := s.channels[name]
	s.mu.Unlock()
	if !known {
		writeJSON(w, http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: "unknown channel " + name})
		return
	}
	if err := s.SetBehaviour(name, b); err != nil {
		writeJSON(w, http.StatusBadRequest, wire.Error{Code: wire.CodeInvalid, Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"INTERNAL","message":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
