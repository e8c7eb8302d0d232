package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/flashsale/flashsale/services/inventory"
)

// Fenced checks every preheated activity's live mark (fence.lua) and
// returns the activities that are fenced: their Redis state may have lost
// writes (a restart from the AOF, a failover) and is not rebuilt yet. A
// mark copied into the AOF by a rewrite, from an earlier run of the
// server, is deleted here, so the check also fences those sales.
func (s *Store) Fenced(ctx context.Context) ([]int64, error) {
	members, err := s.rdb.SMembers(ctx, ActivitiesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("fenced activities: %w", err)
	}
	ids := make([]int64, 0, len(members))
	for _, m := range members {
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("fenced activities: activity id %q: %w", m, err)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	var single, bucketed []int64
	for _, id := range ids {
		n, err := s.bucketsOfPreheated(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("fenced activities: %w", err)
		}
		if n == 1 {
			single = append(single, id)
		} else {
			bucketed = append(bucketed, id)
		}
	}
	var fenced []int64
	if len(single) > 0 {
		cmds, err := s.evalEach(ctx, fenceScript, len(single), func(i int) ([]string, []any) {
			return []string{keysOf(single[i]).live}, nil
		})
		if err != nil {
			return nil, fmt.Errorf("fenced activities: %w", err)
		}
		for i, cmd := range cmds {
			switch outcome, err := cmd.Text(); {
			case err != nil:
				return nil, fmt.Errorf("fence check of activity %d: %w", single[i], err)
			case outcome == "FENCED":
				fenced = append(fenced, single[i])
			case outcome != "LIVE":
				return nil, fmt.Errorf("fence check of activity %d: unexpected outcome %q", single[i], outcome)
			}
		}
	}
	// A bucketed sale is fenced as a whole when one of its buckets is:
	// every bucket stops selling until the rebuild. The check also
	// completes the transfers between its buckets left half-done.
	for _, id := range bucketed {
		n, _ := s.bucketsOf(ctx, id)
		if _, err := s.RepairTransfers(ctx, id); err != nil {
			return nil, fmt.Errorf("fenced activities: %w", err)
		}
		buckets, err := s.fencedBuckets(ctx, id, n)
		if err != nil {
			return nil, err
		}
		if len(buckets) > 0 {
			if err := s.fenceAll(ctx, id, n); err != nil {
				return nil, err
			}
			fenced = append(fenced, id)
		}
	}
	return fenced, nil
}

// rebuildLockTTL bounds how long a crashed rebuild of a bucketed sale
// keeps the next one out.
const rebuildLockTTL = time.Minute

// RebuildStock rewrites a fenced activity's stock, per-user counts,
// reservations and expiry queue from r (the orders stored for it) in one
// script (rebuild.lua) and marks it live again. An activity that is live
// is left alone (Rebuilt false). It registers the activity in
// ActivitiesKey, which may have lost it too.
//
// A bucketed activity is rebuilt bucket by bucket (rebuildBuckets).
func (s *Store) RebuildStock(ctx context.Context, r inventory.Rebuild) (inventory.RebuildResult, error) {
	n, err := s.bucketsOfPreheated(ctx, r.ActivityID)
	if err != nil {
		return inventory.RebuildResult{}, fmt.Errorf("rebuild activity %d: %w", r.ActivityID, err)
	}
	var res inventory.RebuildResult
	if n > 1 {
		res, err = s.rebuildBuckets(ctx, r, n)
	} else {
		res, err = s.rebuildOne(ctx, keysOf(r.ActivityID), r)
	}
	if err != nil {
		return res, err
	}
	if err := s.rdb.SAdd(ctx, ActivitiesKey, r.ActivityID).Err(); err != nil {
		return res, fmt.Errorf("rebuild activity %d: register: %w", r.ActivityID, err)
	}
	return res, nil
}

// rebuildOne runs rebuild.lua on the keys k (an activity, or one bucket of
// one) with r's total, limit and orders.
func (s *Store) rebuildOne(ctx context.Context, k activityKeys, r inventory.Rebuild) (inventory.RebuildResult, error) {
	keys := make([]string, 0, 7+len(r.Orders))
	keys = append(keys, k.meta, k.stock, k.bought, k.idem, k.expiry, k.claimed, k.live)
	args := make([]any, 0, 2+7*len(r.Orders))
	args = append(args, r.Total, r.PerUserLimit)
	for _, o := range r.Orders {
		keys = append(keys, k.reservation(o.OrderID))
		args = append(args, o.OrderID, o.UserID, o.Quantity, string(o.Status), o.IdempotencyKey, o.ExpiresAt.UnixMilli(), o.Restored)
	}
	reply, err := rebuildScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return inventory.RebuildResult{}, fmt.Errorf("rebuild activity %d: %w", r.ActivityID, err)
	}
	res, err := parseRebuildReply(reply)
	if err != nil {
		return inventory.RebuildResult{}, fmt.Errorf("rebuild activity %d: %w", r.ActivityID, err)
	}
	return res, nil
}

func parseRebuildReply(reply []any) (inventory.RebuildResult, error) {
	if len(reply) == 1 && reply[0] == "LIVE" {
		return inventory.RebuildResult{}, nil
	}
	if len(reply) != 7 || reply[0] != "REBUILT" {
		return inventory.RebuildResult{}, fmt.Errorf("unexpected reply %v", reply)
	}
	var n [6]int64
	for i := range n {
		v, ok := reply[i+1].(int64)
		if !ok {
			return inventory.RebuildResult{}, fmt.Errorf("unexpected reply %v", reply)
		}
		n[i] = v
	}
	return inventory.RebuildResult{
		Rebuilt: true, StockBefore: n[0], Stock: n[1],
		Reservations: n[2], UserCounts: n[3], ExpiryEntries: n[4], Overheld: n[5],
	}, nil
}
