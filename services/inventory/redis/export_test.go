package redis

import (
	"context"
	"strings"
	"time"
)

// TransferOutStep runs only the first step of a transfer between two
// buckets (transfer_out.lua), as a mover that dies right after it would.
func (s *Store) TransferOutStep(ctx context.Context, activityID int64, from, to int, units int64) (string, int64, error) {
	n, err := s.bucketsOf(ctx, activityID)
	if err != nil {
		return "", 0, err
	}
	return s.transferOut(ctx, activityID, n, from, to, units)
}

// TransferInStep runs only the second step (transfer_in.lua) of a
// journaled transfer, as a mover that dies before it ends the journal
// entry would, and returns its outcome.
func (s *Store) TransferInStep(ctx context.Context, activityID int64, t Transfer) (string, error) {
	n, err := s.bucketsOf(ctx, activityID)
	if err != nil {
		return "", err
	}
	k := bucketKeys(activityID, t.To, n)
	gen, _, _ := strings.Cut(t.ID, ":")
	return transferInScript.Run(ctx, s.rdb, []string{k.stock, k.xin, k.meta, k.live}, t.ID, t.Units, gen).Text()
}

// HoldRebuildLock holds a rebuild lock at key taken with token for ttl, as
// a bucketed sale's rebuild holds its own.
func (s *Store) HoldRebuildLock(ctx context.Context, key, token string, ttl time.Duration) (context.Context, func()) {
	return s.holdRebuildLock(ctx, key, token, ttl)
}
