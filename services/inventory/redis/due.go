package redis

import (
	"context"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/services/inventory"
)

var (
	//go:embed claim_due.lua
	claimDueSource string
	//go:embed settle_due.lua
	settleDueSource string

	claimDueScript  = goredis.NewScript(claimDueSource)
	settleDueScript = goredis.NewScript(settleDueSource)
)

// ClaimedKey is the name of an activity's claimed set: the entries of its
// expiry queue that workers hold, scored by their lease deadline in unix
// milliseconds.
func ClaimedKey(activityID int64) string { return keysOf(activityID).claimed }

// ClaimDue takes up to limit due entries from the expiry queues of
// activityIDs, or of every activity in ActivitiesKey when activityIDs is
// empty, one script per activity until the limit is reached. The
// activities are visited in random order, so one activity with a large
// backlog cannot keep the others' entries waiting call after call.
//
// An activity whose claim fails ends the call. The entries claimed before
// it are answered (with no error): they are claimed, and answering an
// error instead would leave them to wait out their lease, every call the
// failing activity is not visited first. When nothing was claimed before
// it, the error is the answer.
func (s *Store) ClaimDue(ctx context.Context, activityIDs []int64, now time.Time, limit int, leaseUntil time.Time) ([]inventory.DueEntry, error) {
	if len(activityIDs) == 0 {
		all, err := s.activities(ctx)
		if err != nil {
			return nil, fmt.Errorf("claim due: %w", err)
		}
		activityIDs = all
	}
	activityIDs = append([]int64(nil), activityIDs...)
	rand.Shuffle(len(activityIDs), func(i, j int) { activityIDs[i], activityIDs[j] = activityIDs[j], activityIDs[i] })
	var out []inventory.DueEntry
	for _, act := range activityIDs {
		if len(out) >= limit {
			break
		}
		n, err := s.bucketsOf(ctx, act)
		if err != nil {
			return claimedOr(out, fmt.Errorf("claim due in activity %d: %w", act, err))
		}
		for b := range n {
			if len(out) >= limit {
				break
			}
			k := bucketKeys(act, b, n)
			reply, err := claimDueScript.Run(ctx, s.rdb, []string{k.expiry, k.claimed},
				now.UnixMilli(), limit-len(out), leaseUntil.UnixMilli()).StringSlice()
			if err != nil {
				return claimedOr(out, fmt.Errorf("claim due in activity %d: %w", act, err))
			}
			for i := 0; i+1 < len(reply); i += 2 {
				order, err1 := strconv.ParseInt(reply[i], 10, 64)
				due, err2 := strconv.ParseFloat(reply[i+1], 64)
				if err1 != nil || err2 != nil {
					return claimedOr(out, fmt.Errorf("claim due in activity %d: unexpected entry %q scored %q", act, reply[i], reply[i+1]))
				}
				out = append(out, inventory.DueEntry{
					ActivityID: act, OrderID: order, DueAt: time.UnixMilli(int64(due)), LeaseUntil: leaseUntil,
				})
			}
		}
	}
	return out, nil
}

// claimedOr answers a claim that failed after claiming out: out when it
// holds any entry (ClaimDue), else the error.
func claimedOr(out []inventory.DueEntry, err error) ([]inventory.DueEntry, error) {
	if len(out) > 0 {
		return out, nil
	}
	return nil, err
}

// activities reads ActivitiesKey.
func (s *Store) activities(ctx context.Context) ([]int64, error) {
	members, err := s.rdb.SMembers(ctx, ActivitiesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("activities: %w", err)
	}
	ids := make([]int64, 0, len(members))
	for _, m := range members {
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("activities: member %q: %w", m, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// SettleDue acknowledges claimed entries (requeueAt zero) or puts them
// back due at requeueAt, one script per activity, and reports per entry,
// in the order of entries, whether the claim was still the caller's.
func (s *Store) SettleDue(ctx context.Context, entries []inventory.DueEntry, requeueAt time.Time) ([]bool, error) {
	byActivity := map[int64][]int{}
	var order []int64
	for i, e := range entries {
		if _, ok := byActivity[e.ActivityID]; !ok {
			order = append(order, e.ActivityID)
		}
		byActivity[e.ActivityID] = append(byActivity[e.ActivityID], i)
	}
	due := ""
	if !requeueAt.IsZero() {
		due = strconv.FormatInt(requeueAt.UnixMilli(), 10)
	}
	settled := make([]bool, len(entries))
	for _, act := range order {
		at := byActivity[act]
		args := make([]any, 0, 1+2*len(at))
		args = append(args, due)
		for _, i := range at {
			args = append(args, entries[i].OrderID, entries[i].LeaseUntil.UnixMilli())
		}
		// An entry of a bucketed activity is settled in every bucket: only
		// the bucket whose claimed set holds it with that lease acts.
		n, err := s.bucketsOf(ctx, act)
		if err != nil {
			return nil, fmt.Errorf("settle %d due entries of activity %d: %w", len(at), act, err)
		}
		for b := range n {
			k := bucketKeys(act, b, n)
			reply, err := settleDueScript.Run(ctx, s.rdb, []string{k.expiry, k.claimed}, args...).Int64Slice()
			if err != nil {
				return nil, fmt.Errorf("settle %d due entries of activity %d: %w", len(at), act, err)
			}
			if len(reply) != len(at) {
				return nil, fmt.Errorf("settle due entries of activity %d: %d answers for %d entries", act, len(reply), len(at))
			}
			for j, i := range at {
				settled[i] = settled[i] || reply[j] == 1
			}
		}
	}
	return settled, nil
}

// Backlog is what an activity's expiry queue holds that is due and not
// being worked on: entries past their deadline still in the queue, and
// claims whose lease lapsed (their worker died or stalled).
type Backlog struct {
	Entries int64
	// Oldest is the earliest of their deadlines (of a lapsed claim, its
	// lease's end); zero when Entries is 0.
	Oldest time.Time
}

// DueBacklog reads the activity's Backlog at now: two counts and two
// first members of sorted sets under one hash tag, in one round trip.
//
// Of a bucketed activity it sums the buckets' backlogs.
func (s *Store) DueBacklog(ctx context.Context, activityID int64, now time.Time) (Backlog, error) {
	n, err := s.bucketsOf(ctx, activityID)
	if err != nil {
		return Backlog{}, fmt.Errorf("expiry backlog of activity %d: %w", activityID, err)
	}
	var sum Backlog
	for b := range n {
		one, err := s.dueBacklog(ctx, activityID, bucketKeys(activityID, b, n), now)
		if err != nil {
			return Backlog{}, err
		}
		sum.Entries += one.Entries
		if !one.Oldest.IsZero() && (sum.Oldest.IsZero() || one.Oldest.Before(sum.Oldest)) {
			sum.Oldest = one.Oldest
		}
	}
	return sum, nil
}

func (s *Store) dueBacklog(ctx context.Context, activityID int64, k activityKeys, now time.Time) (Backlog, error) {
	at := strconv.FormatInt(now.UnixMilli(), 10)
	var (
		due, lapsed         *goredis.IntCmd
		firstDue, firstHeld *goredis.ZSliceCmd
	)
	_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		due = p.ZCount(ctx, k.expiry, "-inf", at)
		lapsed = p.ZCount(ctx, k.claimed, "-inf", at)
		firstDue = p.ZRangeWithScores(ctx, k.expiry, 0, 0)
		firstHeld = p.ZRangeWithScores(ctx, k.claimed, 0, 0)
		return nil
	})
	if err != nil {
		return Backlog{}, fmt.Errorf("expiry backlog of activity %d: %w", activityID, err)
	}
	b := Backlog{Entries: due.Val() + lapsed.Val()}
	for _, first := range []*goredis.ZSliceCmd{firstDue, firstHeld} {
		if z := first.Val(); len(z) == 1 && int64(z[0].Score) <= now.UnixMilli() {
			if t := time.UnixMilli(int64(z[0].Score)); b.Oldest.IsZero() || t.Before(b.Oldest) {
				b.Oldest = t
			}
		}
	}
	return b, nil
}
