// Package redis keeps flash-sale stock in Redis. Each operation is one Lua
// script, so its checks and writes happen atomically on the server in one
// round trip, and scripts run by SHA (EVALSHA) once Redis has them.
//
// Every key of an activity carries the hash tag {act:<id>}, so all keys a
// script touches live in one hash slot and the scripts run unchanged on
// Redis Cluster:
//
//	{act:ID}:meta           hash: total, limit
//	{act:ID}:stock          integer: units left
//	{act:ID}:bought         hash: user id -> units held
//	{act:ID}:idem           hash: "<user>:<idempotency key>" -> order id
//	{act:ID}:res:<orderID>  hash: user, qty, status, idem, expires_at_ms,
//	                        ordered (1 once MarkOrdered ran),
//	                        unpublished (1 once released as unpublished),
//	                        restored (units a refund gave back to the limit),
//	                        refund:<refundID> (units that refund restored)
//	{act:ID}:expiry         sorted set: order id scored by payment deadline (unix ms)
//	{act:ID}:claimed        sorted set: order id scored by its claim's lease deadline (unix ms)
//	{act:ID}:tomb:<orderID> string: a release found no reservation (1 h TTL)
//	{act:ID}:live           string: the run_id of the server whose state of
//	                        the sale is trusted; kept out of the AOF and
//	                        replicas, so a restart or failover fences the
//	                        sale until it is rebuilt (rebuild.lua)
//
// A sale preheated in N > 1 buckets (buckets.go) has these keys once per
// bucket, under the bucket's tag {act:ID:bB}, with a bucket's meta also
// holding gen, xseq, given and received, and two more keys:
//
//	{act:ID:bB}:xout        hash: transfer id -> "<recipient>:<units>", given and not known applied
//	{act:ID:bB}:xin         hash: transfer id -> units, the transfers applied to the bucket
//
// and its own record {act:ID}:meta (total, limit, buckets, gen).
//
// The expiry sorted set is the delay queue of reserved orders; an expiry
// worker's claim moves due entries into the claimed set until it settles
// them (see due.go). The set ActivitiesKey lists every preheated activity
// so an expiry worker can find the queues.
package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/services/inventory"
)

// ReserveScript is the Lua source of Reserve, exported so a benchmark can
// run the very same script through redis-benchmark as the throughput
// ceiling of the hot path.
//
// Keys, in order (all of one activity; ReserveKeys builds them):
//
//	KEYS[1] {act:ID}:meta, KEYS[2] {act:ID}:stock, KEYS[3] {act:ID}:bought,
//	KEYS[4] {act:ID}:idem, KEYS[5] {act:ID}:res:<orderID>, KEYS[6] {act:ID}:expiry,
//	KEYS[7] {act:ID}:tomb:<orderID>, KEYS[8] {act:ID}:live
//
// Arguments: ARGV[1] user id, ARGV[2] quantity, ARGV[3] order id,
// ARGV[4] idempotency key, ARGV[5] payment deadline in unix milliseconds.
// It returns {outcome, order id, remaining} with outcome one of RESERVED,
// REPLAYED, GIVEN_UP, NOT_PREHEATED, FENCED, LIMIT_EXCEEDED, SOLD_OUT.
//
// For redis-benchmark, preheat the activity with a large stock and limit
// and pass __rand_int__ for the user, the order id, the key and the order
// id in KEYS[5], e.g.
//
//	redis-benchmark -r 1000000000 -n 200000 EVAL "$SCRIPT" 7 \
//	  '{act:1}:meta' '{act:1}:stock' '{act:1}:bought' '{act:1}:idem' \
//	  '{act:1}:res:__rand_int__' '{act:1}:expiry' '{act:1}:tomb:__rand_int__' \
//	  '{act:1}:live' __rand_int__ 1 __rand_int__ __rand_int__ 1893456000000
//
// redis-benchmark draws each placeholder independently, so the record's key
// and the order id differ there; the script never derives one from the
// other, so the work per call is the same as in production.
//
//go:embed reserve.lua
var ReserveScript string

var (
	//go:embed release.lua
	releaseSource string
	//go:embed confirm.lua
	confirmSource string
	//go:embed preheat.lua
	preheatSource string
	//go:embed stock.lua
	stockSource string
	//go:embed mark_ordered.lua
	markOrderedSource string
	//go:embed restore_limit.lua
	restoreLimitSource string
	//go:embed fence.lua
	fenceSource string
	//go:embed rebuild.lua
	rebuildSource string

	reserveScript     = goredis.NewScript(ReserveScript)
	releaseScript     = goredis.NewScript(releaseSource)
	confirmScript     = goredis.NewScript(confirmSource)
	preheatScript     = goredis.NewScript(preheatSource)
	stockScript       = goredis.NewScript(stockSource)
	markOrderedScript = goredis.NewScript(markOrderedSource)
	restoreScript     = goredis.NewScript(restoreLimitSource)
	fenceScript       = goredis.NewScript(fenceSource)
	rebuildScript     = goredis.NewScript(rebuildSource)
)

// ActivitiesKey is the set of preheated activity ids. It is global (no hash
// tag): Preheat adds to it in a call of its own, off the hot path.
const ActivitiesKey = "inventory:activities"

// activityKeys are the key names of one activity, or of one bucket of a
// bucketed activity (buckets.go).
type activityKeys struct {
	tag, meta, stock, bought, idem, expiry, claimed, live, xout, xin, rebuilding string
}

// keysOf are the keys of an activity of one bucket, and the sale's own
// record (meta) of a bucketed one.
func keysOf(activityID int64) activityKeys { return keysWithTag(BucketTag(activityID, 0, 1)) }

// keysWithTag builds every key name of an activity or bucket from its
// hash tag: the one place key names are made.
func keysWithTag(tag string) activityKeys {
	return activityKeys{
		tag:     tag,
		meta:    tag + ":meta",
		stock:   tag + ":stock",
		bought:  tag + ":bought",
		idem:    tag + ":idem",
		expiry:  tag + ":expiry",
		claimed: tag + ":claimed",
		live:    tag + ":live",
		xout:    tag + ":xout",
		xin:     tag + ":xin",
		// rebuilding is a bucketed sale's rebuild lock, in its own slot.
		rebuilding: tag + ":rebuilding",
	}
}

func (k activityKeys) reservation(orderID int64) string {
	return k.tag + ":res:" + strconv.FormatInt(orderID, 10)
}

// tombstone is the key a release that found no reservation leaves for
// the order (release.lua, reserve.lua).
func (k activityKeys) tombstone(orderID int64) string {
	return k.tag + ":tomb:" + strconv.FormatInt(orderID, 10)
}

// TombstoneTTL is how long a tombstone refuses its order's reservation:
// far longer than a reservation can be on its way (a batch's deadline is
// seconds), short enough that tombstones do not pile up.
const TombstoneTTL = time.Hour

// ReserveKeys returns the KEYS of ReserveScript for an order, in order.
func ReserveKeys(activityID, orderID int64) []string {
	return reserveKeysIn(keysOf(activityID), orderID)
}

// ReserveKeysInBucket returns the KEYS of ReserveScript for an order in
// bucket b of a sale in n buckets.
func ReserveKeysInBucket(activityID, orderID int64, b, n int) []string {
	return reserveKeysIn(bucketKeys(activityID, b, n), orderID)
}

func reserveKeysIn(k activityKeys, orderID int64) []string {
	return []string{k.meta, k.stock, k.bought, k.idem, k.reservation(orderID), k.expiry, k.tombstone(orderID), k.live}
}

// ExpiryKey is the name of an activity's expiry queue: a sorted set of
// reserved order ids scored by their payment deadline in unix milliseconds.
func ExpiryKey(activityID int64) string { return keysOf(activityID).expiry }

// Store is the inventory store on Redis. It is safe for concurrent use.
type Store struct {
	rdb goredis.Cmdable
	// buckets remembers the preheated activities' numbers of buckets.
	buckets *cache.Memo[int64, int]
}

// bucketsRemembered bounds the activities whose number of buckets a
// Store remembers: far more than sell at once.
const bucketsRemembered = 1 << 12

// NewStore returns a Store on rdb: a client, a cluster client, or (on
// the hot path) one's auto-pipeliner, redisclient.Coalesced.
func NewStore(rdb goredis.Cmdable) *Store {
	return &Store{rdb: rdb, buckets: cache.NewMemo[int64, int](bucketsRemembered)}
}

// Preheat loads an activity's stock and per-user limit, split into
// buckets (1: the keys of one slot; more: buckets.go), and registers the
// activity in ActivitiesKey. Stock already there is kept, so a repeated
// preheat never resets sold stock, and never unfences a fenced sale; a
// repeat with another number of buckets fails with ErrInvalid. It
// returns the remaining stock.
func (s *Store) Preheat(ctx context.Context, activityID, stock, perUserLimit int64, buckets int) (int64, error) {
	var remaining int64
	if buckets > 1 {
		var err error
		if remaining, err = s.preheatBuckets(ctx, activityID, stock, perUserLimit, buckets); err != nil {
			return 0, err
		}
	} else {
		have, err := s.bucketsOf(ctx, activityID)
		if err != nil {
			return 0, fmt.Errorf("preheat activity %d: %w", activityID, err)
		}
		if have != 1 {
			return 0, fmt.Errorf("preheat activity %d in one bucket: %w: it was preheated in %d", activityID, inventory.ErrInvalid, have)
		}
		k := keysOf(activityID)
		if remaining, err = preheatScript.Run(ctx, s.rdb, []string{k.meta, k.stock, k.live}, stock, perUserLimit).Int64(); err != nil {
			return 0, fmt.Errorf("preheat activity %d: %w", activityID, err)
		}
	}
	if err := s.rdb.SAdd(ctx, ActivitiesKey, activityID).Err(); err != nil {
		return 0, fmt.Errorf("preheat activity %d: register: %w", activityID, err)
	}
	return remaining, nil
}

// Reserve runs ReserveScript for r. A replay (same user and idempotency
// key, or same order id) answers with the first order id and Replayed set.
// An order id is never reserved twice, even after its reservation was
// released: callers take a fresh order id for every new attempt. On
// ErrSoldOut and ErrLimitExceeded the result still carries Remaining.
//
// In a bucketed activity the reservation runs in the buyer's bucket, and
// Remaining is that bucket's stock. A bucket without enough stock borrows
// from the others and tries again (ReserveBatch); SOLD_OUT means the
// other buckets had nothing to give either.
func (s *Store) Reserve(ctx context.Context, r inventory.ReserveRequest) (inventory.ReserveResult, error) {
	n, err := s.bucketsOf(ctx, r.ActivityID)
	if err != nil {
		return inventory.ReserveResult{}, fmt.Errorf("reserve activity %d order %d: %w", r.ActivityID, r.OrderID, err)
	}
	keys := ReserveKeysInBucket(r.ActivityID, r.OrderID, bucketOf(r.UserID, n), n)
	answers := []inventory.ReserveAnswer{answerReserve(r, reserveScript.Run(ctx, s.rdb, keys, reserveArgs(r)...))}
	for range refillRounds {
		if n == 1 || len(s.borrowFor(ctx, []inventory.ReserveRequest{r}, []int{n}, answers)) == 0 {
			break
		}
		answers[0] = answerReserve(r, reserveScript.Run(ctx, s.rdb, keys, reserveArgs(r)...))
	}
	return answers[0].Result, answers[0].Err
}

// ReserveBatch runs ReserveScript for every request of rs in one pipeline
// (one round trip; on Redis Cluster, one per node) and answers each as
// Reserve would, in the order of rs. Each script is atomic on its own, so
// a batch decides exactly what the same requests sent one by one in that
// order would.
//
// A request of a bucketed activity that its bucket answered SOLD_OUT
// borrows for it (refill: the bucket's sold-out requests together) and is
// sent again, for at most refillRounds rounds.
func (s *Store) ReserveBatch(ctx context.Context, rs []inventory.ReserveRequest) ([]inventory.ReserveAnswer, error) {
	ns := make([]int, len(rs))
	for i, r := range rs {
		n, err := s.bucketsOf(ctx, r.ActivityID)
		if err != nil {
			return nil, fmt.Errorf("reserve %d orders: %w", len(rs), err)
		}
		ns[i] = n
	}
	answers := make([]inventory.ReserveAnswer, len(rs))
	send := func(at []int) error {
		cmds, err := s.evalEach(ctx, reserveScript, len(at), func(j int) ([]string, []any) {
			r := rs[at[j]]
			n := ns[at[j]]
			return ReserveKeysInBucket(r.ActivityID, r.OrderID, bucketOf(r.UserID, n), n), reserveArgs(r)
		})
		if err != nil {
			return fmt.Errorf("reserve %d orders: %w", len(at), err)
		}
		for j, cmd := range cmds {
			answers[at[j]] = answerReserve(rs[at[j]], cmd)
		}
		return nil
	}
	all := make([]int, len(rs))
	for i := range all {
		all[i] = i
	}
	if err := send(all); err != nil {
		return nil, err
	}
	for range refillRounds {
		again := s.borrowFor(ctx, rs, ns, answers)
		if len(again) == 0 {
			break
		}
		if err := send(again); err != nil {
			return nil, err
		}
	}
	return answers, nil
}

// borrowFor looks again at the sale of every request of a bucketed
// activity that its bucket answered SOLD_OUT: the request stays sold out
// when all the buckets together hold less than it asks for; otherwise
// its bucket is refilled (with what its sold-out requests need together)
// and the request is returned to be sent again. A failed transfer fails
// the requests of its bucket: units may be in transit, so SOLD_OUT would
// not be true.
func (s *Store) borrowFor(ctx context.Context, rs []inventory.ReserveRequest, ns []int, answers []inventory.ReserveAnswer) []int {
	type bucket struct {
		activity int64
		b        int
	}
	need := map[bucket]int64{}
	members := map[bucket][]int{}
	var order []bucket
	for i, a := range answers {
		if ns[i] == 1 || !errors.Is(a.Err, inventory.ErrSoldOut) {
			continue
		}
		k := bucket{rs[i].ActivityID, bucketOf(rs[i].UserID, ns[i])}
		if _, ok := need[k]; !ok {
			order = append(order, k)
		}
		need[k] += rs[i].Quantity
		members[k] = append(members[k], i)
	}
	var again []int
	for _, k := range order {
		n := ns[members[k][0]]
		all, err := s.borrow(ctx, k.activity, n, k.b, need[k])
		if err != nil {
			for _, i := range members[k] {
				answers[i] = inventory.ReserveAnswer{Err: fmt.Errorf("reserve activity %d order %d: borrow: %w", k.activity, rs[i].OrderID, err)}
			}
			continue
		}
		for _, i := range members[k] {
			if rs[i].Quantity <= all {
				again = append(again, i)
			}
		}
	}
	return again
}

// reserveArgs are ReserveScript's ARGV for r.
func reserveArgs(r inventory.ReserveRequest) []any {
	return []any{r.UserID, r.Quantity, r.OrderID, r.IdempotencyKey, r.ExpiresAt.UnixMilli()}
}

// answerReserve reads ReserveScript's reply to r.
func answerReserve(r inventory.ReserveRequest, cmd *goredis.Cmd) inventory.ReserveAnswer {
	reply, err := cmd.Slice()
	if err != nil {
		return inventory.ReserveAnswer{Err: fmt.Errorf("reserve activity %d order %d: %w", r.ActivityID, r.OrderID, err)}
	}
	outcome, orderID, remaining, err := parseReserveReply(reply)
	if err != nil {
		return inventory.ReserveAnswer{Err: fmt.Errorf("reserve activity %d order %d: %w", r.ActivityID, r.OrderID, err)}
	}
	res := inventory.ReserveResult{OrderID: orderID, Remaining: remaining}
	switch outcome {
	case "RESERVED":
		return inventory.ReserveAnswer{Result: res}
	case "REPLAYED":
		res.Replayed = true
		return inventory.ReserveAnswer{Result: res}
	case "GIVEN_UP":
		err = inventory.ErrGivenUp
	case "NOT_PREHEATED":
		err = inventory.ErrNotPreheated
	case "FENCED":
		err = inventory.ErrFenced
	case "LIMIT_EXCEEDED":
		err = inventory.ErrLimitExceeded
	case "SOLD_OUT":
		err = inventory.ErrSoldOut
	default:
		err = fmt.Errorf("unexpected outcome %q", outcome)
	}
	return inventory.ReserveAnswer{Result: res, Err: fmt.Errorf("reserve activity %d user %d: %w", r.ActivityID, r.UserID, err)}
}

func parseReserveReply(reply []any) (outcome string, orderID, remaining int64, err error) {
	if len(reply) != 3 {
		return "", 0, 0, fmt.Errorf("unexpected reply %v", reply)
	}
	outcome, ok1 := reply[0].(string)
	order, ok2 := reply[1].(string)
	remaining, ok3 := reply[2].(int64)
	if !ok1 || !ok2 || !ok3 {
		return "", 0, 0, fmt.Errorf("unexpected reply %v", reply)
	}
	orderID, err = strconv.ParseInt(order, 10, 64)
	if err != nil {
		return "", 0, 0, fmt.Errorf("order id in reply: %w", err)
	}
	return outcome, orderID, remaining, nil
}

// Release gives a reserved order's stock and the buyer's limit back,
// forgets the buyer's idempotency key (so a retry with it may reserve
// again) and takes the order off the expiry queue. It reports false when
// the reservation was already released; a confirmed reservation fails with
// ErrAlreadyConfirmed and is left alone. It ignores the ordered mark:
// expiry and cancellation release stored orders.
func (s *Store) Release(ctx context.Context, activityID, orderID int64) (bool, error) {
	return s.release(ctx, activityID, orderID, false)
}

// ReleaseUnpublished releases as Release does for a caller that could not
// publish the order's event, and records the release as unpublished so
// that MarkOrdered answers MarkDrop for a late delivery. When the
// reservation is already marked ordered it fails with ErrAlreadyOrdered
// and changes nothing. When there is no reservation (yet) it reports
// false: the tombstone the release leaves refuses the reservation should
// it still arrive, so nothing stays held either way.
func (s *Store) ReleaseUnpublished(ctx context.Context, activityID, orderID int64) (bool, error) {
	return s.release(ctx, activityID, orderID, true)
}

func (s *Store) release(ctx context.Context, activityID, orderID int64, unpublished bool) (bool, error) {
	n, err := s.bucketsOf(ctx, activityID)
	if err != nil {
		return false, fmt.Errorf("release activity %d order %d: %w", activityID, orderID, err)
	}
	if n > 1 {
		as, err := s.releaseEach(ctx, []inventory.OrderRef{{ActivityID: activityID, OrderID: orderID}}, unpublished)
		if err != nil {
			return false, err
		}
		return as[0].Released, as[0].Err
	}
	keys, args := releaseCall(keysOf(activityID), orderID, unpublished)
	outcome, err := releaseScript.Run(ctx, s.rdb, keys, args...).Text()
	return answerRelease(activityID, orderID, unpublished, outcome, err)
}

// ReleaseBatch runs the release script for every order of refs in one
// pipeline (one round trip; on Redis Cluster, one per node) and answers
// in the order of refs, each as Release would have.
func (s *Store) ReleaseBatch(ctx context.Context, refs []inventory.OrderRef) ([]inventory.ReleaseAnswer, error) {
	return s.releaseEach(ctx, refs, false)
}

// releaseEach runs the release script for every order of refs in its
// bucket (every bucket when none holds it, buckets.go), in one pipeline.
func (s *Store) releaseEach(ctx context.Context, refs []inventory.OrderRef, unpublished bool) ([]inventory.ReleaseAnswer, error) {
	cmds, err := s.onOwners(ctx, releaseScript, refs, func(i int, k activityKeys) ([]string, []any) {
		return releaseCall(k, refs[i].OrderID, unpublished)
	})
	if err != nil {
		return nil, fmt.Errorf("release %d orders: %w", len(refs), err)
	}
	answers := make([]inventory.ReleaseAnswer, len(refs))
	for i, cs := range cmds {
		outcome, err := decisive(cs, "NOT_FOUND").Text()
		answers[i].Released, answers[i].Err = answerRelease(refs[i].ActivityID, refs[i].OrderID, unpublished, outcome, err)
	}
	return answers, nil
}

// releaseCall is the release script's KEYS and ARGV for an order in the
// activity (or bucket) of k.
func releaseCall(k activityKeys, orderID int64, unpublished bool) ([]string, []any) {
	flag := "0"
	if unpublished {
		flag = "1"
	}
	return []string{k.stock, k.bought, k.idem, k.reservation(orderID), k.expiry, k.tombstone(orderID)},
		[]any{orderID, flag, TombstoneTTL.Milliseconds()}
}

// answerRelease reads the release script's reply for an order.
func answerRelease(activityID, orderID int64, unpublished bool, outcome string, err error) (bool, error) {
	if err != nil {
		return false, fmt.Errorf("release activity %d order %d: %w", activityID, orderID, err)
	}
	switch outcome {
	case "RELEASED":
		return true, nil
	case "ALREADY_RELEASED":
		return false, nil
	case "CONFIRMED":
		err = inventory.ErrAlreadyConfirmed
	case "ORDERED":
		err = inventory.ErrAlreadyOrdered
	case "NOT_FOUND":
		if unpublished {
			return false, nil
		}
		err = inventory.ErrReservationNotFound
	default:
		err = fmt.Errorf("unexpected outcome %q", outcome)
	}
	return false, fmt.Errorf("release activity %d order %d: %w", activityID, orderID, err)
}

// MarkOrdered runs the mark script for every order of refs in one
// pipeline (one round trip; on Redis Cluster, one per node) and returns
// the outcomes in the order of refs.
func (s *Store) MarkOrdered(ctx context.Context, refs []inventory.OrderRef) ([]inventory.MarkOutcome, error) {
	cmds, err := s.onOwners(ctx, markOrderedScript, refs, func(i int, k activityKeys) ([]string, []any) {
		return []string{k.reservation(refs[i].OrderID), k.live, k.tombstone(refs[i].OrderID)}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("mark %d orders: %w", len(refs), err)
	}
	outcomes := make([]inventory.MarkOutcome, len(refs))
	for i, cs := range cmds {
		// Of an order no bucket held (run in every bucket), a DROP wins:
		// a bucket's tombstone says the order was given up. Else a
		// MARKED: the reservation arrived meanwhile, or a bucket is
		// fenced, and then the whole sale is (Fenced) and the rebuild
		// counts it. A fenced bucket's guess never overrules the
		// evidence of another.
		outcomes[i] = inventory.MarkNotFound
		for _, c := range cs {
			text, err := c.Text()
			switch o := inventory.MarkOutcome(text); {
			case err != nil:
				return nil, fmt.Errorf("mark order %d of activity %d: %w", refs[i].OrderID, refs[i].ActivityID, err)
			case o == inventory.MarkDrop:
				outcomes[i] = o
			case o == inventory.MarkMarked:
				if outcomes[i] != inventory.MarkDrop {
					outcomes[i] = o
				}
			case o != inventory.MarkNotFound:
				return nil, fmt.Errorf("mark order %d of activity %d: unexpected outcome %q", refs[i].OrderID, refs[i].ActivityID, o)
			}
		}
	}
	return outcomes, nil
}

// evalEach runs script n times in one pipeline, the i-th time with the
// keys and arguments call(i) gives, and returns the commands to read the
// replies from, in order. Scripts go by SHA; the calls that Redis answers
// NOSCRIPT (it lost the script: a restart, SCRIPT FLUSH, a failover) did
// not run, so the script is loaded and only those are sent again.
func (s *Store) evalEach(ctx context.Context, script *goredis.Script, n int, call func(i int) ([]string, []any)) ([]*goredis.Cmd, error) {
	cmds := make([]*goredis.Cmd, n)
	send := func(indexes []int) error {
		_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, i := range indexes {
				keys, args := call(i)
				cmds[i] = script.EvalSha(ctx, p, keys, args...)
			}
			return nil
		})
		return err
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	_ = send(all) // each command holds its own error, read below
	var again []int
	for i, cmd := range cmds {
		if goredis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		if err := script.Load(ctx, s.rdb).Err(); err != nil {
			return nil, fmt.Errorf("load script: %w", err)
		}
		_ = send(again)
	}
	// A reply error (a script that failed) belongs to its call; any other
	// error (a lost connection, the context) means the pipeline as a whole
	// may not have run, which the caller must hear as such.
	for _, cmd := range cmds {
		var reply goredis.Error
		if err := cmd.Err(); err != nil && !errors.As(err, &reply) {
			return nil, err
		}
	}
	return cmds, nil
}

// Confirm marks a reserved order as paid and takes it off the expiry queue.
// Confirming twice is harmless; a released reservation fails with
// ErrAlreadyReleased.
func (s *Store) Confirm(ctx context.Context, activityID, orderID int64) error {
	outcome, err := s.onOwner(ctx, confirmScript, activityID, orderID, func(k activityKeys) ([]string, []any) {
		return []string{k.reservation(orderID), k.expiry}, []any{orderID}
	})
	if err != nil {
		return fmt.Errorf("confirm activity %d order %d: %w", activityID, orderID, err)
	}
	switch outcome {
	case "CONFIRMED":
		return nil
	case "RELEASED":
		err = inventory.ErrAlreadyReleased
	case "NOT_FOUND":
		err = inventory.ErrReservationNotFound
	default:
		err = fmt.Errorf("unexpected outcome %q", outcome)
	}
	return fmt.Errorf("confirm activity %d order %d: %w", activityID, orderID, err)
}

// RestoreLimit gives quantity units of a refunded, confirmed order back to
// its buyer's per-user limit, once per refund id: it reports false when
// refundID restored them already. It fails with ErrReservationNotFound,
// ErrNotConfirmed for a reservation that is not paid, and
// ErrRestoreTooMany when the order's refunds would restore more units than
// it reserved.
func (s *Store) RestoreLimit(ctx context.Context, activityID, orderID, refundID, quantity int64) (bool, error) {
	outcome, err := s.onOwner(ctx, restoreScript, activityID, orderID, func(k activityKeys) ([]string, []any) {
		return []string{k.bought, k.reservation(orderID)}, []any{refundID, quantity}
	})
	if err != nil {
		return false, fmt.Errorf("restore limit of activity %d order %d: %w", activityID, orderID, err)
	}
	switch outcome {
	case "RESTORED":
		return true, nil
	case "ALREADY_RESTORED":
		return false, nil
	case "NOT_FOUND":
		err = inventory.ErrReservationNotFound
	case "NOT_CONFIRMED":
		err = inventory.ErrNotConfirmed
	case "TOO_MANY":
		err = inventory.ErrRestoreTooMany
	default:
		err = fmt.Errorf("unexpected outcome %q", outcome)
	}
	return false, fmt.Errorf("restore limit of activity %d order %d refund %d: %w", activityID, orderID, refundID, err)
}

// Stock returns an activity's remaining and total stock.
//
// Of a bucketed activity it is the sum of the buckets' stock and of the
// units in transit between them (bucketedStock).
func (s *Store) Stock(ctx context.Context, activityID int64) (inventory.Stock, error) {
	n, err := s.bucketsOf(ctx, activityID)
	if err != nil {
		return inventory.Stock{}, fmt.Errorf("stock of activity %d: %w", activityID, err)
	}
	if n > 1 {
		return s.bucketedStock(ctx, activityID, n)
	}
	k := keysOf(activityID)
	reply, err := stockScript.Run(ctx, s.rdb, []string{k.meta, k.stock}).Slice()
	if err != nil {
		return inventory.Stock{}, fmt.Errorf("stock of activity %d: %w", activityID, err)
	}
	if len(reply) == 1 && reply[0] == "NOT_PREHEATED" {
		return inventory.Stock{}, fmt.Errorf("stock of activity %d: %w", activityID, inventory.ErrNotPreheated)
	}
	if len(reply) == 3 {
		remaining, ok1 := reply[1].(int64)
		total, ok2 := reply[2].(int64)
		if ok1 && ok2 {
			return inventory.Stock{Remaining: remaining, Total: total}, nil
		}
	}
	return inventory.Stock{}, fmt.Errorf("stock of activity %d: unexpected reply %v", activityID, reply)
}

// Reservation returns the reservation of an order.
func (s *Store) Reservation(ctx context.Context, activityID, orderID int64) (inventory.Reservation, error) {
	where, err := s.locate(ctx, []inventory.OrderRef{{ActivityID: activityID, OrderID: orderID}})
	if err != nil {
		return inventory.Reservation{}, fmt.Errorf("reservation of order %d: %w", orderID, err)
	}
	k := keysOf(activityID)
	if p := where[0]; p.n > 1 {
		k = bucketKeys(activityID, max(p.bucket, 0), p.n)
	}
	fields, err := s.rdb.HGetAll(ctx, k.reservation(orderID)).Result()
	if err != nil {
		return inventory.Reservation{}, fmt.Errorf("reservation of order %d: %w", orderID, err)
	}
	if len(fields) == 0 {
		return inventory.Reservation{}, fmt.Errorf("reservation of order %d in activity %d: %w", orderID, activityID, inventory.ErrReservationNotFound)
	}
	var errs []error
	parse := func(name string) int64 {
		n, err := strconv.ParseInt(fields[name], 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", name, err))
		}
		return n
	}
	r := inventory.Reservation{
		ActivityID:     activityID,
		OrderID:        orderID,
		UserID:         parse("user"),
		Quantity:       parse("qty"),
		Status:         inventory.Status(fields["status"]),
		IdempotencyKey: fields["idem"],
		ExpiresAt:      time.UnixMilli(parse("expires_at_ms")),
		Ordered:        fields["ordered"] == "1",
		Unpublished:    fields["unpublished"] == "1",
	}
	if err := errors.Join(errs...); err != nil {
		return inventory.Reservation{}, fmt.Errorf("reservation of order %d: %w", orderID, err)
	}
	return r, nil
}

// onOwner runs script for one order: as today in an activity of one
// bucket, in the bucket of its reservation (or every bucket, the decisive
// reply answering) in a bucketed one. It returns the reply's text.
func (s *Store) onOwner(ctx context.Context, script *goredis.Script, activityID, orderID int64,
	call func(k activityKeys) ([]string, []any)) (string, error) {
	n, err := s.bucketsOf(ctx, activityID)
	if err != nil {
		return "", err
	}
	if n == 1 {
		keys, args := call(keysOf(activityID))
		return script.Run(ctx, s.rdb, keys, args...).Text()
	}
	cmds, err := s.onOwners(ctx, script, []inventory.OrderRef{{ActivityID: activityID, OrderID: orderID}},
		func(_ int, k activityKeys) ([]string, []any) { return call(k) })
	if err != nil {
		return "", err
	}
	return decisive(cmds[0], "NOT_FOUND").Text()
}
