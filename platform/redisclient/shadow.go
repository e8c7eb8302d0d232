package redisclient

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/platform/shadow"
)

// Marked work (platform/shadow) reads and writes shadow keys: every key of
// a command issued with a marked context gets shadow.KeyPrefix in front,
// by a hook that Dial installs on every client, so no store builds keys
// for the two classes itself. The prefix has no braces, so a key keeps
// its hash tag and its cluster slot, and a script's keys stay together.
//
// The hook rewrites only the key positions it knows, per command; a
// marked command it has no rule for is refused rather than run on real
// keys. That is safe for scripts because every script of the platform
// receives all its keys through KEYS (inventory's *.lua, redis_rate's
// GCRA, the cache's): a script that built a key name inside Lua would
// escape the prefix, and TestEveryScriptTakesItsKeysThroughKEYS in the
// inventory adapter's tests would have to be extended to it.
//
// Real work pays nothing: an unmarked context is not looked at further.

// keyRule says where a command's keys are.
type keyRule int

const (
	noKeys     keyRule = iota // PING, INFO, PUBLISH...: nothing to rewrite
	firstKey                  // the key is the first argument
	allKeys                   // every argument is a key (DEL k1 k2, MGET)
	pairKeys                  // key value key value (MSET)
	scriptKeys                // EVAL script numkeys k1..kn args
)

var keyRules = map[string]keyRule{
	"ping": noKeys, "info": noKeys, "publish": noKeys, "echo": noKeys, "time": noKeys,
	"multi": noKeys, "exec": noKeys, "discard": noKeys, "script": noKeys, "hello": noKeys,
	"client": noKeys, "readonly": noKeys, "cluster": noKeys, "command": noKeys, "wait": noKeys,

	"del": allKeys, "unlink": allKeys, "exists": allKeys, "mget": allKeys, "touch": allKeys, "watch": allKeys,
	"pfcount": allKeys,

	"mset": pairKeys, "msetnx": pairKeys,

	"eval": scriptKeys, "evalsha": scriptKeys, "eval_ro": scriptKeys, "evalsha_ro": scriptKeys,
	"fcall": scriptKeys, "fcall_ro": scriptKeys,
}

func init() {
	for _, c := range []string{
		"get", "set", "setnx", "setex", "psetex", "getset", "getdel", "getex", "incr", "incrby", "decr", "decrby",
		"incrbyfloat", "append", "strlen", "expire", "pexpire", "expireat", "pexpireat", "ttl", "pttl", "persist", "type",
		"hget", "hset", "hsetnx", "hmset", "hmget", "hdel", "hexists", "hgetall", "hincrby", "hincrbyfloat", "hlen",
		"hkeys", "hvals", "sadd", "srem", "smembers", "sismember", "smismember", "scard", "srandmember", "spop",
		"zadd", "zrem", "zcard", "zscore", "zmscore", "zcount", "zrange", "zrangebyscore", "zrevrange",
		"zrevrangebyscore", "zremrangebyscore", "zremrangebyrank", "zincrby", "zrank", "zrevrank",
		"lpush", "rpush", "lpop", "rpop", "lrange", "llen", "lrem", "ltrim", "lindex",
		"pfadd", "getbit", "setbit", "bitcount", "bitfield", "xadd", "xlen", "xrange",
	} {
		keyRules[c] = firstKey
	}
}

// shadowHook rewrites the keys of marked commands.
type shadowHook struct{}

func (shadowHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (shadowHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if shadow.Is(ctx) {
			if err := shadowKeys(ctx, cmd); err != nil {
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}

func (shadowHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if shadow.Is(ctx) {
			for _, cmd := range cmds {
				if err := shadowKeys(ctx, cmd); err != nil {
					cmd.SetErr(err)
					return err
				}
			}
		}
		return next(ctx, cmds)
	}
}

// shadowKeys prefixes cmd's keys in place.
func shadowKeys(ctx context.Context, cmd redis.Cmder) error {
	args := cmd.Args()
	rule, ok := keyRules[cmd.Name()]
	if !ok {
		return fmt.Errorf("redis: %s has no shadow key rule: marked (pressure-test) work may not run it", cmd.Name())
	}
	var at []int
	switch rule {
	case noKeys:
	case firstKey:
		at = []int{1}
	case allKeys:
		for i := 1; i < len(args); i++ {
			at = append(at, i)
		}
	case pairKeys:
		for i := 1; i < len(args); i += 2 {
			at = append(at, i)
		}
	case scriptKeys:
		if len(args) < 3 {
			return fmt.Errorf("redis: %s without numkeys", cmd.Name())
		}
		n, err := strconv.Atoi(fmt.Sprint(args[2]))
		if err != nil || n < 0 || 3+n > len(args) {
			return fmt.Errorf("redis: %s numkeys %v", cmd.Name(), args[2])
		}
		for i := 3; i < 3+n; i++ {
			at = append(at, i)
		}
	}
	for _, i := range at {
		if i >= len(args) {
			break
		}
		key, ok := args[i].(string)
		if !ok {
			return fmt.Errorf("redis: %s key %d is a %T, not a string", cmd.Name(), i, args[i])
		}
		args[i] = shadow.Key(ctx, key)
	}
	return nil
}

// Shadowed installs the shadow key hook on rdb (Dial does it for every
// client it returns) and returns rdb.
func Shadowed(rdb redis.UniversalClient) redis.UniversalClient {
	rdb.AddHook(shadowHook{})
	return rdb
}
