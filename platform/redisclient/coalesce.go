package redisclient

import "github.com/redis/go-redis/v9"

// Coalesced returns rdb's blocking auto-pipeliner: a drop-in command
// surface where each call still blocks until Redis has answered it, but
// the commands of concurrent callers that arrive while a batch is on the
// wire leave together as the next pipeline. Under a flash-sale spike
// that turns thousands of one-command round trips (a write and a read
// system call on both ends, each) into a few deep pipelines; a lone
// caller still goes out at once, so nothing waits for a batch to fill.
// The hot paths (reserve, pending records, per-user limits) use it; the
// pipeliner is closed with rdb.
//
// A client kind without one (a Ring) is returned as it is.
func Coalesced(rdb redis.UniversalClient) redis.Cmdable {
	ap, err := rdb.AutoPipeline()
	if err != nil {
		return rdb
	}
	return ap
}
