package localstack

import (
	"sync/atomic"

	"github.com/flashsale/flashsale/platform/ids"
)

var nodeIDs atomic.Int64

// NodeID hands each service a test run starts its own snowflake replica
// number, so services on manual clocks set to the same instant never make
// equal ids. The numbers wrap at ids.MaxReplica: a run repeated with
// -count=N starts many more services than there are replicas, but only a
// few of them live at once, and a replica number comes back only after
// 127 later starts, by which time its first holder has stopped.
func NodeID() int64 { return (nodeIDs.Add(1) - 1) % (ids.MaxReplica + 1) }
