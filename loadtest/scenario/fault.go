package scenario

import (
	"fmt"
)

// FaultReplica is the order replica an order-replica fault kills: the
// second, so the first (the one an order fault kills) is the one left.
const FaultReplica = 1

// Fault modes. A down channel is switched off in the platform's routing
// (PUT /admin/v1/channels/{channel}); slow and failing are how the
// channel itself behaves, set at the channel simulator
// (PUT /admin/channels/{channel}). On a target (the platform's own
// parts), latency, down, blackhole and bandwidth act on its connections
// on the real wire, and kill stops a process as a crash does and starts
// it again when the fault lasts out.
const (
	FaultDown      = "down"
	FaultSlow      = "slow"
	FaultFailing   = "failing"
	FaultLatency   = "latency"
	FaultBlackhole = "blackhole"
	FaultBandwidth = "bandwidth"
	FaultKill      = "kill"
)

// The targets of infrastructure faults and the modes each takes: the
// connections to Redis, Postgres and the broker, the order service's link
// to inventory, and the processes that can be killed: the order service
// (its first replica, between a consumer batch's write and its commit)
// and one order replica of several (replica FaultReplica, as kill -9).
var targetModes = map[string][]string{
	"redis":         {FaultLatency, FaultDown, FaultBlackhole, FaultBandwidth, FaultKill},
	"postgres":      {FaultLatency, FaultDown, FaultBlackhole, FaultBandwidth, FaultKill},
	"kafka":         {FaultLatency, FaultDown, FaultBlackhole, FaultBandwidth},
	"inventory":     {FaultLatency, FaultDown, FaultBlackhole, FaultBandwidth},
	"order":         {FaultKill},
	"order-replica": {FaultKill},
}

// Fault takes a payment channel down, makes it slow (adding Latency to
// every call) or failing (answering FailureRate of the calls 503) at At
// for Lasts; or, with Target instead of Channel, puts a fault on one of
// the platform's own parts (Latency ± Jitter, RateKB kilobytes a second
// for bandwidth). Infrastructure faults need the platform the demo
// starts in process; against another gateway they are skipped.
type Fault struct {
	Channel     string   `yaml:"channel"`
	Target      string   `yaml:"target"`
	Mode        string   `yaml:"mode"`
	At          Duration `yaml:"at"`
	Lasts       Duration `yaml:"lasts"`
	Latency     Duration `yaml:"latency"`
	Jitter      Duration `yaml:"jitter"`
	RateKB      int64    `yaml:"rate_kb"`
	FailureRate float64  `yaml:"failure_rate"`
}

// Name says what the fault does, for the display and the report.
func (f Fault) Name() string {
	return fmt.Sprintf("%s at %s for %s", f.Label(), f.At.D(), f.Lasts.D())
}

// Label names the fault without its times ("kafka blackhole"), as the
// live display shows it while it is on.
func (f Fault) Label() string {
	what := f.Channel
	if f.Target != "" {
		what = f.Target
	}
	return what + " " + f.Mode
}
