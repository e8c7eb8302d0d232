// Package redis keeps the in-flight orders in Redis: for each order that
// was published but is not stored in Postgres yet, its OrderPlaced bytes
// under order:pending:<order id>, and per user a sorted set of those ids
// (order:pending:user:<user id>, scored by creation time in milliseconds)
// so that a user's list includes them. With the record goes a small mark
// under order:published:<order id> that the event is on the log, for
// replayed requests and the expiry worker to tell an accepted order on its
// way from one whose placement may still fail; a placement that failed
// and gave its stock back is marked under order:released:<order id>. All
// expire: a record outlives the consumer's lag by far, and a stale one
// only shows a PROCESSING order that Postgres already answers for.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/event"
)

// DefaultTTL is how long a pending record lives when nothing deletes it.
const DefaultTTL = time.Hour

// maxUserPending bounds how many in-flight orders of one user are read.
const maxUserPending = 100

// Pending implements order.Pending on Redis.
type Pending struct {
	rdb    goredis.Cmdable
	prefix string
	ttl    time.Duration
}

// NewPending returns the store. prefix is put before every key (tests use
// it to stay apart; services pass ""); ttl <= 0 means DefaultTTL.
func NewPending(rdb goredis.Cmdable, prefix string, ttl time.Duration) *Pending {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Pending{rdb: rdb, prefix: prefix, ttl: ttl}
}

func (s *Pending) key(orderID int64) string {
	return s.prefix + "order:pending:" + strconv.FormatInt(orderID, 10)
}

func (s *Pending) userKey(userID int64) string {
	return s.prefix + "order:pending:user:" + strconv.FormatInt(userID, 10)
}

func (s *Pending) publishedKey(orderID int64) string {
	return s.prefix + "order:published:" + strconv.FormatInt(orderID, 10)
}

func (s *Pending) releasedKey(orderID int64) string {
	return s.prefix + "order:released:" + strconv.FormatInt(orderID, 10)
}

// Put records p as in flight and marks its event published.
func (s *Pending) Put(ctx context.Context, p order.Placed) error {
	b, err := event.Marshal(p)
	if err != nil {
		return fmt.Errorf("put pending %d: %w", p.OrderID, err)
	}
	uk := s.userKey(p.UserID)
	score := float64(p.CreatedAt.UnixMilli())
	// All four are sent before any answer is read: on the service's
	// auto-pipeliner (redisclient.Coalesced) they join the batch other
	// buys are in, one round trip for the record and the mark. Ids whose
	// records expired are trimmed when the list is read (UserPending),
	// not here on every buy: the consumer removes the ids of stored
	// orders itself, so only the rare id of a lost delete is left behind.
	cmds := []goredis.Cmder{
		s.rdb.Set(ctx, s.key(p.OrderID), b, s.ttl),
		s.rdb.ZAdd(ctx, uk, goredis.Z{Score: score, Member: p.OrderID}),
		s.rdb.Expire(ctx, uk, s.ttl),
		s.rdb.Set(ctx, s.publishedKey(p.OrderID), 1, MarkTTL),
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return fmt.Errorf("put pending %d: %w", p.OrderID, err)
		}
	}
	return nil
}

// MarkTTL is how long a published mark lives: the longest consumer lag
// during which the expiry worker still knows an unstored order was
// accepted and waits for it (order.ExpirerConfig.Marks). The consumer
// leaves the mark to expire: it only ever says something true.
const MarkTTL = 24 * time.Hour

// releasedTTL is how long a released mark lives. Only a replay that was
// waiting for the order when it was released reads it (a later request
// with the key reserves afresh), and a replay waits seconds.
const releasedTTL = time.Hour

// Released marks the placement of orderID released. It is called only
// after a failed publish, before Put, so there is no record or published
// mark to drop: one SET.
func (s *Pending) Released(ctx context.Context, orderID int64) error {
	if err := s.rdb.Set(ctx, s.releasedKey(orderID), 1, releasedTTL).Err(); err != nil {
		return fmt.Errorf("release pending %d: %w", orderID, err)
	}
	return nil
}

// Outcome reads the marks of orderID's placement. Placing writes a
// released mark only after a failed publish, when no published mark was
// written; should both be there, the released one wins.
func (s *Pending) Outcome(ctx context.Context, orderID int64) (order.Outcome, error) {
	released := s.rdb.Exists(ctx, s.releasedKey(orderID))
	published := s.rdb.Exists(ctx, s.publishedKey(orderID))
	for _, c := range []*goredis.IntCmd{released, published} {
		if err := c.Err(); err != nil {
			return order.OutcomeUnknown, fmt.Errorf("outcome of %d: %w", orderID, err)
		}
	}
	switch {
	case released.Val() == 1:
		return order.OutcomeReleased, nil
	case published.Val() == 1:
		return order.OutcomePublished, nil
	}
	return order.OutcomeUnknown, nil
}

// Get returns the pending record of orderID, or order.ErrNotFound.
func (s *Pending) Get(ctx context.Context, orderID int64) (order.Placed, error) {
	b, err := s.rdb.Get(ctx, s.key(orderID)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return order.Placed{}, fmt.Errorf("pending %d: %w", orderID, order.ErrNotFound)
	}
	if err != nil {
		return order.Placed{}, fmt.Errorf("get pending %d: %w", orderID, err)
	}
	p, err := event.Unmarshal(b)
	if err != nil {
		return order.Placed{}, fmt.Errorf("get pending %d: %w", orderID, err)
	}
	return p, nil
}

// UserPending returns the user's in-flight orders, newest first.
func (s *Pending) UserPending(ctx context.Context, userID int64) ([]order.Placed, error) {
	uk := s.userKey(userID)
	newest, err := s.rdb.ZRevRangeWithScores(ctx, uk, 0, maxUserPending-1).Result()
	if err != nil {
		return nil, fmt.Errorf("user %d pending: %w", userID, err)
	}
	if len(newest) == 0 {
		return nil, nil
	}
	ids := make([]string, len(newest))
	for i, z := range newest {
		ids[i], _ = z.Member.(string)
	}
	// Ids read whose records are gone are trimmed below. When the set
	// may hold more than was read, the ids created more than a record's
	// lifetime before the newest one (which can have no record left) are
	// trimmed too, so the set stays as small as the user's orders in
	// flight.
	if len(newest) == maxUserPending {
		cutoff := int64(newest[0].Score) - s.ttl.Milliseconds()
		_ = s.rdb.ZRemRangeByScore(ctx, uk, "-inf", "("+strconv.FormatInt(cutoff, 10)).Err()
	}
	// One GET per record in one pipeline, not MGET: the records hash to
	// different slots, which MGET refuses on Redis Cluster (CROSSSLOT),
	// while a cluster client splits a pipeline into one per primary.
	gets := make([]*goredis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = pipe.Get(ctx, s.prefix+"order:pending:"+id)
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("user %d pending: %w", userID, err)
	}
	var out []order.Placed
	var gone []any
	for i, get := range gets {
		b, err := get.Bytes()
		if errors.Is(err, goredis.Nil) {
			gone = append(gone, ids[i])
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("user %d pending %s: %w", userID, ids[i], err)
		}
		p, err := event.Unmarshal(b)
		if err != nil {
			return nil, fmt.Errorf("user %d pending %s: %w", userID, ids[i], err)
		}
		out = append(out, p)
	}
	if len(gone) > 0 {
		// Stored orders leave their id behind only when the consumer's
		// best-effort delete failed; dropping it here is equally optional.
		_ = s.rdb.ZRem(ctx, uk, gone...).Err()
	}
	return out, nil
}

// Delete drops the records of ps.
func (s *Pending) Delete(ctx context.Context, ps ...order.Placed) error {
	if len(ps) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for _, p := range ps {
			pipe.Del(ctx, s.key(p.OrderID))
			pipe.ZRem(ctx, s.userKey(p.UserID), p.OrderID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %d pending records: %w", len(ps), err)
	}
	return nil
}
