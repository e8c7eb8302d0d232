package gateway

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/shadow"
	"github.com/flashsale/flashsale/proto/limits"
	orderv1 "github.com/flashsale/flashsale/proto/order/v1"
)

// closedRetryAfter is the Retry-After of a closed flash-sale entry: long
// enough that a crowd does not hammer a switched-off entry.
const closedRetryAfter = 30 * time.Second

type seckillRequest struct {
	ActivityID *string `json:"activity_id"`
	Quantity   *int64  `json:"quantity"`
}

// placeSeckillOrder is the hot path. Everything that can refuse a request
// without the order service does so first, cheapest first: the header,
// the body, the local sold-out flag, the cached activity's window, the
// per-user limit (a Redis script), the challenge when the sale requires
// one (its single use costs a Redis write). Only then does the request
// reach order (and through it Redis). A refusal by flag or window is
// first checked against the keys this gateway accepted before, so a
// client retrying an accepted request still gets its order (and while
// those keys cannot be read, a request that may be such a retry is
// answered 503 to come back, not refused for good); a key whose
// earlier request got no answer from order (it may have made an order all
// the same) passes the sold-out flag to ask order; and a repeat that
// arrives while the first request is still in flight in this gateway
// waits for it and gets its answer (a double click must not be refused by
// a flag that the first request's own sale raised).
func (g *Gateway) placeSeckillOrder(w http.ResponseWriter, r *http.Request) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	var req seckillRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var f fields
	activityID := f.id("activity_id", req.ActivityID)
	quantity := f.int("quantity", req.Quantity, 1, limits.MaxQuantity)
	if f.err != nil {
		return f.err
	}
	device, err := deviceOf(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	user := callerOf(ctx).UserID
	p := proofOf(r, device)
	// A pressure test's request and a real one are never joined: their
	// ids name rows of different storage (shadow.Label names the class).
	v, err, _ := g.placing.Do(shadow.Label(ctx)+":"+formatID(activityID)+":"+formatID(user)+":"+key, func() (any, error) {
		return g.placeSeckill(ctx, activityID, user, quantity, key, p)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, v.(api.SeckillAccepted))
	return nil
}

// placeSeckill decides one flash-sale request: refused locally, answered
// from the accepted keys, or placed through the order service.
func (g *Gateway) placeSeckill(ctx context.Context, activityID, user, quantity int64, key string, p proof) (api.SeckillAccepted, error) {
	// earlier looks the key up among those accepted before: the order it
	// got (found), whether its earlier request went unanswered, or that
	// the keys could not be read (unknown). It reads Redis once a request:
	// a probe that the window then refuses asks twice (repeats of one
	// request are joined before they get here).
	var looked struct {
		done                       bool
		orderID                    int64
		found, unanswered, unknown bool
	}
	earlier := func() (answer api.SeckillAccepted, found, unanswered, unknown bool) {
		if !looked.done {
			looked.orderID, looked.found, looked.unanswered, looked.unknown = g.accepted.lookup(ctx, activityID, user, key)
			looked.done = true
		}
		if looked.found {
			answer = api.SeckillAccepted{OrderID: formatID(looked.orderID), Status: "PROCESSING"}
		}
		return answer, looked.found, looked.unanswered, looked.unknown
	}
	// refuse answers a request a shortcut turns away: with its order when
	// the key was accepted before, else with the refusal; unless the
	// shortcut is deferrable and the key's earlier request got no answer
	// from order (decided false): only order knows whether that request
	// made an order. When the keys cannot be read and the refusal is not
	// definite (the request may be an accepted buy's retry, which the
	// refusal would tell that its order does not exist), it is answered
	// 503, to come back with its key; the shortcut is not deferred to
	// order, which a Redis outage would then flood with the buys the flag
	// stops.
	refuse := func(refusal error, kind shortcutKind) (answer api.SeckillAccepted, decided bool, err error) {
		answer, found, unanswered, unknown := earlier()
		switch {
		case found:
			return answer, true, nil
		case unanswered && kind == deferrable:
			return api.SeckillAccepted{}, false, nil
		case unknown && kind != definite:
			return api.SeckillAccepted{}, true, errUnreadableKeys
		}
		return api.SeckillAccepted{}, true, refusal
	}
	if g.seckillClosed.Load() {
		answer, _, err := refuse(&Error{Code: errcode.Unavailable, Message: "flash sales are closed for now, retry later", RetryAfter: closedRetryAfter}, definite)
		return answer, err
	}
	flagged, probe := g.soldOut.check(activityID)
	// end: what this buy, if it is a probe, found: stock taken now, the
	// sale's window over, or neither.
	end, fresh := lookUndecided, false
	if probe.out() {
		// This buy looks whether the sale is still sold out, for every
		// buy the flag refuses meanwhile: order's answer decides, but
		// only for a key not seen before. A key accepted before gets its
		// order here, and one left unanswered may be answered by order
		// with the order it made then: neither shows stock came back.
		defer func() { g.soldOut.probed(activityID, probe, end) }()
		answer, found, unanswered, unknown := earlier()
		if found {
			return answer, nil
		}
		fresh = !unanswered && !unknown
	}
	if flagged {
		if answer, decided, err := refuse(errorf(errcode.SoldOut, "sold out"), deferrable); decided {
			return answer, err
		}
	}
	act, err := g.activityOf(ctx, activityID)
	if err != nil {
		return api.SeckillAccepted{}, err
	}
	if now, starts := g.clock.Now(), act.GetStartsAt().AsTime(); now.Before(starts) || !now.Before(act.GetEndsAt().AsTime()) {
		end = lookClosed // the window answers from now on, not the flag
		// Before the start no buy was accepted yet: the crowd clicking
		// early is told so, whatever Redis says. After the end, a key
		// whose earlier request got no answer goes on to order, which
		// answers its retry with the order that request made.
		kind := deferrable
		if now.Before(starts) {
			kind = definite
		}
		if answer, decided, err := refuse(errorf(errcode.ActivityNotActive, "the flash sale is not running now"), kind); decided {
			return answer, err
		}
	}
	// The per-user limit counts the buys that go on to cost a Redis
	// script and an order call. One the flag or the window refused cost
	// a single read (the accepted keys), no more than the limit's own
	// script, so it spends no token and needs no second round trip.
	if err := g.allowUser(ctx, g.users); err != nil {
		return api.SeckillAccepted{}, err
	}
	if act.GetChallengeRequired() {
		// A buy without a challenge, or with one that is forged, meant
		// for another buy or early, is refused at once: the first try
		// of every accepted buy passed with its challenge, and its
		// retries carry the same. An expired or used one is checked
		// against the accepted keys first: a retry must get its order
		// even once its challenge has expired (retryMayMeet).
		if err := g.challenges.pass(ctx, p, user, activityID, key); err != nil {
			if !retryMayMeet(err) {
				return api.SeckillAccepted{}, err
			}
			if answer, decided, err := refuse(err, deferrable); decided {
				return answer, err
			}
		}
	}
	cctx, cancel := g.callCtx(ctx)
	defer cancel()
	resp, err := g.order.PlaceSeckillOrder(cctx, &orderv1.PlaceSeckillOrderRequest{
		UserId: user, ActivityId: activityID, Quantity: quantity, IdempotencyKey: key,
	})
	if err != nil {
		switch c := errcode.Of(err); {
		case c == errcode.SoldOut:
			// Only a one-unit refusal proves no unit is left; a larger
			// request may fail while smaller ones still fit.
			if quantity == 1 {
				g.soldOut.mark(activityID)
			}
		case !errcode.Answered(err) || c == errcode.Unavailable || c == errcode.Internal:
			// No answer, or UNAVAILABLE: the order may still have been
			// made (a publish that outlived the call). Its buyer is told
			// 503 and comes back with the key, which the sold-out flag
			// must then not refuse before order has looked.
			g.accepted.unanswered(ctx, activityID, user, key)
		}
		return api.SeckillAccepted{}, err
	}
	if fresh {
		end = lookPlaced
	}
	g.accepted.remember(ctx, activityID, user, key, resp.GetOrderId())
	return api.SeckillAccepted{OrderID: formatID(resp.GetOrderId()), Status: orderStatus(resp.GetStatus())}, nil
}

// shortcutKind says what a shortcut's refusal (placeSeckill's refuse)
// may meet, for a key the accepted keys cannot vouch for.
type shortcutKind int

const (
	// deferrable: an accepted buy's retry may meet it (the sold-out flag,
	// the window after the sale's end, an expired or used challenge: the
	// retry carries the challenge its first request passed with). It is
	// answered 503 while the keys cannot be read, and a key whose earlier
	// request got no answer goes on to order, which knows whether that
	// request made an order. The zero value, the safe one.
	deferrable shortcutKind = iota
	// definite: no accepted buy's retry can meet it: it is a 503 itself
	// (flash sales closed), or no buy was accepted yet (before the
	// sale's start). It stands while the keys cannot be read.
	definite
)

// acceptedKeys remembers, in Redis, which order each accepted
// (activity, user, key) got, so that a retry refused by a local shortcut
// (sold-out flag, closed window) is answered with its order as docs/api.md
// promises. Only accepted requests are written (at most the stock of a
// sale), and a refusal costs one MGET (of the accepted key and the
// unanswered mark), in place of the per-user limit's script, which such a
// buy does not run. A mark Redis fails to take is held in memory until
// it does (heldMarks). Without Redis configured the shortcuts refuse
// retries too.
type acceptedKeys struct {
	rdb redis.Cmdable
	ttl time.Duration
	// timeout bounds each read and write (the call budget): a Redis that
	// went silent costs a request no more than any other call would.
	timeout time.Duration
	// held are the marks Redis failed to take, until it does.
	held *heldMarks
	log  func(ctx context.Context, msg string, args ...any)
}

func (a *acceptedKeys) name(activityID, user int64, key string) string {
	return "gw:accepted:{act:" + formatID(activityID) + "}:" + formatID(user) + ":" + key
}

func (a *acceptedKeys) remember(ctx context.Context, activityID, user int64, key string, orderID int64) {
	if a.rdb == nil {
		return
	}
	// Written even when the buyer has gone: the buyer comes back with the
	// key, and without the mark a shortcut would refuse it.
	ctx = context.WithoutCancel(ctx)
	a.write(ctx, a.name(activityID, user, key), formatID(orderID), a.ttl)
}

// write sets the mark name = value for ttl in Redis, or, when Redis
// fails, holds it until RunHeldMarks gets it there (heldMarks).
func (a *acceptedKeys) write(ctx context.Context, name, value string, ttl time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, a.timeout)
	err := a.rdb.Set(wctx, name, value, ttl).Err()
	cancel()
	if err == nil {
		return
	}
	if a.held.hold(ctx, name, value, ttl) {
		a.log(ctx, "write accepted-key mark, holding it until Redis takes it", "mark", name, "err", err)
		return
	}
	a.log(ctx, "write accepted-key mark, dropped: the held marks are full", "mark", name, "held", a.held.size(), "err", err)
}

// unansweredKeyTTL is how long a key whose request got no answer skips
// the sold-out flag: longer than any payment window the platform runs
// with (15 minutes by default), after which an order it made has been
// paid (and its key remembered) or has expired.
const unansweredKeyTTL = time.Hour

// unsureName names the mark of a key whose request got no answer from
// order; in the accepted key's hash slot, so one MGET reads both.
func (a *acceptedKeys) unsureName(activityID, user int64, key string) string {
	return "gw:unanswered:{act:" + formatID(activityID) + "}:" + formatID(user) + ":" + key
}

// unanswered marks a key whose request got no answer from order (a
// timeout, UNAVAILABLE): only order can tell whether it made an order, so
// a retry must reach it (lookup's unanswered).
func (a *acceptedKeys) unanswered(ctx context.Context, activityID, user int64, key string) {
	if a.rdb == nil {
		return
	}
	ctx = context.WithoutCancel(ctx) // as remember: the buyer comes back
	a.write(ctx, a.unsureName(activityID, user, key), "1", unansweredKeyTTL)
}

// errUnreadableKeys answers a request a shortcut would refuse while the
// accepted keys cannot be read: it may be an accepted buy's retry. Its
// buyer loses nothing by waiting (an order made is kept for its payment
// window), so it comes back in seconds, not at once.
var errUnreadableKeys = &Error{Code: errcode.Unavailable, RetryAfter: 5 * time.Second,
	Message: "cannot tell now whether this request was accepted before: retry with the same Idempotency-Key"}

// retryMayMeet says whether the challenge wall's refusal err can meet the
// retry of a buy it let through: the retry carries the challenge its first
// try passed with, which may have expired since (or, should the single
// use's record be lost, look used); it is never missing, forged, meant
// for another buy or early.
func retryMayMeet(err error) bool {
	var ge *Error
	return errors.As(err, &ge) && (ge.Code == errcode.ChallengeExpired || ge.Code == errcode.ChallengeUsed)
}

// lookup returns the order the key was accepted with (found), or whether
// its earlier request went unanswered; unknown when the keys could not be
// read (without Redis there are none to read). The marks this replica
// holds for Redis answer first.
func (a *acceptedKeys) lookup(ctx context.Context, activityID, user int64, key string) (orderID int64, found, unanswered, unknown bool) {
	if a.rdb == nil {
		return 0, false, false, false
	}
	name, unsure := a.name(activityID, user, key), a.unsureName(activityID, user, key)
	if v, ok := a.held.get(ctx, name); ok {
		return parseOrderID(v)
	}
	_, heldUnsure := a.held.get(ctx, unsure)
	rctx, cancel := context.WithTimeout(ctx, a.timeout)
	vals, err := a.rdb.MGet(rctx, name, unsure).Result()
	cancel()
	if err != nil {
		a.log(ctx, "look up accepted key", "err", err)
		// An unanswered mark held here is known without Redis (the flag
		// lets such a retry through to order, which knows whether it
		// made an order), but whether the key was accepted since, on
		// another replica, is not: the keys stay unknown.
		return 0, false, heldUnsure, true
	}
	v, ok := vals[0].(string)
	if !ok {
		return 0, false, vals[1] != nil || heldUnsure, false
	}
	return parseOrderID(v)
}

// parseOrderID reads an accepted key's mark: found when it is an order id.
func parseOrderID(v string) (orderID int64, found, unanswered, unknown bool) {
	id, err := strconv.ParseInt(v, 10, 64)
	return id, err == nil, false, false
}

// soldOutFlags remember, per activity, that order answered SOLD_OUT, so
// the flood that follows a sell-out is refused in this process without
// touching order or Redis. A flag lasts only ttl: stock comes back when
// reservations expire or are cancelled, and must be sellable again. When
// it is over, one buy goes to order to look (the probe) while the others
// are still refused, the sold-out flag's version of the one rebuild a
// cache lets through when a hot key expires (caching.md): a one-unit
// SOLD_OUT marks the flag again, the sale's window found closed drops it,
// and any other end leaves the look to the next buy. Without the probe
// every buy that arrived before the first answer came back went to
// order, each ttl, and those were the slowest sold-out answers of the
// spike. A probe out for longer than ttl (order slow to answer) no longer
// holds the others back alone: the next buy looks too, so while order
// cannot answer one buy a ttl (a few more while a sale reopens) asks it
// and the rest are told what it said last.
//
// A probe that places an order shows stock came back, but not how much:
// usually one unit, an order cancelled or expired. So the sale reopens as
// a TCP connection starts (slow start): each order a probe places lets
// one more probe out at once, and only once reopenedAt probes may go out
// together (after reopenedAt-1 placed orders) is the flag dropped. One unit back then costs a SOLD_OUT or
// two at order instead of one for every buy that arrived while its
// placement was on the way (dozens a second at the top of a spike, each
// waiting for a whole batch: docs/gateway.md), and a thousand units back
// are sold at full speed after a few dozen orders. The opening narrows
// only on a one-unit SOLD_OUT, which marks the flag again; an undecided
// end (a multi-unit SOLD_OUT among them) leaves it as wide as it was.
//
// A flag that is over, not being probed and not probed for a ttl is
// dropped by mark's sweep, at most once a ttl, so a replica that sees
// sale after sale sell out holds only the flags marked or probed in the
// last two ttls, not one per sale for good.
type soldOutFlags struct {
	clock clock.Clock
	ttl   time.Duration

	mu        sync.RWMutex
	flags     map[int64]soldOutFlag
	nextSweep time.Time // when mark next drops the flags that are over
	seq       uint64    // probes let through so far: each probe's name
}

// reopenedAt is how many probes out at once drop a flag: at that rate the
// sale is selling again, and the flag would only hold buyers back.
const reopenedAt = 32

// soldOutFlag is one activity's flag: up until until, then looked at by
// up to width probes at once.
type soldOutFlag struct {
	until  time.Time
	width  int       // probes let out at once once until is over: 1 after a mark, one more per order a probe placed
	probes []probe   // those out, oldest first
	last   time.Time // when a probe last went out or ended: a flag probed within a ttl is not swept
}

// probe is one buy let through to look, named by its sequence number (0:
// no probe), so that only its own end (probed) changes the flag.
type probe struct {
	id uint64
	at time.Time
}

// out reports whether p is a probe at all.
func (p probe) out() bool { return p.id != 0 }

// lookEnd is how a probe ended.
type lookEnd int

const (
	// lookUndecided: no answer on stock (a timeout, a refused challenge,
	// a multi-unit SOLD_OUT, a retried key): the next buy looks.
	lookUndecided lookEnd = iota
	// lookPlaced: a buy placed now: stock came back, one more probe may
	// go out at once.
	lookPlaced
	// lookClosed: the sale's window is over; the window answers from now
	// on, not the flag.
	lookClosed
)

func newSoldOutFlags(c clock.Clock, ttl time.Duration) *soldOutFlags {
	return &soldOutFlags{clock: c, ttl: ttl, flags: map[int64]soldOutFlag{}}
}

// looking counts f's probes that still hold a place at now: a probe out
// for longer than ttl no longer does. s.mu must be held.
func (s *soldOutFlags) looking(f soldOutFlag, now time.Time) int {
	n := 0
	for _, p := range f.probes {
		if now.Before(p.at.Add(s.ttl)) {
			n++
		}
	}
	return n
}

// holds reports whether f refuses a buy at now: its ttl is not over, or as
// many probes younger than ttl as its width are out. Like looking, it
// reads f.probes, which check and probed change in place: s.mu must be
// held.
func (s *soldOutFlags) holds(f soldOutFlag, now time.Time) bool {
	return now.Before(f.until) || s.looking(f, now) >= f.width
}

// mark flags the activity as sold out for ttl from now (ending its
// probes and its reopening), first dropping the flags that are over and
// idle, if the last sweep is a ttl old.
func (s *soldOutFlags) mark(activityID int64) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !now.Before(s.nextSweep) {
		for id, f := range s.flags {
			// last is the latest of the mark (until is a ttl after it)
			// and every probe's start, so a ttl after it the flag is
			// over and no probe holds a place.
			if !now.Before(f.last.Add(s.ttl)) {
				delete(s.flags, id)
			}
		}
		s.nextSweep = now.Add(s.ttl)
	}
	s.flags[activityID] = soldOutFlag{until: now.Add(s.ttl), width: 1, last: now}
}

// check reports whether the activity's flag refuses a buy (up) or makes it
// a probe: the flag no longer holds, so this buy asks order, and its
// caller must call probed with the probe once it has an answer or ends
// before asking.
func (s *soldOutFlags) check(activityID int64) (up bool, p probe) {
	now := s.clock.Now()
	s.mu.RLock()
	f, ok := s.flags[activityID]
	held := ok && s.holds(f, now)
	s.mu.RUnlock()
	if !ok {
		return false, probe{}
	}
	if held {
		return true, probe{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok = s.flags[activityID]
	switch {
	case !ok:
		return false, probe{}
	case s.holds(f, now):
		return true, probe{}
	}
	s.seq++
	p = probe{id: s.seq, at: now}
	// Probes out longer than ttl hold no place; they are forgotten here,
	// and their ends change nothing.
	f.probes = append(slices.DeleteFunc(f.probes, func(q probe) bool { return !now.Before(q.at.Add(s.ttl)) }), p)
	f.last = now
	s.flags[activityID] = f
	return false, p
}

// probed ends the probe p of the activity. A placed order widens the
// reopening by one probe, and drops the flag once reopenedAt probes may
// go out together; a closed window drops it; an undecided end frees p's
// place for the next buy. Once the flag was marked again, or p was
// forgotten (out longer than ttl when a later probe went out), p's end
// changes nothing.
func (s *soldOutFlags) probed(activityID int64, p probe, end lookEnd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flags[activityID]
	if !ok {
		return
	}
	i := slices.IndexFunc(f.probes, func(q probe) bool { return q.id == p.id })
	if i < 0 {
		return
	}
	f.probes = slices.Delete(f.probes, i, i+1)
	f.last = s.clock.Now()
	switch end {
	case lookClosed:
		delete(s.flags, activityID)
		return
	case lookPlaced:
		f.width++
		if f.width >= reopenedAt {
			delete(s.flags, activityID)
			return
		}
	}
	s.flags[activityID] = f
}
