package redisclient

import "github.com/redis/go-redis/v9"

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
// A client kind without one (a Ring) is returned as it is.
func Coalesced(rdb redis.UniversalClient) redis.Cmdable {
	ap, err := rdb.AsyncAutoPipeline()
	if err != nil {
		return rdb
	}
	return ap
}
