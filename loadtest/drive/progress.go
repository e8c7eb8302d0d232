package drive

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// background samples stock and prints progress until stopped.
func (r *replay) background(ctx context.Context) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			r.sampleStock(ctx)
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	if r.opts.Progress != nil {
		wg.Go(func() {
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					r.printProgress(true)
					return
				case <-t.C:
					r.printProgress(false)
				}
			}
		})
	}
	return func() { close(stop); wg.Wait() }
}

func (r *replay) sampleStock(ctx context.Context) {
	for key, a := range r.catalog.sales {
		got, err := r.gateway.GetActivity(ctx, a.ActivityID)
		if err == nil {
			r.rec.stockAt(key, time.Now(), got.Remaining)
		}
	}
}

func (r *replay) printProgress(final bool) {
	now := time.Now()
	t := now.Sub(r.start)
	var active []string
	for _, p := range r.scenario.Phases {
		if t >= p.Start.D() && t < p.End() {
			active = append(active, p.Name)
		}
	}
	if len(active) == 0 {
		active = []string{"draining"}
	}
	var on []string
	for i := range r.faults.on {
		if r.faults.on[i].Load() {
			on = append(on, r.scenario.Faults[i].Label())
		}
	}
	faults := ""
	if len(on) > 0 {
		faults = "  FAULT " + strings.Join(on, ", ")
	}
	due, done, p99 := r.rec.live(now)
	end := "  "
	if final {
		end = "  \n"
	}
	// The line is rewritten in place; the padding clears what a longer
	// line (a fault's name) left behind.
	fmt.Fprintf(r.opts.Progress, "\r  t=%3.0fs %-24s due %5d/s  done %5d/s  p99 %7.1fms  in flight %4d  accepted %6d%-60s%s",
		t.Seconds(), strings.Join(active, "+"), due, done, p99, r.load.inFlight.Load(), r.load.accepted.Load(), faults, end)
}
