package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shared is the second level of a read (L2): values in Redis, shared by
// every replica, so a key costs the source one load per TTL however
// many replicas and readers there are, a replica that restarts finds
// the hot keys loaded, and a first level that empties (a purge, a deploy)
// does not send its whole load to the database (缓存雪崩). Values are
// stored as JSON under prefix+key with a TTL shortened by a random tenth.
//
// A write invalidates a key with Invalidate, which deletes the value and
// bumps the key's version in one step; a load that read the version
// before the write stores its (old) value only if the version is still
// the one it read, so a read racing a write cannot put the old value back
// for a TTL (the race the "delete, then delayed second delete" of the
// field's articles narrows: here it is closed).
//
// One load across replicas (互斥锁, the mutex key against 缓存击穿): in
// front of Shared sits a Loader, whose singleflight makes one load per
// key and replica; across replicas, the replica that misses first takes
// a lock key (SET NX, a few seconds) and loads, and the others wait for
// its value in Redis, for at most LockWait, before they load themselves
// (so a replica that took the lock and died costs a short wait, never a
// stuck read).
//
// Redis failing is not the source failing: a Get whose Redis call fails
// asks the source directly (counted as an error) and says nothing.
type Shared[K comparable, V any] struct {
	rdb    redis.Cmdable
	prefix string
	ttl    time.Duration

	hits, misses, errs atomic.Int64
}

// Lock timing of a miss across replicas.
const (
	// LockWait is the longest a replica waits for the value another
	// replica is loading before it loads itself.
	LockWait = 200 * time.Millisecond
	// lockPoll is how often a waiting replica looks for the value.
	lockPoll = 5 * time.Millisecond
	// lockTTL bounds a lock its holder never released (it died).
	lockTTL = 5 * time.Second
)

// NewShared returns the Redis level of the values of one kind, under
// keys prefix+fmt.Sprint(key).
func NewShared[K comparable, V any](rdb redis.Cmdable, prefix string, ttl time.Duration) *Shared[K, V] {
	return &Shared[K, V]{rdb: rdb, prefix: prefix, ttl: ttl}
}

// keys are k's value and version keys, in one hash slot (a Redis
// Cluster runs the scripts on both).
func (s *Shared[K, V]) keys(k K) (value, version string) {
	tag := "{" + s.prefix + fmt.Sprint(k) + "}"
	return tag, tag + ":v"
}

// lockKey is the key a replica loading the value of valueKey holds.
func lockKey(valueKey string) string { return valueKey + ":lock" }

// awaitValue waits, up to LockWait, for another replica's load of
// valueKey to land in Redis.
func (s *Shared[K, V]) awaitValue(ctx context.Context, valueKey string) (V, bool) {
	var zero V
	poll := time.NewTicker(lockPoll)
	defer poll.Stop()
	deadline := time.NewTimer(LockWait)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return zero, false
		case <-deadline.C:
			return zero, false
		case <-poll.C:
		}
		raw, err := s.rdb.Get(ctx, valueKey).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		var v V
		if err != nil || json.Unmarshal(raw, &v) != nil {
			return zero, false
		}
		return v, true
	}
}

// storeIfUnchanged sets KEYS[1] to ARGV[1] for ARGV[2] ms unless
// KEYS[2], the key's version, differs from ARGV[3] ("" for none).
var storeIfUnchanged = redis.NewScript(`
local v = redis.call('GET', KEYS[2]) or ''
if v ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// invalidate deletes KEYS[1] and bumps its version KEYS[2], which lives
// ARGV[1] ms: longer than any load, so a load that read the version
// before finds it changed.
var invalidate = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1`)

// versionTTL is how long a key's version outlives its last write: far
// longer than a load takes.
const versionTTL = 10 * time.Minute

// Through returns load behind s: the value in Redis when there is one,
// else load's, stored in Redis for the loads after it.
func (s *Shared[K, V]) Through(load func(context.Context, K) (V, error)) func(context.Context, K) (V, error) {
	return func(ctx context.Context, k K) (V, error) {
		valueKey, versionKey := s.keys(k)
		var get, ver *redis.StringCmd
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			get, ver = p.Get(ctx, valueKey), p.Get(ctx, versionKey)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			s.errs.Add(1)
			return load(ctx, k)
		}
		if raw, err := get.Bytes(); err == nil {
			var v V
			if err := json.Unmarshal(raw, &v); err == nil {
				s.hits.Add(1)
				return v, nil
			}
		}
		// Another replica is loading k: take its value when it lands.
		lock := lockKey(valueKey)
		took, err := s.rdb.SetNX(ctx, lock, 1, lockTTL).Result()
		if err == nil && !took {
			if v, ok := s.awaitValue(ctx, valueKey); ok {
				s.hits.Add(1)
				return v, nil
			}
		}
		if took {
			defer s.rdb.Del(context.WithoutCancel(ctx), lock)
		}
		s.misses.Add(1)
		v, err := load(ctx, k)
		if err != nil {
			return v, err
		}
		version, _ := ver.Result() // redis.Nil: never written, version ""
		if err := s.store(ctx, valueKey, versionKey, version, v); err != nil {
			s.errs.Add(1)
		}
		return v, nil
	}
}

// Warm loads k and stores it in Redis whether or not a value is there (a
// warm-up, 预热, before the reads come), unless a write invalidated k
// meanwhile. It returns the value loaded.
func (s *Shared[K, V]) Warm(ctx context.Context, k K, load func(context.Context, K) (V, error)) (V, error) {
	valueKey, versionKey := s.keys(k)
	version, err := s.rdb.Get(ctx, versionKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		var zero V
		return zero, fmt.Errorf("warm %s%v: %w", s.prefix, k, err)
	}
	v, err := load(ctx, k)
	if err != nil {
		return v, err
	}
	if err := s.store(ctx, valueKey, versionKey, version, v); err != nil {
		return v, fmt.Errorf("warm %s%v: %w", s.prefix, k, err)
	}
	return v, nil
}

// store sets k's value to v for a jittered TTL unless its version is no
// longer version.
func (s *Shared[K, V]) store(ctx context.Context, valueKey, versionKey, version string, v V) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ttl := expiry(time.Time{}, s.ttl).Sub(time.Time{})
	return storeIfUnchanged.Run(ctx, s.rdb, []string{valueKey, versionKey}, raw, ttl.Milliseconds(), version).Err()
}

// Invalidate drops k's value and makes every load under way for it
// discard what it read.
func (s *Shared[K, V]) Invalidate(ctx context.Context, k K) error {
	valueKey, versionKey := s.keys(k)
	if err := invalidate.Run(ctx, s.rdb, []string{valueKey, versionKey}, versionTTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("invalidate %s%v: %w", s.prefix, k, err)
	}
	return nil
}

// Stats returns s's counts: Hits (a value was in Redis), Misses (the
// source was asked and the value stored) and Errors (Redis failed; the
// source was asked).
func (s *Shared[K, V]) Stats() Stats {
	return Stats{Level: L2, Hits: s.hits.Load(), Misses: s.misses.Load(), Errors: s.errs.Load()}
}
