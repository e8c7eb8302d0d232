package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/cache"
)

// TestInvalidationsReachEverySubscriber: two subscribers (two replicas)
// both receive a write published after they subscribed; when Redis cuts
// a subscriber's connection, it resubscribes and calls lost, since what
// was published meanwhile is gone.
func TestInvalidationsReachEverySubscriber(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := mustRedis(t)
	type replica struct {
		got  chan cache.Invalidation
		lost chan struct{}
	}
	var replicas []replica
	for range 2 {
		r := replica{got: make(chan cache.Invalidation, 10), lost: make(chan struct{}, 10)}
		sub, err := cache.Subscribe(ctx, mustRedis(t))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		go func() {
			_ = sub.Run(ctx, func(inv cache.Invalidation) { r.got <- inv },
				func() { r.lost <- struct{}{} },
				func(err error) { t.Errorf("bad message: %v", err) })
		}()
		replicas = append(replicas, r)
	}
	want := cache.Invalidation{Kind: "product", ID: 77}
	if err := cache.Publish(ctx, rdb, want); err != nil {
		t.Fatal(err)
	}
	for i, r := range replicas {
		if got := <-r.got; got != want {
			t.Fatalf("replica %d got %+v, want %+v", i, got, want)
		}
	}
	// Cut every subscriber's connection, as a Redis failover would.
	if err := rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	for i, r := range replicas {
		select {
		case <-r.lost:
		case <-time.After(time.Minute):
			t.Fatalf("replica %d: no resubscription a minute after its connection was cut", i)
		}
	}
}
