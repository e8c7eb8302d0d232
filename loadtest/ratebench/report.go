package ratebench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"

	"github.com/flashsale/flashsale/loadtest/report"
)

// PrintTable writes one Markdown row per limiter.
func PrintTable(w io.Writer, rep *Report) {
	c := rep.Config
	fmt.Fprintf(w, "Trace: %s: %d arrivals. Nominal limit %d/s, burst %d.\n\n", c.Trace, rep.Arrivals, c.Rate, c.Burst)
	fmt.Fprintf(w, "| limiter | clock | admitted | refused | admitted/s | most admitted in any %s | in any %s | bytes per key | Redis round trips per decision |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n", Bucket, c.window())
	for _, r := range rep.Results {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f | %d | %d | %s | %.2f |\n", r.Name, r.Clock, r.TotalAdmitted(), r.TotalRefused(),
			float64(r.TotalAdmitted())/c.Trace.Duration.Seconds(), r.BurstTolerance, r.MostInWindow, memory(r), r.RoundTrips)
	}
	for _, r := range rep.Results {
		if r.Limit != nil {
			fmt.Fprintf(w, "\n%s: in-flight bound per %s: %v\n", r.Name, Bucket, r.Limit)
		}
	}
}

func memory(r Result) string {
	return fmt.Sprintf("%.0f (%s)", math.Round(r.BytesPerKey), r.MemoryNote)
}

// WriteHTML writes a self-contained page: the table and the admitted
// per 100 ms of every limiter over the offered trace, as inline SVG.
func WriteHTML(w io.Writer, rep *Report) error {
	xs := make([]float64, len(rep.Offered))
	for i := range xs {
		xs[i] = (float64(i) + 0.5) * Bucket.Seconds()
	}
	per := func(v []int) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	// The legends name each limiter without its parenthesis.
	all := []report.Series{{Name: "offered", Xs: xs, Ys: per(rep.Offered)}}
	var rateOnly []report.Series
	for _, r := range rep.Results {
		name, _, _ := strings.Cut(r.Name, " (")
		s := report.Series{Name: name, Xs: xs, Ys: per(r.Admitted)}
		all = append(all, s)
		if !r.Concurrency {
			rateOnly = append(rateOnly, s)
		}
	}
	unit := "requests per " + Bucket.String()
	charts := []template.HTML{
		report.LineChart("Offered and admitted per "+Bucket.String(), unit, all, nil),
		report.LineChart("Admitted per "+Bucket.String()+", rate limiters only", unit, rateOnly, nil),
	}
	for _, r := range rep.Results {
		if r.Limit != nil {
			charts = append(charts, report.LineChart("The adaptive limit per "+Bucket.String(), "requests", []report.Series{
				{Name: "offered", Xs: xs, Ys: per(rep.Offered)},
				{Name: "admitted", Xs: xs, Ys: per(r.Admitted)},
				{Name: "refused", Xs: xs, Ys: per(r.Refused)},
				{Name: "in-flight bound", Xs: xs, Ys: per(r.Limit)},
			}, nil))
		}
	}
	return page.Execute(w, map[string]any{
		"R":      rep,
		"Charts": charts,
		"Bucket": Bucket.String(),
		"Window": rep.Config.window().String(),
	})
}

var page = template.Must(template.New("ratebench").Funcs(template.FuncMap{"memory": memory}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rate limiters under one bursty trace</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
td.n{text-align:right}.chart{display:block;margin:12px 0}
</style></head><body>
<h1>Rate limiters under one bursty trace</h1>
<p>Trace: {{.R.Config.Trace}}: {{.R.Arrivals}} arrivals. Nominal limit {{.R.Config.Rate}}/s, burst {{.R.Config.Burst}}
(the window limiters: {{.R.Config.Burst}} per window of burst/rate). The adaptive concurrency limit bounds requests in flight
in front of a simulated service of {{.R.Config.Service.Workers}} workers at {{.R.Config.Service.Latency}}, not a rate.</p>
{{range .Charts}}{{.}}{{end}}
<table><tr><th>limiter</th><th>clock</th><th>admitted</th><th>refused</th><th>most admitted in any {{.Bucket}}</th><th>in any {{.Window}}</th><th>bytes per key</th><th>Redis round trips per decision</th></tr>
{{range .R.Results}}<tr><td>{{.Name}}</td><td>{{.Clock}}</td><td class="n">{{.TotalAdmitted}}</td><td class="n">{{.TotalRefused}}</td><td class="n">{{.BurstTolerance}}</td><td class="n">{{.MostInWindow}}</td><td>{{memory .}}</td><td class="n">{{printf "%.2f" .RoundTrips}}</td></tr>
{{end}}</table>
</body></html>
`))
