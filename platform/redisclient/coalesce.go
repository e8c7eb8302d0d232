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
	ap, err := rdb.AsyncAutoPipeline()
	if err != nil {
		return rdb
	}
	return coalesced{UniversalClient: rdb, auto: ap}
}

// coalesced sends real commands of the hot paths through auto and every
// other command through the plain client.
type coalesced struct {
	redis.UniversalClient
	auto redis.Cmdable
}

func (c coalesced) of(ctx context.Context) redis.Cmdable {
	if shadow.Is(ctx) {
		return c.UniversalClient
	}
	return c.auto
}

func (c coalesced) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.of(ctx).Eval(ctx, script, keys, args...)
}

func (c coalesced) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.of(ctx).EvalSha(ctx, sha1, keys, args...)
}

func (c coalesced) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.of(ctx).EvalRO(ctx, script, keys, args...)
}

func (c coalesced) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.of(ctx).EvalShaRO(ctx, sha1, keys, args...)
}

func (c coalesced) Get(ctx context.Context, key string) *redis.StringCmd {
	return c.of(ctx).Get(ctx, key)
}

func (c coalesced) MGet(ctx context.Context, keys ...string) *redis.SliceCmd {
	return c.of(ctx).MGet(ctx, keys...)
}

func (c coalesced) Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd {
	return c.of(ctx).Set(ctx, key, value, expiration)
}

func (c coalesced) SetArgs(ctx context.Context, key string, value any, a redis.SetArgs) *redis.StatusCmd {
	return c.of(ctx).SetArgs(ctx, key, value, a)
}

func (c coalesced) Exists(ctx context.Context, keys ...string) *redis.IntCmd {
	return c.of(ctx).Exists(ctx, keys...)
}

func (c coalesced) Expire(ctx context.Context, key string, expiration time.Duration) *redis.BoolCmd {
	return c.of(ctx).Expire(ctx, key, expiration)
}

func (c coalesced) HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd {
	return c.of(ctx).HGetAll(ctx, key)
}

func (c coalesced) SAdd(ctx context.Context, key string, members ...any) *redis.IntCmd {
	return c.of(ctx).SAdd(ctx, key, members...)
}

func (c coalesced) SMembers(ctx context.Context, key string) *redis.StringSliceCmd {
	return c.of(ctx).SMembers(ctx, key)
}

func (c coalesced) ZAdd(ctx context.Context, key string, members ...redis.Z) *redis.IntCmd {
	return c.of(ctx).ZAdd(ctx, key, members...)
}

func (c coalesced) ZRem(ctx context.Context, key string, members ...any) *redis.IntCmd {
	return c.of(ctx).ZRem(ctx, key, members...)
}

func (c coalesced) ZRemRangeByScore(ctx context.Context, key, min, max string) *redis.IntCmd {
	return c.of(ctx).ZRemRangeByScore(ctx, key, min, max)
}

func (c coalesced) ZRevRange(ctx context.Context, key string, start, stop int64) *redis.StringSliceCmd {
	return c.of(ctx).ZRevRange(ctx, key, start, stop)
}

func (c coalesced) Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error) {
	return c.of(ctx).Pipelined(ctx, fn)
}
