package sizing

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/flashsale/flashsale/proto/limits"
)

// n formats x rounded to a whole number with thousands separators.
func n(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Print writes the result as two tables and the notes on them.
func (r *Result) Print(w io.Writer) {
	p := r.Plan
	conc := fmt.Sprintf("%g%% of the traffic in %g%% of %s", 100*p.Peak.Share, 100*p.Peak.Time, p.Window.D())
	if p.Peak.Span > 0 {
		conc = fmt.Sprintf("%g%% of the traffic within %s of %s", 100*p.Peak.Share, p.Peak.Span.D(), p.Window.D())
	}
	fmt.Fprintf(w, "plan %s: %s users, %g%% visit (%s), %g%% of visitors get an order (%s)\n",
		p.Name, n(float64(p.Users)), 100**p.VisitShare, n(r.Visitors), 100**p.Conversion, n(r.Orders))
	fmt.Fprintf(w, "peak: %s, busiest second %g x that period's average; headroom %g\n\n", conc, p.Peak.Factor, p.Headroom)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "endpoint\troute\trequests\tavg/s\tbusy/s\tpeak/s")
	for _, e := range r.Endpoints {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Route, n(e.Total), n(e.AvgPerS), n(e.BusyPerS), n(e.PeakPerS))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "component\tpeak/s\tx headroom\tper instance/s\tinstances")
	for _, c := range r.Components {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d %s\n", c.Name, n(c.PeakPerS), n(c.Needed), n(c.Capacity.PerSec), c.Instances, c.Unit)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nper-instance capacities:")
	for _, c := range r.Components {
		fmt.Fprintf(w, "  %-9s %s\n", c.Name, c.Capacity.Source)
	}
	fmt.Fprintln(w, "\nnotes:")
	if *p.ReadCacheHit > 0 {
		fmt.Fprintf(w, "  product gets %.4g%% of the detail and activity reads: the gateway's cache answers the rest\n", 100*(1-*p.ReadCacheHit))
	}
	fmt.Fprintf(w, "  in flight at the peak (Little's law, %s a request): %s requests\n", p.ResponseTime.D(), n(r.InFlight))
	for _, c := range r.Components {
		switch c.Name {
		case "redis":
			switch {
			case r.HotSalePrimaries > limits.MaxStockBuckets:
				fmt.Fprintf(w, "  the busiest sale (%g%% of the buys) needs %s buys/s, %d primaries' worth: more than its %d stock buckets can spread;"+
					" split it over several activities (docs/scaling.md)\n",
					100**p.HotSaleShare, n(r.HotSale), r.HotSalePrimaries, limits.MaxStockBuckets)
			case r.HotSalePrimaries > 1:
				fmt.Fprintf(w, "  the busiest sale (%g%% of the buys) needs %s buys/s, %d primaries' worth: one primary cannot hold it;"+
					" preheat it with stock_buckets: %d, each bucket on a primary of its own (docs/scaling.md)\n",
					100**p.HotSaleShare, n(r.HotSale), r.HotSalePrimaries, r.HotSalePrimaries)
			default:
				fmt.Fprintf(w, "  the busiest sale (%g%% of the buys) needs %s buys/s on its one slot: one primary holds it\n",
					100**p.HotSaleShare, n(r.HotSale))
			}
		case "kafka":
			if c.Instances > r.KafkaFromConsumer {
				fmt.Fprintf(w, "  kafka: the orders need %d partitions; %d so that every order replica consumes one\n", r.KafkaFromConsumer, c.Instances)
			}
		}
	}
}
