package drive

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/flashsale/flashsale/loadtest/result"
	"github.com/flashsale/flashsale/loadtest/scenario"
	"github.com/flashsale/flashsale/services/channelsim"
)

// faultAction is how a fault is put on and lifted.
type faultAction struct {
	apply, lift func(context.Context) error
}

// scheduleFaults applies the scenario's faults and lifts them at their
// times; it returns a func that waits for the last lift. A fault that
// cannot run here is reported with the reason (faultActionOf).
func (r *replay) scheduleFaults(ctx context.Context) func() {
	var wg sync.WaitGroup
	r.faults.stats = make([]result.FaultStat, len(r.scenario.Faults))
	for i, f := range r.scenario.Faults {
		action, skipped := r.faultActionOf(f)
		if skipped != "" {
			r.faults.stats[i] = result.FaultStat{Fault: f.Name(), Status: skipped}
			continue
		}
		wg.Go(func() { r.runFault(ctx, i, f, action) })
	}
	return wg.Wait
}

// faultActionOf says how fault f is applied and lifted, or why it is
// skipped: a target's fault goes to Options.Infra; a down channel is
// switched off in the platform's routing; slow and failing ones are set
// at the channel simulator, and restored to what they were.
func (r *replay) faultActionOf(f scenario.Fault) (action faultAction, skipped string) {
	switch {
	case r.opts.PressureTest:
		return action, skippedPressureTest
	case f.Target != "" && r.opts.Infra == nil:
		return action, "skipped: faults on the platform's own parts need the platform make demo starts"
	case f.Target != "":
		var undo func(context.Context) error
		action.apply = func(ctx context.Context) (err error) {
			undo, err = r.opts.Infra.Fault(ctx, f)
			return err
		}
		action.lift = func(ctx context.Context) error { return undo(ctx) }
	case f.Mode == scenario.FaultDown && !r.features[result.FeatureChannels].Available:
		return action, r.features[result.FeatureChannels].Reason
	case f.Mode == scenario.FaultDown:
		action.apply = func(ctx context.Context) error { return r.switchChannel(ctx, f.Channel, false) }
		action.lift = func(ctx context.Context) error { return r.switchChannel(ctx, f.Channel, true) }
	case r.opts.Simulator == nil:
		return action, "skipped: no channel simulator admin URL (FLASHSALE_CHANNELSIM_URL)"
	default:
		action = r.simulatorFault(f)
	}
	return action, ""
}

// simulatorFault sets a slow or failing channel at the channel
// simulator, and sets back what the channel was when it lifts.
func (r *replay) simulatorFault(f scenario.Fault) faultAction {
	var saved channelsim.Behaviour
	return faultAction{
		apply: func(ctx context.Context) error {
			var all map[string]channelsim.Behaviour
			if _, err := r.opts.Simulator.Do(ctx, http.MethodGet, "/admin/channels", "", nil, nil, &all); err != nil {
				return err
			}
			saved = all[f.Channel]
			b := saved
			if f.Mode == scenario.FaultSlow {
				b.LatencyMS = f.Latency.D().Milliseconds()
			} else {
				b.FailureRate = f.FailureRate
			}
			_, err := r.opts.Simulator.Do(ctx, http.MethodPut, "/admin/channels/"+f.Channel, "", nil, b, nil)
			return err
		},
		lift: func(ctx context.Context) error {
			_, err := r.opts.Simulator.Do(ctx, http.MethodPut, "/admin/channels/"+f.Channel, "", nil, saved, nil)
			return err
		},
	}
}

// channelEndpoints are what a payment channel's fault can fail: paying,
// the wallet, a payment's read (which may ask the channel), a refund
// (the money goes back through the channel) and the switch that turns
// the channel off.
var channelEndpoints = []string{EndpointPay, EndpointWallet, EndpointPayment, EndpointRefund, EndpointChannel}

// reachOf is the endpoints fault f can fail (result.FaultStat.Reaches):
// a channel's, the payment endpoints; one on the platform's own parts
// (Redis, Postgres, Kafka, a service), every endpoint.
func reachOf(f scenario.Fault) []string {
	if f.Channel != "" {
		return channelEndpoints
	}
	return nil
}

// runFault applies fault i at its time and lifts it when it has lasted,
// recording both calls and when the fault was on.
func (r *replay) runFault(ctx context.Context, i int, f scenario.Fault, action faultAction) {
	name := f.Name()
	st := result.FaultStat{Fault: name, Status: "applied and lifted", Reaches: reachOf(f)}
	for step, at := range []time.Duration{f.At.D(), f.At.D() + f.Lasts.D()} {
		select {
		case <-ctx.Done():
			r.faults.on[i].Store(false)
			r.faults.stats[i] = result.FaultStat{Fault: name, Status: "interrupted"}
			return
		case <-time.After(time.Until(r.start.Add(at))):
		}
		do := action.apply
		if step == 1 {
			do = action.lift
		}
		t0 := time.Now()
		err := do(ctx)
		r.rec.done(EndpointChannel, outcomeOf(err), t0, time.Now())
		if err != nil {
			r.faults.on[i].Store(false)
			r.faults.stats[i] = result.FaultStat{Fault: name, Status: "failed: " + err.Error()}
			return
		}
		// The fault is on from the end of its apply (a kill is
		// done once the process is gone) to the end of its lift
		// (a restart is done once the part answers again).
		if step == 0 {
			st.OnS = time.Since(r.start).Seconds()
		} else {
			st.OffS = time.Since(r.start).Seconds()
		}
		r.faults.on[i].Store(step == 0)
	}
	r.faults.stats[i] = st
}
