package redisclient

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/shadow"
)

// Coalesced returns rdb's auto-pipeliner (go-redis's deferred face): the
// commands of concurrent callers that arrive while a batch is on the wire
// leave together as the next pipeline. Under a flash-sale spike that
// turns thousands of one-command round trips (a write and a read system
// call on both ends, each) into a few deep pipelines; a lone caller still
// goes out at once, so nothing waits for a batch to fill.
//
// A command call returns at once and reading its result (Err, Result,
// Val) waits until it has run, so code that reads each result before the
// next call behaves exactly as on the plain client, while code that
// issues several commands before reading any puts them in one batch
// without a pipeline of its own. The hot paths (reserve, pending records,
// per-user limits) use it; it is closed with rdb.
//
// The auto-pipeliner sends a batch of many callers' commands under one
// context, so the shadow key hook (shadow.go) cannot see which of them
// are marked: marked (pressure-test) commands therefore go to rdb itself,
// whose hook prefixes their keys, and only real ones are coalesced. The
// methods below are the hot paths' commands; any other goes to rdb,
// uncoalesced but never unprefixed.
//
// A client kind without one (a Ring) is returned as it is.
func Coalesced(rdb redis.UniversalClient) redis.Cmdable {
	return coalesce(rdb, false)
}

// CoalescedBounded is Coalesced for callers that read each result before
// the next call and must not wait past their deadline (the gateway's
// request path): each call sends its command through the auto-pipeliner
// and waits for it at most until its ctx ends. The auto-pipeliner runs a
// batch under no caller's context, so on a Redis that went silent a
// deferred result's read waits for the batch's own timeouts and retries
// (16 s measured with a 2 s ReadTimeout), whatever the caller's
// deadline. A command given up on still runs; its caller gets another
// command carrying ctx's error, never one the batch may still write.
// (A client has one auto-pipeliner: the first face asked of it sets its
// options.)
func CoalescedBounded(rdb redis.UniversalClient) redis.Cmdable {
	return coalesce(rdb, true)
}

// maxQueuedBounded bounds the commands CoalescedBounded's auto-pipeliner
// holds unfinished (about 10 MB): its callers stop waiting at their
// deadlines, so on a silent Redis nothing else stops the commands they
// gave up on from piling up; past it a command fails at once.
const maxQueuedBounded = 50_000

func coalesce(rdb redis.UniversalClient, bounded bool) redis.Cmdable {
	var cfg *redis.AutoPipelineOptions // the client's own: the default
	if bounded {
		cfg = redis.DefaultAutoPipelineOptions()
		cfg.MaxQueuedCommands = maxQueuedBounded
	}
	ap, err := rdb.AsyncAutoPipelineWithOptions(cfg)
	if err != nil {
		return rdb
	}
	return coalesced{UniversalClient: rdb, auto: ap, bounded: bounded}
}

// coalesced sends real commands of the hot paths through auto and every
// other command through the plain client.
type coalesced struct {
	redis.UniversalClient
	auto *redis.AutoPipeliner
	// bounded: each call waits for its command until its ctx ends at most
	// (CoalescedBounded); else it returns at once, deferred (Coalesced).
	bounded bool
}

func (c coalesced) of(ctx context.Context) redis.Cmdable {
	if shadow.Is(ctx) {
		return c.UniversalClient
	}
	return c.auto
}

// call runs the command build makes: on the plain client when ctx is
// marked (its hook prefixes the keys), deferred on the auto-pipeliner, or,
// bounded, built unsent (by a pipeline never run), submitted to the
// auto-pipeliner and waited for until ctx ends.
func call[T redis.Cmder](c coalesced, ctx context.Context, build func(redis.Cmdable) T) T {
	if shadow.Is(ctx) || !c.bounded {
		return build(c.of(ctx))
	}
	cmd := build(c.UniversalClient.Pipeline())
	// WaitContext answers ctx's own error when it stopped waiting.
	if err := c.auto.Submit(ctx, cmd).WaitContext(ctx); err != nil && err == ctx.Err() {
		given := build(c.UniversalClient.Pipeline())
		given.SetErr(err)
		return given
	}
	return cmd
}

func (c coalesced) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.Cmd { return r.Eval(ctx, script, keys, args...) })
}

func (c coalesced) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.Cmd { return r.EvalSha(ctx, sha1, keys, args...) })
}

func (c coalesced) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.Cmd { return r.EvalRO(ctx, script, keys, args...) })
}

func (c coalesced) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.Cmd { return r.EvalShaRO(ctx, sha1, keys, args...) })
}

func (c coalesced) Get(ctx context.Context, key string) *redis.StringCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.StringCmd { return r.Get(ctx, key) })
}

func (c coalesced) MGet(ctx context.Context, keys ...string) *redis.SliceCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.SliceCmd { return r.MGet(ctx, keys...) })
}

func (c coalesced) Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.StatusCmd { return r.Set(ctx, key, value, expiration) })
}

func (c coalesced) SetArgs(ctx context.Context, key string, value any, a redis.SetArgs) *redis.StatusCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.StatusCmd { return r.SetArgs(ctx, key, value, a) })
}

func (c coalesced) Exists(ctx context.Context, keys ...string) *redis.IntCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.IntCmd { return r.Exists(ctx, keys...) })
}

func (c coalesced) Expire(ctx context.Context, key string, expiration time.Duration) *redis.BoolCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.BoolCmd { return r.Expire(ctx, key, expiration) })
}

func (c coalesced) HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.MapStringStringCmd { return r.HGetAll(ctx, key) })
}

func (c coalesced) SAdd(ctx context.Context, key string, members ...any) *redis.IntCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.IntCmd { return r.SAdd(ctx, key, members...) })
}

func (c coalesced) SMembers(ctx context.Context, key string) *redis.StringSliceCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.StringSliceCmd { return r.SMembers(ctx, key) })
}

func (c coalesced) ZAdd(ctx context.Context, key string, members ...redis.Z) *redis.IntCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.IntCmd { return r.ZAdd(ctx, key, members...) })
}

func (c coalesced) ZRem(ctx context.Context, key string, members ...any) *redis.IntCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.IntCmd { return r.ZRem(ctx, key, members...) })
}

func (c coalesced) ZRemRangeByScore(ctx context.Context, key, min, max string) *redis.IntCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.IntCmd { return r.ZRemRangeByScore(ctx, key, min, max) })
}

func (c coalesced) ZRevRange(ctx context.Context, key string, start, stop int64) *redis.StringSliceCmd {
	return call(c, ctx, func(r redis.Cmdable) *redis.StringSliceCmd { return r.ZRevRange(ctx, key, start, stop) })
}

func (c coalesced) Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error) {
	return c.of(ctx).Pipelined(ctx, fn)
}
