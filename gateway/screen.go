package gateway

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/flashsale/flashsale/platform/errcode"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/telemetry"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// ScreenOptions turn on the big screen (大屏, docs/big-screen.md): a
// live page of the sale's figures, fed from the order events on Kafka and
// pushed to the browser every second.
type ScreenOptions struct {
	// Brokers carry Topic (default orders.events), which the screen
	// reads from its first offset, so a screen started mid-sale shows the
	// sale's totals.
	Brokers []string
	Topic   string
	// PaymentMetrics are the /metrics URLs of the payment service's
	// replicas: their payment_payments_total counters give each
	// channel's succeeded and failed payments. None: the screen shows
	// what the order events say (paid orders per channel) alone.
	PaymentMetrics []string
}

// DefaultScreenTopic is the order service's topic of order events.
const DefaultScreenTopic = "orders.events"

// The screen's routes: the page is public (it holds no figures), the
// stream of figures needs an admin or a screen token, which an admin
// mints at ScreenTokensPath.
const (
	ScreenPath       = "/screen"
	ScreenEventsPath = "/admin/v1/screen/events"
	ScreenTokensPath = "/admin/v1/screen-tokens"
)

// Screen tokens live a day unless asked for less; at most 30 days (a
// display on a wall is set up once for a season of sales, and its token
// reads figures only).
const (
	DefaultScreenTTL = 24 * time.Hour
	MaxScreenTTL     = 30 * 24 * time.Hour
)

type screenTokenResponse struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	// Path is the page's address on this gateway with the token in its
	// fragment, ready to open on the display.
	Path string `json:"path"`
}

// issueScreenToken answers POST /admin/v1/screen-tokens: a token that
// reads the big screen's stream and is refused on every other route.
func (g *Gateway) issueScreenToken(w http.ResponseWriter, r *http.Request) error {
	if g.retired(principal{Role: RoleScreen, Issued: g.clock.Now()}) {
		// Minted now, it would be refused at once: say so instead.
		return errorf(errcode.Conflict, "screen tokens issued up to "+g.screenRetiredUntil.Load().UTC().Format(time.RFC3339)+
			" are retired ("+KeyScreenRetiredUntil+"): mint one after it")
	}
	token, expires, err := g.issueRoleToken(r, RoleScreen, DefaultScreenTTL, MaxScreenTTL)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, screenTokenResponse{Token: token, ExpiresAt: expires, Path: ScreenPath + "#token=" + token})
	return nil
}

// screenHistory is how many seconds of the orders-per-second and GMV
// series a snapshot carries, for the page's chart.
const screenHistory = 120

// screenSales bounds the sales a snapshot lists (the latest by start),
// and so the sales a screen keeps figures for.
const screenSales = 20

// seckillRoute is the flash-sale buy route, whose p99 the screen shows.
const seckillRoute = "POST /api/v1/seckill/orders"

//go:embed screen.html
var screenPage []byte

// eventStep names an event as readers dedupe it: the relay publishes at
// least once, so one step may arrive twice.
type eventStep struct {
	order int64
	typ   orderv1.OrderEvent_Type
	ref   int64
}

// recentStepsGeneration is how many steps of one partition a screen
// remembers at least (and twice that at most) to drop repeats: about
// 5 MB a generation (80 bytes a step in a Go map). A repeat is the
// relay publishing a claim again whose delete did not commit, right
// after the failure (its retry, a second): the steps between the two
// copies are those of one partition in that second, far fewer. The
// copies share a partition, for the topic is keyed by order id.
const recentStepsGeneration = 1 << 16

// recentSteps remembers the steps seen lately in one partition, in two
// generations: when the current one is full it becomes the previous
// one and the one before is dropped. So memory stays bounded however
// long the sale runs (a set of every step grew by about 80 bytes an
// event, without bound: gigabytes over a Double-11 in every gateway
// replica), and a repeat within the last size steps is always
// recognised.
type recentSteps struct {
	size      int
	cur, prev map[eventStep]struct{}
}

func newRecentSteps(size int) *recentSteps {
	return &recentSteps{size: size, cur: make(map[eventStep]struct{})}
}

// seen reports whether k was seen lately, and remembers it if not.
func (r *recentSteps) seen(k eventStep) bool {
	if _, ok := r.cur[k]; ok {
		return true
	}
	if _, ok := r.prev[k]; ok {
		return true
	}
	if len(r.cur) >= r.size {
		r.prev, r.cur = r.cur, make(map[eventStep]struct{}, r.size)
	}
	r.cur[k] = struct{}{}
	return false
}

// screenChannel is one payment channel's line on the screen.
type screenChannel struct {
	Channel string `json:"channel"`
	// PaidOrders and Paid (cents) are the orders the channel paid, from
	// the order events.
	PaidOrders int64 `json:"paid_orders"`
	Paid       int64 `json:"paid"`
	// Succeeded and Failed are the payments that reached a final state,
	// from the payment service's counters (absent without them).
	Succeeded *int64 `json:"succeeded,omitempty"`
	Failed    *int64 `json:"failed,omitempty"`
}

// screenSale is one flash sale's stock.
type screenSale struct {
	id         int64
	ActivityID string `json:"activity_id"`
	Title      string `json:"title"`
	Stock      int64  `json:"stock"`
	Remaining  int64  `json:"remaining"`
	// Stored and Paid count the sale's orders from the events.
	Stored int64 `json:"stored"`
	Paid   int64 `json:"paid"`
}

// screenPoint is one second of the chart's series.
type screenPoint struct {
	T               int64 `json:"t"` // Unix seconds by the gateway's clock
	OrdersPerSecond int64 `json:"orders_per_second"`
	GMV             int64 `json:"gmv"`
}

// ScreenSnapshot is what the stream pushes every second (docs/api.md).
// Money is in cents.
type ScreenSnapshot struct {
	At string `json:"at"`
	// GMV is what paid orders paid minus what refunds returned.
	GMV        int64 `json:"gmv"`
	PaidOrders int64 `json:"paid_orders"`
	Refunded   int64 `json:"refunded"`
	// StoredOrders is every order written to Postgres; OrdersPerSecond
	// those whose event arrived in the last second.
	StoredOrders    int64 `json:"stored_orders"`
	OrdersPerSecond int64 `json:"orders_per_second"`
	Expired         int64 `json:"expired"`
	Cancelled       int64 `json:"cancelled"`
	// P99Ms is the flash-sale buy route's 99th percentile on this
	// gateway over the last second, from its latency histogram (nil: no
	// buys that second).
	P99Ms   *float64 `json:"p99_ms"`
	Degrade string   `json:"degrade"`
	// Events counts the events read, Duplicates those dropped as
	// repeats.
	Events     int64           `json:"events"`
	Duplicates int64           `json:"duplicates"`
	Sales      []screenSale    `json:"sales"`
	Channels   []screenChannel `json:"channels"`
	History    []screenPoint   `json:"history"`
	// Stale names the sources this second's snapshot could not read
	// (stock, payments); their figures are the last ones read.
	Stale []string `json:"stale,omitempty"`
}

// screen aggregates the order events and serves the snapshots.
type screen struct {
	g    *Gateway
	opts ScreenOptions
	http *http.Client

	mu         sync.Mutex // guards the totals below
	snap       ScreenSnapshot
	channels   map[string]*screenChannel
	sales      map[int64]*screenSale // the latest screenSales sales seen
	lastStored int64
	lastHist   *dto.Histogram

	pushMu  sync.Mutex // guards latest and changed
	latest  []byte
	changed chan struct{}
	stopped chan struct{}
}

func newScreen(g *Gateway, opts ScreenOptions) *screen {
	if opts.Topic == "" {
		opts.Topic = DefaultScreenTopic
	}
	return &screen{g: g, opts: opts, http: telemetry.NewClient(time.Second, 1),
		channels: map[string]*screenChannel{}, sales: map[int64]*screenSale{},
		changed: make(chan struct{}), stopped: make(chan struct{})}
}

// apply adds one event to the totals unless it is a repeat.
func (s *screen) apply(e *orderv1.OrderEvent, repeat bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.Events++
	if repeat {
		s.snap.Duplicates++
		return
	}
	sale := s.sale(e.GetActivityId())
	switch e.GetType() {
	case orderv1.OrderEvent_TYPE_STORED:
		s.snap.StoredOrders++
		if sale != nil {
			sale.Stored++
		}
	case orderv1.OrderEvent_TYPE_PAID:
		s.snap.PaidOrders++
		s.snap.GMV += e.GetAmount()
		c := s.channel(e.GetChannel())
		c.PaidOrders++
		c.Paid += e.GetAmount()
		if sale != nil {
			sale.Paid++
		}
	case orderv1.OrderEvent_TYPE_REFUNDED:
		s.snap.Refunded += e.GetAmount()
		s.snap.GMV -= e.GetAmount()
	case orderv1.OrderEvent_TYPE_EXPIRED:
		s.snap.Expired++
	case orderv1.OrderEvent_TYPE_CANCELLED:
		s.snap.Cancelled++
	}
}

// sale returns the line of the activity (none for id 0), made on first
// sight; s.mu is held. Only the latest screenSales sales by id are kept,
// those a snapshot lists: a sale older than all of them gets no line
// (nil), and a new one pushes out the oldest. Ids are snowflakes,
// ascending in time, so a sale pushed out never comes back into the
// latest, and a gateway that runs through sale after sale keeps
// screenSales lines instead of one for every sale it ever saw.
func (s *screen) sale(id int64) *screenSale {
	if id == 0 {
		return nil
	}
	if sale := s.sales[id]; sale != nil {
		return sale
	}
	if len(s.sales) >= screenSales {
		oldest := id
		for other := range s.sales {
			oldest = min(oldest, other)
		}
		if oldest == id {
			return nil
		}
		delete(s.sales, oldest)
	}
	sale := &screenSale{id: id, ActivityID: formatID(id)}
	s.sales[id] = sale
	return sale
}

// channel returns the named channel's line; s.mu is held.
func (s *screen) channel(name string) *screenChannel {
	c := s.channels[name]
	if c == nil {
		c = &screenChannel{Channel: name}
		s.channels[name] = c
	}
	return c
}

// run reads every partition of the topic and snapshots the totals every
// second until ctx ends.
func (s *screen) run(ctx context.Context) error {
	defer close(s.stopped)
	partitions := s.partitions(ctx)
	var wg sync.WaitGroup
	for _, p := range partitions {
		wg.Go(func() { s.read(ctx, p) })
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.tick(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// partitions waits until the topic exists (the order service creates
// it) and returns its partitions.
func (s *screen) partitions(ctx context.Context) []int {
	for {
		parts, err := s.readPartitions(ctx)
		if err == nil && len(parts) > 0 {
			return parts
		}
		s.g.log.WarnContext(ctx, "screen: topic not readable yet, retrying", "topic", s.opts.Topic, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (s *screen) readPartitions(ctx context.Context) ([]int, error) {
	c := &kafkago.Client{Addr: kafkago.TCP(s.opts.Brokers...), Timeout: 5 * time.Second}
	md, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{s.opts.Topic}})
	if err != nil {
		return nil, err
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, fmt.Errorf("topic %s not found", s.opts.Topic)
	}
	var parts []int
	for _, p := range md.Topics[0].Partitions {
		parts = append(parts, p.ID)
	}
	return parts, nil
}

// read applies one partition's events from its first offset on,
// telling repeats by the partition's recent steps.
func (s *screen) read(ctx context.Context, partition int) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: s.opts.Brokers, Topic: s.opts.Topic, Partition: partition,
		MaxWait: 100 * time.Millisecond, MaxBytes: 4 << 20,
	})
	defer r.Close()
	if err := r.SetOffset(kafkago.FirstOffset); err != nil {
		s.g.log.ErrorContext(ctx, "screen: cannot read from the first offset", "partition", partition, "err", err)
		return
	}
	steps := newRecentSteps(recentStepsGeneration)
	for {
		m, err := r.ReadMessage(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.g.log.WarnContext(ctx, "screen: read failed, retrying in a second", "partition", partition, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if pkafka.Marked(&m) {
			// Pressure-test traffic has a topic of its own; one on the
			// real topic (a producer's bug) is no real sale's.
			s.g.log.WarnContext(ctx, "screen: pressure-test event on the real topic skipped", "partition", partition, "offset", m.Offset)
			continue
		}
		var e orderv1.OrderEvent
		if err := proto.Unmarshal(m.Value, &e); err != nil {
			s.g.log.WarnContext(ctx, "screen: unreadable event skipped", "partition", partition, "offset", m.Offset, "err", err)
			continue
		}
		s.apply(&e, steps.seen(eventStep{e.GetOrderId(), e.GetType(), e.GetRef()}))
	}
}

// tick reads the sources that are not events (stock, payments, latency,
// degrade level), builds the second's snapshot and wakes the streams.
func (s *screen) tick(ctx context.Context) {
	var stale []string
	activities, err := s.activities(ctx)
	if err != nil {
		stale = append(stale, "stock")
	}
	payments, err := s.payments(ctx)
	if err != nil {
		stale = append(stale, "payments")
	}
	p99 := s.p99()

	s.mu.Lock()
	snap := s.snap
	snap.At = s.g.clock.Now().UTC().Format(time.RFC3339)
	snap.OrdersPerSecond, s.lastStored = snap.StoredOrders-s.lastStored, snap.StoredOrders
	snap.P99Ms, snap.Degrade, snap.Stale = p99, s.g.degrade.level().String(), stale
	for _, a := range activities {
		sale := s.sale(a.GetActivityId())
		if sale == nil {
			continue
		}
		sale.Title, sale.Stock, sale.Remaining = a.GetTitle(), a.GetStock(), a.GetRemaining()
	}
	for name, p := range payments {
		c := s.channel(name)
		c.Succeeded, c.Failed = &p.succeeded, &p.failed
	}
	snap.Sales = make([]screenSale, 0, len(s.sales))
	for _, sale := range s.sales {
		snap.Sales = append(snap.Sales, *sale)
	}
	snap.Channels = make([]screenChannel, 0, len(s.channels))
	for _, c := range s.channels {
		snap.Channels = append(snap.Channels, *c)
	}
	s.snap.History = append(s.snap.History, screenPoint{T: s.g.clock.Now().Unix(), OrdersPerSecond: snap.OrdersPerSecond, GMV: snap.GMV})
	if len(s.snap.History) > screenHistory {
		s.snap.History = s.snap.History[len(s.snap.History)-screenHistory:]
	}
	snap.History = slices.Clone(s.snap.History)
	s.mu.Unlock()

	// Ids are snowflakes, ascending in time: the latest sales first.
	slices.SortFunc(snap.Sales, func(a, b screenSale) int { return cmp.Compare(b.id, a.id) })
	slices.SortFunc(snap.Channels, func(a, b screenChannel) int { return strings.Compare(a.Channel, b.Channel) })
	b, err := json.Marshal(snap)
	if err != nil {
		s.g.log.ErrorContext(ctx, "screen: snapshot not encoded", "err", err)
		return
	}
	s.pushMu.Lock()
	s.latest = b
	close(s.changed)
	s.changed = make(chan struct{})
	s.pushMu.Unlock()
}

// activities lists the sales with their remaining stock (the product
// service asks the inventory's Redis, and caches it for a second).
func (s *screen) activities(ctx context.Context) ([]*productv1.Activity, error) {
	ctx, cancel := s.g.callCtx(ctx)
	defer cancel()
	resp, err := s.g.product.ListActivities(ctx, &productv1.ListActivitiesRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetActivities(), nil
}

// settled is one channel's payments in a final state.
type settled struct{ succeeded, failed int64 }

// payments sums payment_payments_total over the payment replicas'
// scrapes, by channel; nil without PaymentMetrics.
func (s *screen) payments(ctx context.Context) (map[string]settled, error) {
	if len(s.opts.PaymentMetrics) == 0 {
		return nil, nil
	}
	out := map[string]settled{}
	for _, url := range s.opts.PaymentMetrics {
		if err := s.scrape(ctx, url, out); err != nil {
			s.g.log.WarnContext(ctx, "screen: payment metrics not read", "url", url, "err", err)
			return nil, err
		}
	}
	return out, nil
}

func (s *screen) scrape(ctx context.Context, url string, into map[string]settled) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return err
	}
	f := families["payment_payments_total"]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		var channel, status string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "channel":
				channel = l.GetValue()
			case "status":
				status = l.GetValue()
			}
		}
		st := into[channel]
		switch status {
		case "succeeded":
			st.succeeded += int64(m.GetCounter().GetValue())
		case "failed":
			st.failed += int64(m.GetCounter().GetValue())
		}
		into[channel] = st
	}
	return nil
}

// p99 is the buy route's 99th percentile over the second since the last
// call, read from the gateway's latency histogram as Prometheus's
// histogram_quantile reads it: linear within the bucket that holds it.
func (s *screen) p99() *float64 {
	var m dto.Metric
	if err := s.g.metrics.latency.WithLabelValues(seckillRoute).(prometheus.Metric).Write(&m); err != nil {
		return nil
	}
	h := m.GetHistogram()
	prev := s.lastHist
	s.lastHist = h
	if prev == nil {
		return nil
	}
	total := h.GetSampleCount() - prev.GetSampleCount()
	if total == 0 {
		return nil
	}
	rank := 0.99 * float64(total)
	lower, below := 0.0, uint64(0)
	for i, b := range h.GetBucket() {
		n := b.GetCumulativeCount() - prev.GetBucket()[i].GetCumulativeCount()
		if float64(n) >= rank {
			upper := b.GetUpperBound()
			ms := 1000 * (lower + (upper-lower)*(rank-float64(below))/float64(n-below))
			return &ms
		}
		lower, below = b.GetUpperBound(), n
	}
	// Beyond the last bound: say the last bound, as Prometheus does.
	ms := 1000 * lower
	if math.IsInf(ms, 0) {
		return nil
	}
	return &ms
}

// serveScreen serves the page.
func (g *Gateway) serveScreen(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(screenPage)
	return nil
}

// screenEvents streams a snapshot every second as Server-Sent Events
// (one "data:" line of JSON each) until the client goes or the gateway
// stops, or its token expires or is retired (Settings.ScreenRetiredUntil:
// a stream opened with a screen token must not outlive it). The stream outlives the
// server's read and write timeouts (telemetry.StreamDeadlines before each
// snapshot), and a client that stops reading is dropped after a write
// timeout.
func (g *Gateway) screenEvents(w http.ResponseWriter, r *http.Request) error {
	s := g.screen
	caller := callerOf(r.Context())
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for {
		s.pushMu.Lock()
		latest, changed := s.latest, s.changed
		s.pushMu.Unlock()
		if err := telemetry.StreamDeadlines(rc); err != nil {
			return nil
		}
		if !g.clock.Now().Before(caller.Expires) || g.retired(caller) {
			return nil
		}
		if latest != nil {
			if _, err := fmt.Fprintf(w, "data: %s\n\n", latest); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return nil
		case <-s.stopped:
			return nil
		}
	}
}

// RunScreen aggregates the order events for the big screen until ctx
// ends; without ScreenOptions it returns at once.
func (g *Gateway) RunScreen(ctx context.Context) error {
	if g.screen == nil {
		return nil
	}
	return g.screen.run(ctx)
}
