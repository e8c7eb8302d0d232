package report

import (
	_ "embed"
	"html/template"
	"io"
	"regexp"
	"slices"

	"github.com/flashsale/flashsale/loadtest/result"
)

// WriteHTML writes a self-contained HTML page: tables and charts as
// inline SVG, no script and nothing fetched from elsewhere.
func WriteHTML(w io.Writer, res *result.Replay) error {
	var windows []result.FaultStat
	for _, f := range res.Faults {
		if f.Ran() {
			windows = append(windows, f)
		}
	}
	return reportPage.Execute(w, map[string]any{
		"R":       res,
		"Charts":  charts(res),
		"Windows": windows,
	})
}

// namedChart is a chart with a note shown under it.
type namedChart struct {
	SVG  template.HTML
	Note string
}

func charts(res *result.Replay) []namedChart {
	var ts, arr, comp, p50, p99, p999 []float64
	for _, s := range res.Seconds {
		ts = append(ts, float64(s.T))
		arr, comp = append(arr, float64(s.Arrivals)), append(comp, float64(s.Completions))
		p50, p99, p999 = append(p50, s.P50), append(p99, s.P99), append(p999, s.P999)
	}
	bands := faultBands(res)
	out := []namedChart{
		{SVG: LineChart("Arrivals (scheduled) vs completions", "requests/s", []Series{{"arrivals", ts, arr}, {"completions", ts, comp}}, bands)},
		{SVG: LineChart("Latency from the scheduled send time", "ms", []Series{{"p50", ts, p50}, {"p99", ts, p99}, {"p99.9", ts, p999}}, bands)},
	}
	if len(bands) > 0 {
		out[0].Note = "Shaded: the faults while they were on, numbered as in the fault windows table."
	}
	var labels []string
	var counts []float64
	for _, e := range res.Endpoints {
		labels, counts = append(labels, e.Endpoint+" · "+e.Outcome), append(counts, float64(e.Count))
	}
	out = append(out, namedChart{SVG: barChart("Outcomes by endpoint", labels, counts)})
	var stock []Series
	keys := make([]string, 0, len(res.Stock))
	for k := range res.Stock {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s := Series{Name: k}
		for _, p := range res.Stock[k] {
			s.Xs, s.Ys = append(s.Xs, p.T), append(s.Ys, float64(p.Remaining))
		}
		stock = append(stock, s)
	}
	out = append(out, namedChart{SVG: LineChart("Remaining stock per flash sale", "units", stock, bands)})
	labels, counts = nil, nil
	channels := make([]string, 0, len(res.Payments))
	for ch := range res.Payments {
		channels = append(channels, ch)
	}
	slices.Sort(channels)
	for _, ch := range channels {
		statuses := make([]string, 0, len(res.Payments[ch]))
		for st := range res.Payments[ch] {
			statuses = append(statuses, st)
		}
		slices.Sort(statuses)
		for _, st := range statuses {
			labels, counts = append(labels, ch+" · "+st), append(counts, float64(res.Payments[ch][st]))
		}
	}
	pay := namedChart{SVG: barChart("Payments per channel", labels, counts)}
	if len(labels) == 0 {
		pay.Note = "No payments: " + res.Feature(result.FeaturePay).Reason
	}
	return append(out, pay)
}

// reportTemplate is the page, report.html.tmpl, read at build time.
//
//go:embed report.html.tmpl
var reportTemplate string

// continuation is a line break followed by indentation: in
// report.html.tmpl an indented line continues the one above.
var continuation = regexp.MustCompile(`\n[ \t]+`)

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":       func(v float64) float64 { return 100 * v },
	"inc":       func(i int) int { return i + 1 },
	"recovered": recovered,
	"cacheLine": cacheLine,
}).Parse(continuation.ReplaceAllString(reportTemplate, "")))
