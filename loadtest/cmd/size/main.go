// Command size is `make size`: from a sale's expected users (a plan, see
// loadtest/sizing/*.yaml) it derives each endpoint's average and peak
// request rate and divides by what one instance was measured to carry on
// this machine, giving the replicas, Redis primaries and Kafka
// partitions the sale needs (docs/sizing.md).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/flashsale/flashsale/loadtest/sizing"
)

func main() {
	plan := flag.String("plan", "loadtest/sizing/seed002.yaml", "the sale's expected traffic (YAML)")
	report := flag.String("report", "", "a replay's report.json (make demo writes loadtest/out/report.json): capacities from its run instead of docs/benchmarks.md's")
	headroom := flag.Float64("headroom", 0, "multiply every peak by this before dividing (overrides the plan's; default 1.5)")
	flag.Parse()
	if err := run(*plan, *report, *headroom); err != nil {
		fmt.Fprintln(os.Stderr, "size:", err)
		os.Exit(1)
	}
}

func run(planPath, report string, headroom float64) error {
	p, err := sizing.Load(planPath)
	if err != nil {
		return err
	}
	if headroom != 0 {
		if headroom < 1 {
			return fmt.Errorf("-headroom %g: must be at least 1", headroom)
		}
		p.Headroom = headroom
	}
	caps := sizing.DefaultCapacities()
	if report != "" {
		if caps, err = sizing.CapacitiesFromReport(report); err != nil {
			return err
		}
	}
	r, err := sizing.Size(p, caps)
	if err != nil {
		return err
	}
	r.Print(os.Stdout)
	return nil
}
