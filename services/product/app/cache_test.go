package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/errcode"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	productv1 "github.com/flashsale/flashsale/proto/product/v1"
)

// eventually polls read until it says done, failing the test after a
// minute: the invalidations travel over Redis pub/sub, so "at once" is
// the message's trip, which a loaded machine may stretch.
func eventually(tb testing.TB, what string, read func() (done bool, got string)) {
	tb.Helper()
	var got string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var done bool
		if done, got = read(); done {
			return
		}
	}
	tb.Fatalf("%s: still %s after a minute", what, got)
}

// TestAWriteIsVisibleOnEveryReplica: two product replicas on one Redis
// have both cached a product; a sale created on the first takes stock
// from it, and the second shows the new stock, and finds the new
// activity (an id its Bloom filter was not built with), without any TTL
// passing: the clock stands still, so only the invalidation can make it.
func TestAWriteIsVisibleOnEveryReplica(t *testing.T) {
	c := clock.NewManual(time.Now())
	inv, invAddr := MustInventory(t)
	a, b := MustStartProduct(t, c, invAddr, inv), MustStartProduct(t, c, invAddr, inv)
	ctx := context.Background()
	p := MustProduct(t, a, 1000)
	// b learns of the new id from the invalidation its creation sent.
	eventually(t, "the new product on the other replica", func() (bool, string) {
		got, err := b.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: p.GetSkuId()})
		return err == nil, fmt.Sprintf("%v, %v", got, err)
	})
	for _, r := range []env{a, b, a, b} {
		got, err := r.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: p.GetSkuId()})
		if err != nil || got.GetStock() != 1000 {
			t.Fatalf("GetProduct = %v, %v; want stock 1000", got, err)
		}
	}
	act, err := a.product.CreateActivity(ctx, activityRequest(p, 100, c.Now()))
	if err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	eventually(t, "the other replica's product stock", func() (bool, string) {
		got, err := b.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: p.GetSkuId()})
		return err == nil && got.GetStock() == 900, fmt.Sprintf("%v, %v", got, err)
	})
	t.Logf("the other replica showed the new stock %v after CreateActivity answered", time.Since(written))
	eventually(t, "the new activity on the other replica", func() (bool, string) {
		got, err := b.product.GetActivity(ctx, &productv1.GetActivityRequest{ActivityId: act.GetActivityId()})
		return err == nil && got.GetRemaining() == 100, fmt.Sprintf("%v, %v", got, err)
	})
}

// TestCreatingASaleWarmsItsPages: once CreateActivity has answered, the
// activity and its product (with the stock the sale took) are in Redis,
// so the first reader on any replica costs Postgres nothing.
func TestCreatingASaleWarmsItsPages(t *testing.T) {
	c := clock.NewManual(time.Now())
	e := MustStart(t, c)
	ctx := context.Background()
	p := MustProduct(t, e, 50)
	act, err := e.product.CreateActivity(ctx, activityRequest(p, 20, c.Now()))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
	defer rdb.Close()
	var activity struct{ ID, Stock int64 }
	if raw, err := rdb.Get(ctx, fmt.Sprintf("{catalog:activity:%d}", act.GetActivityId())).Bytes(); err != nil || json.Unmarshal(raw, &activity) != nil {
		t.Fatalf("activity %d not in Redis: %v", act.GetActivityId(), err)
	}
	var product struct{ SKUID, Stock int64 }
	if raw, err := rdb.Get(ctx, fmt.Sprintf("{catalog:product:%d}", p.GetSkuId())).Bytes(); err != nil || json.Unmarshal(raw, &product) != nil {
		t.Fatalf("product %d not in Redis: %v", p.GetSkuId(), err)
	}
	if activity.ID != act.GetActivityId() || activity.Stock != 20 || product.SKUID != p.GetSkuId() || product.Stock != 30 {
		t.Fatalf("warmed activity %+v and product %+v; want activity %d of 20 units, product %d with 30 left",
			activity, product, act.GetActivityId(), p.GetSkuId())
	}
}

// TestAProductCreatedOnOneReplicaIsFoundOnAnother: the second replica's
// Bloom filter learns the new id from the invalidation, so the product
// is found there, not refused as unknown.
func TestAProductCreatedOnOneReplicaIsFoundOnAnother(t *testing.T) {
	c := clock.NewManual(time.Now())
	inv, invAddr := MustInventory(t)
	a, b := MustStartProduct(t, c, invAddr, inv), MustStartProduct(t, c, invAddr, inv)
	ctx := context.Background()
	p := MustProduct(t, a, 10)
	eventually(t, "the new product on the other replica", func() (bool, string) {
		got, err := b.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: p.GetSkuId()})
		if errcode.Of(err) != errcode.NotFound && err != nil {
			t.Fatalf("GetProduct: %v", err)
		}
		return err == nil && got.GetStock() == 10, fmt.Sprintf("%v, %v", got, err)
	})
}

// redisProxies counts the proxies of one replica's Redis link made.
var redisProxies atomic.Int64

// TestAnAnnouncementRedisMissedIsSentLater: the replica that creates a
// sale has lost its Redis (its cache writes and its announcement fail)
// while the other replica's subscription stays up. The announcement is
// held and sent once Redis is back, so the other replica's Bloom filter
// learns the new id instead of refusing it NOT_FOUND until its rebuild.
func TestAnAnnouncementRedisMissedIsSentLater(t *testing.T) {
	c := clock.NewManual(time.Now())
	inv, invAddr := MustInventory(t)
	// A proxy of its own for each run (-count): the stack keeps them.
	target := localstack.Target(fmt.Sprintf("product-redis-%d", redisProxies.Add(1)))
	addr, err := stack.Proxy(target, stack.RedisAddr)
	if err != nil {
		t.Fatal(err)
	}
	a, b := mustStartProductOn(t, c, invAddr, inv, addr), MustStartProduct(t, c, invAddr, inv)
	ctx := context.Background()
	p := MustProduct(t, a, 10)
	eventually(t, "the new product on the other replica", func() (bool, string) {
		got, err := b.product.GetProduct(ctx, &productv1.GetProductRequest{SkuId: p.GetSkuId()})
		return err == nil, fmt.Sprintf("%v, %v", got, err)
	})

	lift, err := stack.Fault(target, localstack.Fault{Kind: localstack.Down})
	if err != nil {
		t.Fatal(err)
	}
	act, err := a.product.CreateActivity(ctx, activityRequest(p, 5, c.Now()))
	if err != nil {
		lift()
		t.Fatalf("CreateActivity while its replica's Redis is down: %v", err)
	}
	// The premise: the other replica has not heard, and its filter
	// refuses the id.
	if got, err := b.product.GetActivity(ctx, &productv1.GetActivityRequest{ActivityId: act.GetActivityId()}); errcode.Of(err) != errcode.NotFound {
		lift()
		t.Fatalf("the other replica before the announcement: %v, %v; want NOT_FOUND", got, err)
	}
	if err := lift(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new activity on the other replica", func() (bool, string) {
		got, err := b.product.GetActivity(ctx, &productv1.GetActivityRequest{ActivityId: act.GetActivityId()})
		return err == nil && got.GetRemaining() == 5, fmt.Sprintf("%v, %v", got, err)
	})
}
