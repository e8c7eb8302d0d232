package redis

import (
	"context"
	"fmt"
	"strconv"

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
	cmds, err := s.evalEach(ctx, fenceScript, len(ids), func(i int) ([]string, []any) {
		return []string{keysOf(ids[i]).live}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("fenced activities: %w", err)
	}
	var fenced []int64
	for i, cmd := range cmds {
		switch outcome, err := cmd.Text(); {
		case err != nil:
			return nil, fmt.Errorf("fence check of activity %d: %w", ids[i], err)
		case outcome == "FENCED":
			fenced = append(fenced, ids[i])
		case outcome != "LIVE":
			return nil, fmt.Errorf("fence check of activity %d: unexpected outcome %q", ids[i], outcome)
		}
	}
	return fenced, nil
}

// RebuildStock rewrites a fenced activity's stock, per-user counts,
// reservations and expiry queue from r (the orders stored for it) in one
// script (rebuild.lua) and marks it live again. An activity that is live
// is left alone (Rebuilt false). It registers the activity in
// ActivitiesKey, which may have lost it too.
func (s *Store) RebuildStock(ctx context.Context, r inventory.Rebuild) (inventory.RebuildResult, error) {
	k := keysOf(r.ActivityID)
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
	if err := s.rdb.SAdd(ctx, ActivitiesKey, r.ActivityID).Err(); err != nil {
		return res, fmt.Errorf("rebuild activity %d: register: %w", r.ActivityID, err)
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
