package cache

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// InvalidationChannel is the Redis pub/sub channel on which the
// catalogue's writes are announced to every replica of every service that
// caches it.
const InvalidationChannel = "catalog:invalidate"

// Kinds of the catalogue's invalidations.
const (
	KindProduct  = "product"
	KindActivity = "activity"
)

// Invalidation names one key that was written: its kind ("product",
// "activity") and id. It also says that the id exists (a write or a
// create), which a replica's Filter learns from it.
type Invalidation struct {
	Kind string
	ID   int64
}

func (i Invalidation) String() string { return i.Kind + ":" + strconv.FormatInt(i.ID, 10) }

func parseInvalidation(s string) (Invalidation, error) {
	kind, id, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil || kind == "" {
		return Invalidation{}, fmt.Errorf("invalidation %q is not kind:id", s)
	}
	return Invalidation{Kind: kind, ID: n}, nil
}

// Publish announces inv on InvalidationChannel. Delivery is at most once
// (Redis pub/sub keeps nothing for a subscriber that is away): a
// subscriber learns it lost some when its subscription is made again, and
// expires its copies (Subscriber.Run); the TTLs bound the rest.
func Publish(ctx context.Context, rdb redis.Cmdable, inv Invalidation) error {
	if err := rdb.Publish(ctx, InvalidationChannel, inv.String()).Err(); err != nil {
		return fmt.Errorf("publish invalidation %s: %w", inv, err)
	}
	return nil
}

// Subscriber receives the invalidations of every replica.
type Subscriber struct {
	sub *redis.PubSub
}

// Subscribe subscribes to InvalidationChannel and returns once Redis has
// confirmed it, so that every write published after it returns reaches
// the Subscriber's Run.
func Subscribe(ctx context.Context, rdb redis.UniversalClient) (*Subscriber, error) {
	sub := rdb.Subscribe(ctx, InvalidationChannel)
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return nil, fmt.Errorf("subscribe %s: %w", InvalidationChannel, err)
	}
	return &Subscriber{sub: sub}, nil
}

// Run hands every invalidation to handle until ctx ends. When the
// subscription had to be made again (the connection to Redis was lost,
// and with it any invalidation published meanwhile), it calls lost, which
// should make what may now be stale due again (Loader.Expire). A malformed message is
// passed to bad and skipped.
func (s *Subscriber) Run(ctx context.Context, handle func(Invalidation), lost func(), bad func(error)) error {
	ch := s.sub.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					lost()
				}
			case *redis.Message:
				inv, err := parseInvalidation(m.Payload)
				if err != nil {
					bad(err)
					continue
				}
				handle(inv)
			}
		}
	}
}

// Close ends the subscription.
func (s *Subscriber) Close() error { return s.sub.Close() }
