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

// scheduleFaults applies the scenario's faults and lifts them at their
// times; it returns a func that waits for the last lift. A down channel
// is switched off in the platform's routing; slow and failing ones are
// set at the channel simulator, and restored to what they were.
func (r *replay) scheduleFaults(ctx context.Context) func() {
	var wg sync.WaitGroup
	r.faults.stats = make([]result.FaultStat, len(r.scenario.Faults))
	for i, f := range r.scenario.Faults {
		name := f.Name()
		var apply, lift func(context.Context) error
		switch {
		case f.Target != "" && r.opts.Infra == nil:
			r.faults.stats[i] = result.FaultStat{Fault: name, Status: "skipped: faults on the platform's own parts need the platform make demo starts"}
			continue
		case f.Target != "":
			var undo func(context.Context) error
			apply = func(ctx context.Context) (err error) {
				undo, err = r.opts.Infra.Fault(ctx, f)
				return err
			}
			lift = func(ctx context.Context) error { return undo(ctx) }
		case f.Mode == scenario.FaultDown && !r.features[result.FeatureChannels].Available:
			r.faults.stats[i] = result.FaultStat{Fault: name, Status: r.features[result.FeatureChannels].Reason}
			continue
		case f.Mode == scenario.FaultDown:
			apply = func(ctx context.Context) error { return r.switchChannel(ctx, f.Channel, false) }
			lift = func(ctx context.Context) error { return r.switchChannel(ctx, f.Channel, true) }
		case r.opts.Simulator == nil:
			r.faults.stats[i] = result.FaultStat{Fault: name, Status: "skipped: no channel simulator admin URL (FLASHSALE_CHANNELSIM_URL)"}
			continue
		default:
			var saved channelsim.Behaviour
			apply = func(ctx context.Context) error {
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
			}
			lift = func(ctx context.Context) error {
				_, err := r.opts.Simulator.Do(ctx, http.MethodPut, "/admin/channels/"+f.Channel, "", nil, saved, nil)
				return err
			}
		}
		wg.Go(func() {
			st := result.FaultStat{Fault: name, Status: "applied and lifted"}
			for step, at := range []time.Duration{f.At.D(), f.At.D() + f.Lasts.D()} {
				select {
				case <-ctx.Done():
					r.faults.on[i].Store(false)
					r.faults.stats[i] = result.FaultStat{Fault: name, Status: "interrupted"}
					return
				case <-time.After(time.Until(r.start.Add(at))):
				}
				do := apply
				if step == 1 {
					do = lift
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
		})
	}
	return wg.Wait
}
