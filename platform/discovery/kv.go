package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/hashicorp/consul/api"
)

// WatchPrefix calls apply with every key under prefix (the prefix cut off)
// and its value, first once Consul answers and then each time any of them
// changes, until ctx ends. Without Consul it returns at once and apply is
// never called: the static settings stay. A key that is deleted simply
// disappears from the map, so its setting falls back to the static one.
func (c *Consul) WatchPrefix(ctx context.Context, prefix string, apply func(map[string]string)) error {
	if c == nil {
		return nil
	}
	var last map[string]string
	c.watch(ctx, "keys under "+prefix, func(q *api.QueryOptions) (*api.QueryMeta, error) {
		pairs, meta, err := c.api.KV().List(prefix, q)
		if err != nil {
			return nil, err
		}
		kv := make(map[string]string, len(pairs))
		for _, p := range pairs {
			kv[strings.TrimPrefix(p.Key, prefix)] = string(p.Value)
		}
		if last != nil && maps.Equal(kv, last) {
			return meta, nil
		}
		last = kv
		c.log.Info("consul watch: settings changed", "prefix", prefix, "keys", len(kv))
		apply(kv)
		return meta, nil
	}, nil)
	return nil
}

// Put sets key to value, for every watcher of its prefix. Without Consul
// it fails with ErrNoConsul: a setting then lives in one process only.
func (c *Consul) Put(ctx context.Context, key, value string) error {
	if c == nil {
		return ErrNoConsul
	}
	_, err := c.api.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul: put %s: %w", key, err)
	}
	return nil
}

// ErrNoConsul is Put's answer when no Consul is configured.
var ErrNoConsul = errors.New("consul: not configured")

// watch runs query as a Consul blocking query, again and again until ctx
// ends: each run waits until the answer's index moves past the last one,
// so query sees every change as it happens and nothing in between. A
// failed query is handed to failed (when set) and retried with backoff.
func (c *Consul) watch(ctx context.Context, what string, query func(*api.QueryOptions) (*api.QueryMeta, error), failed func(error)) {
	var index uint64
	wait := c.retryMin
	for ctx.Err() == nil {
		meta, err := query((&api.QueryOptions{WaitIndex: index, WaitTime: blockWait}).WithContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("consul: query failed", "query", what, "wait", wait, "err", err)
			if failed != nil {
				failed(err)
			}
			if !sleep(ctx, wait) {
				return
			}
			wait = min(2*wait, c.retryMax)
			continue
		}
		wait = c.retryMin
		// Consul's rule for blocking queries: an index that goes
		// backwards (a snapshot restore, a new leader) restarts the
		// watch from zero.
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
	}
}
