package discovery

import (
	"context"
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
	var (
		index uint64
		last  map[string]string
		wait  = c.retryMin
	)
	for ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: blockWait}).WithContext(ctx)
		pairs, meta, err := c.api.KV().List(prefix, q)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("consul watch: query failed", "prefix", prefix, "wait", wait, "err", err)
			if !sleep(ctx, wait) {
				return nil
			}
			wait = min(2*wait, c.retryMax)
			continue
		}
		wait = c.retryMin
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
		kv := make(map[string]string, len(pairs))
		for _, p := range pairs {
			kv[strings.TrimPrefix(p.Key, prefix)] = string(p.Value)
		}
		if last != nil && maps.Equal(kv, last) {
			continue
		}
		last = kv
		c.log.Info("consul watch: settings changed", "prefix", prefix, "keys", len(kv))
		apply(kv)
	}
	return nil
}
