package redis

// A sale of one bucket keeps every key under {act:ID}, in one slot, so one
// Redis primary carries the whole sale. A sale preheated with N > 1
// buckets splits its stock (分桶, 库存拆分) into N buckets, each with the
// full set of keys under a tag of its own ({act:ID:bB}, salted when
// needed so that the buckets' slots spread over the slot range, below).
// A buyer always lands in the bucket bucketOf(user, N), so the per-user
// count, the idempotency keys and the reservation live in the slot of the
// stock they took from, and reserve.lua runs unchanged in it.
//
// The sale's own record stays at {act:ID}:meta (total, limit, buckets,
// gen). When a buyer's bucket runs dry while others hold stock, the
// reservation borrows: units move from the richest bucket in two steps,
// each one script in its own slot (transfer_out.lua journals the transfer
// in the donor's slot, transfer_in.lua applies it once in the
// recipient's), and the reservation is tried again. A crash between the
// steps leaves the journal entry, which RepairTransfers completes.
//
// Calls that name only an order (release, confirm, mark, restore, read)
// find its bucket by the reservation record (one EXISTS per bucket, one
// pipeline); an order no bucket holds yet is tried in every bucket, where
// the others answer as for an unknown order (and a release leaves its
// tombstone in each, which is harmless: order ids are never reused).

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/cache"
	"github.com/flashsale/flashsale/services/inventory"
)

var (
	//go:embed transfer_out.lua
	transferOutSource string
	//go:embed transfer_in.lua
	transferInSource string
	//go:embed bucket_reset.lua
	bucketResetSource string
	//go:embed preheat_sale.lua
	preheatSaleSource string
	//go:embed bucket_stock.lua
	bucketStockSource string
	//go:embed rebuild_lock.lua
	rebuildLockSource string

	transferOutScript = goredis.NewScript(transferOutSource)
	transferInScript  = goredis.NewScript(transferInSource)
	bucketResetScript = goredis.NewScript(bucketResetSource)
	preheatSaleScript = goredis.NewScript(preheatSaleSource)
	bucketStockScript = goredis.NewScript(bucketStockSource)
	rebuildLockScript = goredis.NewScript(rebuildLockSource)
)

// slots is the number of Redis Cluster hash slots.
const slots = 16384

// refillRounds bounds how often one reservation borrows and tries again
// before it is answered SOLD_OUT although the buckets together still
// held enough at the last look: other buyers took what it borrowed, each
// time. Every round either sells or moves stock, so it ends long before
// under any real load; the bound only stops a livelock.
const refillRounds = 16

// KeySlot is CLUSTER KEYSLOT: the CRC-16/XMODEM of the key's first
// non-empty {tag}, or of the whole key, modulo 16384.
func KeySlot(key string) uint16 {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % slots
}

type tagKey struct {
	activity        int64
	bucket, buckets int
}

// tagsRemembered bounds the tags remembered: those of a thousand sales
// in the most buckets, a few MiB.
const tagsRemembered = 1 << 14

// tags remembers BucketTag's answers: finding a tag hashes a few names.
var tags = cache.NewMemo[tagKey, string](tagsRemembered)

// BucketTag is the hash tag of bucket b of a sale in n buckets: {act:ID}
// for a sale of one bucket (the keys of an unbucketed sale, unchanged),
// else {act:ID:bB}, salted ({act:ID:bB.S}, the first S that fits) so
// that its slot lies within a window around the centre of the b-th of n
// equal shares of the slot range. redis-cli --cluster create gives each
// primary an equal run of slots, so on 3 primaries 2 buckets land on the
// first and the last, 3 on one each and 4 on all three (two on the
// middle one); TestBucketsSpreadOverThePrimaries holds it on a cluster.
func BucketTag(activityID int64, bucket, buckets int) string {
	if buckets <= 1 {
		return "{act:" + strconv.FormatInt(activityID, 10) + "}"
	}
	k := tagKey{activityID, bucket, buckets}
	if t, ok := tags.Load(k); ok {
		return t
	}
	centre := (2*bucket + 1) * slots / (2 * buckets)
	half := max(slots/(8*buckets), 1)
	name := "act:" + strconv.FormatInt(activityID, 10) + ":b" + strconv.Itoa(bucket)
	tag := name
	for salt := 1; ; salt++ {
		if s := int(KeySlot(tag)); s >= centre-half && s < centre+half {
			break
		}
		tag = name + "." + strconv.Itoa(salt)
	}
	tag = "{" + tag + "}"
	tags.Store(k, tag)
	return tag
}

// bucketOf is the bucket of a buyer in a sale of n buckets: a mix of the
// user id (ids may share their low bits) modulo n, the same on every
// replica and every call.
func bucketOf(userID int64, n int) int {
	if n <= 1 {
		return 0
	}
	z := uint64(userID) + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return int(z % uint64(n))
}

// BucketOf is bucketOf for tests and tools: the bucket userID buys from.
func BucketOf(userID int64, buckets int) int { return bucketOf(userID, buckets) }

// bucketKeys are the key names of bucket b of a sale in n buckets.
func bucketKeys(activityID int64, b, n int) activityKeys {
	return keysWithTag(BucketTag(activityID, b, n))
}

// BucketStockKey is the stock key of bucket b of a sale in n buckets.
func BucketStockKey(activityID int64, bucket, buckets int) string {
	return bucketKeys(activityID, bucket, buckets).stock
}

// BucketTransferKeys are the journal of transfers bucket b gave (and
// has not seen applied) and the set of transfers applied to it.
func BucketTransferKeys(activityID int64, bucket, buckets int) (out, in string) {
	k := bucketKeys(activityID, bucket, buckets)
	return k.xout, k.xin
}

// bucketsOf returns the number of buckets of a sale: 1 for a sale
// preheated without buckets or not preheated at all. The number never
// changes once preheated, so it is remembered. A sale whose own record is
// missing is taken for one slot here, on every buy's path, with one read:
// its scripts then answer NOT_PREHEATED or FENCED, refusing, never
// selling. Only the fence check and the rebuild look further
// (bucketsOfPreheated).
func (s *Store) bucketsOf(ctx context.Context, activityID int64) (int, error) {
	n, _, err := s.bucketsRecorded(ctx, activityID)
	return n, err
}

// bucketsOfPreheated is bucketsOf for a sale known to have been preheated
// (listed in ActivitiesKey, or being rebuilt): should its own record be
// lost with its primary's data while its buckets live on, the number is
// read from the buckets' records, so the sale is fenced and rebuilt as the
// buckets it is, never as a second, one-slot sale beside them.
func (s *Store) bucketsOfPreheated(ctx context.Context, activityID int64) (int, error) {
	n, recorded, err := s.bucketsRecorded(ctx, activityID)
	if err != nil || recorded {
		return n, err
	}
	return s.bucketsFromBuckets(ctx, activityID)
}

// bucketsRecorded reads the number of buckets from the sale's own record
// (remembered once read); recorded is false when there is no record.
func (s *Store) bucketsRecorded(ctx context.Context, activityID int64) (n int, recorded bool, err error) {
	if n, ok := s.buckets.Load(activityID); ok {
		return n, true, nil
	}
	v, err := s.rdb.HMGet(ctx, keysOf(activityID).meta, "total", "buckets").Result()
	if err != nil {
		return 0, false, fmt.Errorf("buckets of activity %d: %w", activityID, err)
	}
	if v[0] == nil {
		return 1, false, nil
	}
	n = 1
	if str, ok := v[1].(string); ok {
		if n, err = strconv.Atoi(str); err != nil || n < 1 {
			return 0, false, fmt.Errorf("buckets of activity %d: %q", activityID, str)
		}
	}
	s.buckets.Store(activityID, n)
	return n, true, nil
}

// bucketsFromBuckets looks for a sale's buckets when its own record is
// missing (bucketsOfPreheated): for every number of buckets a sale may have, the record of its
// first bucket under that number says whether the sale has that many
// (one pipeline of HGETs, on the cold path of a replica that never cached
// the number). 1 when none does: the sale is not preheated, or was
// preheated in one slot.
func (s *Store) bucketsFromBuckets(ctx context.Context, activityID int64) (int, error) {
	cmds := make([]*goredis.StringCmd, 0, inventory.MaxBuckets-1)
	_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for n := 2; n <= inventory.MaxBuckets; n++ {
			cmds = append(cmds, p.HGet(ctx, bucketKeys(activityID, 0, n).meta, "buckets"))
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return 0, fmt.Errorf("buckets of activity %d: %w", activityID, err)
	}
	for i, c := range cmds {
		if n := i + 2; c.Val() == strconv.Itoa(n) {
			s.buckets.Store(activityID, n)
			return n, nil
		}
	}
	return 1, nil
}

// preheatBuckets writes the sale's record and then preheats each bucket
// with its share of the stock (the first stock%n buckets one unit more).
// Every step keeps what exists, so running it again after a crash
// finishes it.
func (s *Store) preheatBuckets(ctx context.Context, activityID, stock, perUserLimit int64, n int) (int64, error) {
	have, err := preheatSaleScript.Run(ctx, s.rdb, []string{keysOf(activityID).meta}, stock, perUserLimit, n).Int()
	if err != nil {
		return 0, fmt.Errorf("preheat activity %d: %w", activityID, err)
	}
	if have != n {
		return 0, fmt.Errorf("preheat activity %d in %d buckets: %w: it was preheated in %d", activityID, n, inventory.ErrInvalid, have)
	}
	var remaining int64
	for b := range n {
		share := stock / int64(n)
		if int64(b) < stock%int64(n) {
			share++
		}
		k := bucketKeys(activityID, b, n)
		got, err := preheatScript.Run(ctx, s.rdb, []string{k.meta, k.stock, k.live}, share, perUserLimit).Int64()
		if err == nil {
			// The bucket's record carries the sale's number of buckets
			// too, should the sale's own record be lost (bucketsOf).
			err = s.rdb.HSet(ctx, k.meta, "buckets", n).Err()
		}
		if err != nil {
			return 0, fmt.Errorf("preheat activity %d bucket %d: %w", activityID, b, err)
		}
		remaining += got
	}
	s.buckets.Store(activityID, n)
	return remaining, nil
}

// refill moves stock into bucket b of a sale in n buckets from the
// others, richest first, until b holds need units or the others are
// empty, given the buckets' stocks as just read. It takes at least half
// of a donor's stock, so a bucket that keeps running dry borrows rarely.
func (s *Store) refill(ctx context.Context, activityID int64, n, b int, need int64, stocks []int64) error {
	donors := make([]int, 0, n-1)
	for d := range n {
		if d != b && stocks[d] > 0 {
			donors = append(donors, d)
		}
	}
	slices.SortFunc(donors, func(x, y int) int { return int(stocks[y] - stocks[x]) })
	moved := stocks[b]
	for _, d := range donors {
		if moved >= need {
			break
		}
		units := min(stocks[d], max(need-moved, (stocks[d]+1)/2))
		got, err := s.transfer(ctx, activityID, n, d, b, units)
		moved += got
		if err != nil {
			return err
		}
	}
	return nil
}

// bucketStocks reads every bucket (bucket_stock.lua, one pipeline) and
// returns each one's stock and the sale's remaining stock: their sum
// with the units in transit between buckets, exact whatever transfers
// ran between the reads.
func (s *Store) bucketStocks(ctx context.Context, activityID int64, n int) ([]int64, int64, error) {
	cmds, err := s.evalEach(ctx, bucketStockScript, n, func(b int) ([]string, []any) {
		k := bucketKeys(activityID, b, n)
		return []string{k.stock, k.meta}, nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("stock of the buckets of activity %d: %w", activityID, err)
	}
	stocks := make([]int64, n)
	var remaining int64
	for b, c := range cmds {
		v, err := c.Int64Slice()
		if err != nil || len(v) != 3 {
			return nil, 0, fmt.Errorf("stock of activity %d bucket %d: %v %w", activityID, b, v, err)
		}
		stocks[b] = v[0]
		remaining += v[0] + v[1] - v[2]
	}
	return stocks, remaining, nil
}

// transfer moves up to units from bucket from to bucket to: the donor's
// step takes and journals them, the recipient's applies them once, and
// the journal entry goes. It returns the units that arrived. An error
// after the first step leaves the units in transit, in the journal,
// for RepairTransfers.
func (s *Store) transfer(ctx context.Context, activityID int64, n, from, to int, units int64) (int64, error) {
	id, took, err := s.transferOut(ctx, activityID, n, from, to, units)
	if err != nil || took == 0 {
		return 0, err
	}
	applied, _, err := s.completeTransfer(ctx, activityID, n, from, id, to, took)
	return applied, err
}

// transferOut is a transfer's first step (transfer_out.lua).
func (s *Store) transferOut(ctx context.Context, activityID int64, n, from, to int, units int64) (string, int64, error) {
	k := bucketKeys(activityID, from, n)
	reply, err := transferOutScript.Run(ctx, s.rdb, []string{k.stock, k.xout, k.meta, k.live}, units, to, from).Slice()
	if err != nil {
		return "", 0, fmt.Errorf("transfer out of activity %d bucket %d: %w", activityID, from, err)
	}
	took, ok1 := reply[0].(int64)
	id, ok2 := reply[1].(string)
	if len(reply) != 2 || !ok1 || !ok2 {
		return "", 0, fmt.Errorf("transfer out of activity %d bucket %d: unexpected reply %v", activityID, from, reply)
	}
	return id, took, nil
}

// completeTransfer applies a journaled transfer to its recipient (once,
// transfer_in.lua) and deletes the donor's entry, unless the recipient
// is fenced: then the entry waits. It returns the units this call
// applied, and whether the transfer is complete.
func (s *Store) completeTransfer(ctx context.Context, activityID int64, n, from int, id string, to int, units int64) (int64, bool, error) {
	gen, _, _ := strings.Cut(id, ":")
	k := bucketKeys(activityID, to, n)
	outcome, err := transferInScript.Run(ctx, s.rdb, []string{k.stock, k.xin, k.meta, k.live}, id, units, gen).Text()
	if err != nil {
		return 0, false, fmt.Errorf("transfer %s into activity %d bucket %d: %w", id, activityID, to, err)
	}
	var applied int64
	switch outcome {
	case "APPLIED":
		applied = units
	case "ALREADY", "STALE":
	case "FENCED":
		return 0, false, nil
	default:
		return 0, false, fmt.Errorf("transfer %s into activity %d bucket %d: unexpected outcome %q", id, activityID, to, outcome)
	}
	if err := s.rdb.HDel(ctx, bucketKeys(activityID, from, n).xout, id).Err(); err != nil {
		return applied, false, fmt.Errorf("transfer %s of activity %d: end: %w", id, activityID, err)
	}
	return applied, true, nil
}

// Transfer is one journaled transfer between two buckets of a sale: taken
// from its donor, not yet known to be applied.
type Transfer struct {
	ID       string
	From, To int
	Units    int64
}

// PendingTransfers lists the transfers of an activity whose donor's
// journal still holds them.
func (s *Store) PendingTransfers(ctx context.Context, activityID int64) ([]Transfer, error) {
	n, err := s.bucketsOf(ctx, activityID)
	if err != nil || n == 1 {
		return nil, err
	}
	cmds := make([]*goredis.MapStringStringCmd, n)
	_, err = s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range n {
			cmds[b] = p.HGetAll(ctx, bucketKeys(activityID, b, n).xout)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("transfers of activity %d: %w", activityID, err)
	}
	var out []Transfer
	for b, c := range cmds {
		for id, v := range c.Val() {
			to, units, ok := strings.Cut(v, ":")
			t := Transfer{ID: id, From: b}
			var err1, err2 error
			t.To, err1 = strconv.Atoi(to)
			t.Units, err2 = strconv.ParseInt(units, 10, 64)
			if !ok || err1 != nil || err2 != nil || t.To < 0 || t.To >= n {
				return nil, fmt.Errorf("transfers of activity %d: entry %s = %q", activityID, id, v)
			}
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(x, y Transfer) int { return strings.Compare(x.ID, y.ID) })
	return out, nil
}

// RepairTransfers completes every transfer of an activity that its mover
// left half-done (taken from the donor, perhaps not applied to the
// recipient): each is applied once and leaves the journal. It returns
// how many it completed; a transfer to a fenced bucket waits for the
// rebuild, which counts its units.
func (s *Store) RepairTransfers(ctx context.Context, activityID int64) (int, error) {
	pending, err := s.PendingTransfers(ctx, activityID)
	if err != nil {
		return 0, err
	}
	n, err := s.bucketsOf(ctx, activityID)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, t := range pending {
		_, ended, err := s.completeTransfer(ctx, activityID, n, t.From, t.ID, t.To, t.Units)
		if err != nil {
			return done, err
		}
		if ended {
			done++
		}
	}
	return done, nil
}

// bucketedStock is Stock for a sale in n buckets: the buckets' stock
// and the units in transit between them (bucketStocks).
func (s *Store) bucketedStock(ctx context.Context, activityID int64, n int) (inventory.Stock, error) {
	total, err := s.rdb.HGet(ctx, keysOf(activityID).meta, "total").Int64()
	if errors.Is(err, goredis.Nil) {
		return inventory.Stock{}, fmt.Errorf("stock of activity %d: %w", activityID, inventory.ErrNotPreheated)
	}
	if err != nil {
		return inventory.Stock{}, fmt.Errorf("stock of activity %d: %w", activityID, err)
	}
	_, remaining, err := s.bucketStocks(ctx, activityID, n)
	if err != nil {
		return inventory.Stock{}, err
	}
	return inventory.Stock{Remaining: remaining, Total: total}, nil
}

// placement is where an order's reservation is: the sale's number of
// buckets, and the bucket holding it (-1: none holds it yet).
type placement struct{ n, bucket int }

// targets are the buckets a call for the order runs in: its own, or every
// bucket when none holds the reservation.
func (p placement) targets() []int {
	if p.bucket >= 0 {
		return []int{p.bucket}
	}
	all := make([]int, p.n)
	for b := range all {
		all[b] = b
	}
	return all
}

// locate finds the bucket of each order's reservation: no round trip for
// a sale of one bucket, one pipeline of EXISTS for the others.
func (s *Store) locate(ctx context.Context, refs []inventory.OrderRef) ([]placement, error) {
	out := make([]placement, len(refs))
	var probe []int
	for i, r := range refs {
		n, err := s.bucketsOf(ctx, r.ActivityID)
		if err != nil {
			return nil, err
		}
		out[i] = placement{n: n}
		if n > 1 {
			probe = append(probe, i)
		}
	}
	if len(probe) == 0 {
		return out, nil
	}
	cmds := make(map[int][]*goredis.IntCmd, len(probe))
	_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, i := range probe {
			r := refs[i]
			for b := range out[i].n {
				cmds[i] = append(cmds[i], p.Exists(ctx, bucketKeys(r.ActivityID, b, out[i].n).reservation(r.OrderID)))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("locate %d orders: %w", len(probe), err)
	}
	for _, i := range probe {
		out[i].bucket = -1
		for b, c := range cmds[i] {
			if c.Val() == 1 {
				out[i].bucket = b
			}
		}
	}
	return out, nil
}

// onOwners runs script for every order of refs in the bucket holding its
// reservation, or in every bucket of its sale when none holds it, in one
// pipeline, and returns each order's replies with the buckets they came
// from. call gives the keys and arguments for an order in a bucket.
func (s *Store) onOwners(ctx context.Context, script *goredis.Script, refs []inventory.OrderRef,
	call func(i int, k activityKeys) ([]string, []any)) ([][]*goredis.Cmd, error) {
	where, err := s.locate(ctx, refs)
	if err != nil {
		return nil, err
	}
	type at struct{ ref, bucket int }
	var flat []at
	for i, p := range where {
		for _, b := range p.targets() {
			flat = append(flat, at{i, b})
		}
	}
	cmds, err := s.evalEach(ctx, script, len(flat), func(j int) ([]string, []any) {
		r := refs[flat[j].ref]
		return call(flat[j].ref, bucketKeys(r.ActivityID, flat[j].bucket, where[flat[j].ref].n))
	})
	if err != nil {
		return nil, err
	}
	out := make([][]*goredis.Cmd, len(refs))
	for j, a := range flat {
		out[a.ref] = append(out[a.ref], cmds[j])
	}
	return out, nil
}

// decisive picks, of the replies of one order's buckets, the one of the
// bucket that holds the reservation: the first whose text is not
// notFound, else the first.
func decisive(cmds []*goredis.Cmd, notFound string) *goredis.Cmd {
	for _, c := range cmds {
		if text, err := c.Text(); err != nil || text != notFound {
			return c
		}
	}
	return cmds[0]
}

// fenceAll takes the live mark of every bucket of a sale, so none sells
// until a rebuild: one bucket's lost writes make the sale's total
// untrustworthy, and a rebuild rewrites every bucket.
func (s *Store) fenceAll(ctx context.Context, activityID int64, n int) error {
	_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range n {
			p.Del(ctx, bucketKeys(activityID, b, n).live)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fence the buckets of activity %d: %w", activityID, err)
	}
	return nil
}

// rebuildBuckets rebuilds a bucketed sale from r: every bucket is fenced,
// the sale's generation advances (so a transfer taken before is refused),
// and each bucket is reset and rebuilt by rebuild.lua from the orders of
// its buyers, with an equal share of what the orders leave of the total.
// One rebuild at a time per sale (a lock in the sale's slot); a sale whose
// buckets are all live is left alone.
func (s *Store) rebuildBuckets(ctx context.Context, r inventory.Rebuild, n int) (inventory.RebuildResult, error) {
	home := keysOf(r.ActivityID)
	token := strconv.FormatUint(rand.Uint64(), 36)
	got, err := s.rdb.SetNX(ctx, home.rebuilding, token, rebuildLockTTL).Result()
	if err != nil || !got {
		return inventory.RebuildResult{}, err // another rebuild runs: the sale stays fenced meanwhile
	}
	ctx, release := s.holdRebuildLock(ctx, home.rebuilding, token, rebuildLockTTL)
	defer release()
	fenced, err := s.fencedBuckets(ctx, r.ActivityID, n)
	if err != nil || len(fenced) == 0 {
		return inventory.RebuildResult{}, err
	}
	if err := s.fenceAll(ctx, r.ActivityID, n); err != nil {
		return inventory.RebuildResult{}, err
	}
	gen, err := s.rdb.HIncrBy(ctx, home.meta, "gen", 1).Result()
	if err != nil {
		return inventory.RebuildResult{}, fmt.Errorf("rebuild activity %d: generation: %w", r.ActivityID, err)
	}
	orders := make([][]inventory.HeldOrder, n)
	held := make([]int64, n)
	var allHeld int64
	for _, o := range r.Orders {
		b := bucketOf(o.UserID, n)
		orders[b] = append(orders[b], o)
		if o.Status != inventory.StatusReleased {
			held[b] += o.Quantity
			allHeld += o.Quantity
		}
	}
	left := r.Total - allHeld
	res := inventory.RebuildResult{Rebuilt: true, StockBefore: -1}
	if left < 0 {
		res.Overheld, left = -left, 0
	}
	for b := range n {
		k := bucketKeys(r.ActivityID, b, n)
		if err := bucketResetScript.Run(ctx, s.rdb, []string{k.xout, k.meta, k.live}, gen).Err(); err != nil {
			return res, fmt.Errorf("rebuild activity %d bucket %d: reset: %w", r.ActivityID, b, err)
		}
		share := left / int64(n)
		if int64(b) < left%int64(n) {
			share++
		}
		one, err := s.rebuildOne(ctx, k, inventory.Rebuild{ActivityID: r.ActivityID, Total: share + held[b],
			PerUserLimit: r.PerUserLimit, Orders: orders[b]})
		if err == nil {
			err = s.rdb.HSet(ctx, k.meta, "buckets", n).Err()
		}
		if err != nil {
			return res, fmt.Errorf("rebuild activity %d bucket %d: %w", r.ActivityID, b, err)
		}
		if one.StockBefore >= 0 {
			res.StockBefore = max(res.StockBefore, 0) + one.StockBefore
		}
		res.Stock += one.Stock
		res.Reservations += one.Reservations
		res.UserCounts += one.UserCounts
		res.ExpiryEntries += one.ExpiryEntries
	}
	if err := s.rdb.HSet(ctx, home.meta, "total", r.Total, "limit", r.PerUserLimit, "buckets", n).Err(); err != nil {
		return res, fmt.Errorf("rebuild activity %d: %w", r.ActivityID, err)
	}
	return res, nil
}

// holdRebuildLock keeps the rebuild lock at key, taken with token for
// ttl, as long as the rebuild runs: it extends it every third of ttl,
// and should it find the lock gone or another's (this rebuild outlived a
// lost extension), it cancels the returned context, so the rebuild stops
// rather than interleave with the next one. release stops the extensions
// and releases the lock if it still holds the token.
func (s *Store) holdRebuildLock(ctx context.Context, key, token string, ttl time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				held, err := rebuildLockScript.Run(ctx, s.rdb, []string{key}, token, ttl.Milliseconds()).Int()
				if err == nil && held == 0 {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, func() {
		cancel()
		<-done
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		_ = rebuildLockScript.Run(rctx, s.rdb, []string{key}, token, 0).Err()
	}
}

// fencedBuckets runs fence.lua on every bucket of a sale and returns the
// fenced ones.
func (s *Store) fencedBuckets(ctx context.Context, activityID int64, n int) ([]int, error) {
	cmds, err := s.evalEach(ctx, fenceScript, n, func(b int) ([]string, []any) {
		return []string{bucketKeys(activityID, b, n).live}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("fence check of activity %d: %w", activityID, err)
	}
	var fenced []int
	for b, cmd := range cmds {
		switch outcome, err := cmd.Text(); {
		case err != nil:
			return nil, fmt.Errorf("fence check of activity %d bucket %d: %w", activityID, b, err)
		case outcome == "FENCED":
			fenced = append(fenced, b)
		case outcome != "LIVE":
			return nil, fmt.Errorf("fence check of activity %d bucket %d: unexpected outcome %q", activityID, b, outcome)
		}
	}
	return fenced, nil
}

// borrow reads the sale and, when bucket b holds less than need while
// the sale holds more, refills b. Units in transit between other buckets
// are brought home first (the transfers completed, as the repair does),
// so a buyer never gives up on units merely on their way: its mover may
// be slow to finish. It returns the sale's remaining stock as read.
func (s *Store) borrow(ctx context.Context, activityID int64, n, b int, need int64) (int64, error) {
	stocks, remaining, err := s.bucketStocks(ctx, activityID, n)
	if err != nil || stocks[b] >= need {
		return remaining, err
	}
	var held int64
	for _, v := range stocks {
		held += v
	}
	if held < remaining {
		if _, err := s.RepairTransfers(ctx, activityID); err != nil {
			return remaining, err
		}
		if stocks, remaining, err = s.bucketStocks(ctx, activityID, n); err != nil || stocks[b] >= need {
			return remaining, err
		}
	}
	return remaining, s.refill(ctx, activityID, n, b, need, stocks)
}
