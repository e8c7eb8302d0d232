package loadtest

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/flashsale/flashsale/loadtest/scenario"
)

// PrintReplay writes the replay's text report: phases, features,
// endpoints by outcome with latency percentiles, sales, follow-ups and the
// capacity figure.
func PrintReplay(w io.Writer, res *ReplayResult) {
	fmt.Fprintf(w, "\nReplay %s against %s: %d users, %.1fs\n", res.Scenario, res.Target, res.Users, res.ElapsedS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nphase\tkind\tfrom\tto\tpeak/s\tsent\tanswered/s\tanswered p99 ms\trefused (429)\trefused p99 ms\tstatus")
	for _, p := range res.Phases {
		seckill := "\t\t\t"
		if p.Kind == scenario.PhaseSeckill && p.Status == "ran" {
			seckill = fmt.Sprintf("%.0f\t%.1f\t%d\t%.1f", p.AnsweredPerS, p.AnsweredP99, p.Refused, p.RefusedP99)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0fs\t%.0fs\t%.0f\t%d\t%s\t%s\n", p.Name, p.Kind, p.StartS, p.EndS, p.PeakRPS, p.Sent, seckill, p.Status)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nOptional endpoints:")
	for _, f := range res.Features {
		status := "available"
		if !f.Available {
			status = f.Reason
		}
		fmt.Fprintf(w, "  %-11s %-40s %s\n", f.Name, f.Endpoint, status)
	}
	for _, f := range res.Faults {
		fmt.Fprintf(w, "  fault %s: %s\n", f.Fault, f.Status)
	}
	printFaultWindows(w, res.Faults)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\nendpoint\toutcome\tcount\tp50 ms\tp90 ms\tp99 ms\tp999 ms\tmax ms\t")
	for _, e := range res.Endpoints {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", e.Endpoint, e.Outcome, e.Count, e.P50, e.P90, e.P99, e.P999, e.Max)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nFlash sales:")
	for _, a := range res.Activities {
		s := res.Sales[a.Key]
		challenge := ""
		if a.Challenge {
			challenge = fmt.Sprintf("  challenge (refused by the wall %d)", s.Counts[Walled])
		}
		fmt.Fprintf(w, "  %-14s stock %6d  limit %d  accepted %6d  replays %5d  sold out %7d  limited %6d  not active %6d  rate limited %6d  overloaded %6d  errors %d%s\n",
			a.Key, a.Stock, a.PerUserLimit, a.Accepted, s.Counts[Replayed], s.Counts[SoldOut], s.Counts[LimitExceeded],
			s.Counts[NotActive], s.Counts[RateLimited], s.Counts[Overloaded], s.Counts[Failed], challenge)
	}
	printBots(w, res.Bots)
	f := res.FollowUps
	fmt.Fprintf(w, "Buyers after the sale: paid %d (of them %d late, %d twice; failed %d), cancelled %d (failed %d), asked refunds %d (failed %d), abandoned %d, late payers cut off by the drain %d, skipped (endpoint not available) %d\n",
		f.Paid, f.LatePaid, f.Duplicated, f.PayFailed, f.Cancelled, f.CancelFailed, f.Refunded, f.RefundFailed, f.Abandoned, f.LateCutOff, f.Skipped)
	if c := res.Coupons; c.Templates > 0 {
		fmt.Fprintf(w, "Coupons: %d templates, %d claimed (%d refused), %d used in checkouts, %d refused below threshold\n",
			c.Templates, c.Claimed, c.ClaimFailed, c.Used, c.Refused)
	}
	printPayments(w, res)
	c := res.Capacity
	if c.PerSec == 0 {
		fmt.Fprintf(w, "\nCapacity: no %ds window of flash-sale answers had p99 ≤ %.0f ms\n", c.Window, c.P99Bound)
	} else {
		fmt.Fprintf(w, "\nCapacity: %.0f flash-sale requests/s answered with p99 %.1f ms (best %ds window from t=%ds, bound p99 ≤ %.0f ms)\n",
			c.PerSec, c.P99, c.Window, c.From, c.P99Bound)
	}
	if res.Ceiling != nil && res.Ceiling.PerSec > 0 {
		fmt.Fprintf(w, "Ceiling: %s %.0f/s in the same run; ratio %.3f\n", res.Ceiling.Name, res.Ceiling.PerSec, c.PerSec/res.Ceiling.PerSec)
	}
	if len(res.Caches) > 0 {
		fmt.Fprintln(w, cacheLine(res.Caches))
	}
}

// printBots writes what the bots' requests were answered: by the wall
// that refused them (the error code), overall and by trick.
func printBots(w io.Writer, b *BotStats) {
	if b == nil {
		return
	}
	total, placed := b.total()
	fmt.Fprintf(w, "Bots: %d accounts sent %d requests, %d placed; answered:", b.Accounts, total, placed)
	all := b.byOutcome()
	for _, o := range slices.Sorted(maps.Keys(all)) {
		fmt.Fprintf(w, " %s %d", o, all[o])
	}
	fmt.Fprintln(w)
	for _, t := range BotTricks {
		got := b.Answers[t]
		if len(got) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-19s", t)
		for _, o := range slices.Sorted(maps.Keys(got)) {
			fmt.Fprintf(w, " %s %d", o, got[o])
		}
		fmt.Fprintln(w)
	}
}

// printFaultWindows writes, for each fault that ran, what the requests due
// while it was on got and how soon the platform recovered after its lift.
func printFaultWindows(w io.Writer, faults []FaultStat) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := false
	for _, f := range faults {
		if !f.ran() {
			continue
		}
		if !header {
			fmt.Fprintf(tw, "\nfault window\ton s\toff s\trequests\t5xx or none\tshare\tp99 ms\trecovered after s\t\n")
			header = true
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%d\t%d\t%.1f%%\t%.1f\t%s\t\n", f.Fault, f.OnS, f.OffS, f.Requests, f.Failures,
			100*f.FailureRate, f.P99, recovered(f))
	}
	tw.Flush()
}

// recovered says how soon after its lift the platform recovered from f.
func recovered(f FaultStat) string {
	if f.RecoveredS < 0 {
		return "not before the end"
	}
	return fmt.Sprintf("%.1f", f.RecoveredS)
}

// printPayments writes the per-channel payment table and where the
// accepted orders ended.
func printPayments(w io.Writer, res *ReplayResult) {
	if len(res.Channels) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\nchannel\topened\tpay p50 ms\tpay p99 ms\tconfirmed\twallet p50 ms\twallet p99 ms\tsucceeded\trefunded\tfailed\tpaying\t")
		for _, c := range res.Channels {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%d\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t\n", c.Channel, c.Opened, c.PayP50, c.PayP99,
				c.Confirmed, c.WalletP50, c.WalletP99, c.Final["SUCCEEDED"], c.Final["REFUNDED"], c.Final["FAILED"], c.Final["PAYING"])
		}
		tw.Flush()
	}
	if o := res.Orders; o != nil {
		fmt.Fprintf(w, "Orders at the end: %s; flash-sale units released %d\n", counts(o.ByStatus), o.ReleasedUnits)
		fmt.Fprintf(w, "Payments at the end: %s; automatic refunds %d (late %d, duplicate %d); refunded in full with their order %d\n",
			counts(o.Payments), o.LateRefunds+o.DuplicateRefunds, o.LateRefunds, o.DuplicateRefunds, o.BuyerRefunds)
	}
}

// counts writes a status → count map in a stable order.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", strings.ToLower(k), m[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteReplayJSON writes the result, checks included, as indented JSON.
func WriteReplayJSON(path string, res *ReplayResult) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// WriteReplayHTML writes a self-contained HTML page: tables and charts as
// inline SVG, no script and nothing fetched from elsewhere.
func WriteReplayHTML(w io.Writer, res *ReplayResult) error {
	var windows []FaultStat
	for _, f := range res.Faults {
		if f.ran() {
			windows = append(windows, f)
		}
	}
	return reportPage.Execute(w, map[string]any{
		"R":       res,
		"Charts":  charts(res),
		"Windows": windows,
	})
}

// Series is one line of a LineChart.
type Series struct {
	Name   string
	Xs, Ys []float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

const chartW, chartH, padL, padB, padT, padR = 720.0, 260.0, 56.0, 28.0, 28.0, 150.0

// Band is a stretch of a LineChart's time axis to shade (a fault that
// was on), named by Label.
type Band struct {
	From, To float64
	Label    string
}

// faultBands are the windows of the faults that ran.
func faultBands(res *ReplayResult) []Band {
	var out []Band
	for _, f := range res.Faults {
		if f.ran() {
			out = append(out, Band{f.OnS, f.OffS, f.Fault})
		}
	}
	return out
}

// LineChart draws series as polylines on shared axes (x in seconds),
// over shaded bands, as an inline SVG element.
func LineChart(title, unit string, ss []Series, bands []Band) template.HTML {
	var xmax, ymax float64
	for _, s := range ss {
		for i := range s.Xs {
			xmax, ymax = math.Max(xmax, s.Xs[i]), math.Max(ymax, s.Ys[i])
		}
	}
	xmax, ymax = math.Max(xmax, 1), niceCeil(ymax)
	x := func(v float64) float64 { return padL + v/xmax*(chartW-padL-padR) }
	y := func(v float64) float64 { return chartH - padB - v/ymax*(chartH-padB-padT) }
	var b strings.Builder
	chartFrame(&b, title)
	for i, bd := range bands {
		x0, x1 := x(math.Min(bd.From, xmax)), x(math.Min(bd.To, xmax))
		fmt.Fprintf(&b, `<rect class="fault" x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#d62728" fill-opacity="0.12"><title>%s</title></rect>`,
			x0, padT, math.Max(x1-x0, 1), chartH-padB-padT, html.EscapeString(bd.Label))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="9" fill="#a00">%d</text>`, x0+1, padT+10+float64(i%3)*10, i+1)
	}
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end" font-size="11">%s</text>`,
			padL, chartW-padR, y(v), y(v), padL-4, y(v)+4, fmtNum(v))
	}
	for i := 0; i <= 5; i++ {
		v := xmax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" font-size="11">%ss</text>`, x(v), chartH-padB+16, fmtNum(math.Round(v*10)/10))
	}
	fmt.Fprintf(&b, `<text x="12" y="%.0f" font-size="11" transform="rotate(-90 12 %.0f)" text-anchor="middle">%s</text>`,
		chartH/2, chartH/2, html.EscapeString(unit))
	for i, s := range ss {
		color := palette[i%len(palette)]
		var pts strings.Builder
		for j := range s.Xs {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(s.Xs[j]), y(s.Ys[j]))
		}
		fmt.Fprintf(&b, `<polyline class="series" fill="none" stroke="%s" stroke-width="2" points="%s"/>`, color, pts.String())
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f" font-size="12">%s</text>`,
			chartW-padR+10, padT+float64(i)*18, color, chartW-padR+26, padT+float64(i)*18+11, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// barChart draws one horizontal bar per label.
func barChart(title string, labels []string, values []float64) template.HTML {
	var b strings.Builder
	h := padT + 22*float64(len(labels)) + 10
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`, chartW, h, chartW, h)
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="14" font-weight="bold">%s</text>`, padL, html.EscapeString(title))
	vmax := 1.0
	for _, v := range values {
		vmax = math.Max(vmax, v)
	}
	const labelW = 230.0
	for i, l := range labels {
		yy := padT + 22*float64(i)
		w := values[i] / vmax * (chartW - labelW - 90)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end" font-size="12">%s</text><rect class="bar" x="%.0f" y="%.0f" width="%.1f" height="16" fill="%s"/><text x="%.1f" y="%.0f" font-size="12">%s</text>`,
			labelW-6, yy+12, html.EscapeString(l), labelW, yy, math.Max(w, 1), palette[i%len(palette)], labelW+w+6, yy+12, fmtNum(values[i]))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func chartFrame(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="#fafafa" stroke="#999"/>`, padL, padT, chartW-padL-padR, chartH-padB-padT)
	fmt.Fprintf(b, `<text x="%.0f" y="18" font-size="14" font-weight="bold">%s</text>`, padL, html.EscapeString(title))
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// namedChart is a chart with a note shown under it.
type namedChart struct {
	SVG  template.HTML
	Note string
}

func charts(res *ReplayResult) []namedChart {
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
		pay.Note = "No payments: " + featureOf(res, FeaturePay).Reason
	}
	return append(out, pay)
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":       func(v float64) float64 { return 100 * v },
	"inc":       func(i int) int { return i + 1 },
	"recovered": recovered,
	"cacheLine": cacheLine,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Replay {{.R.Scenario}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
td.n{text-align:right}.PASS{color:#080}.FAIL{color:#c00;font-weight:bold}.SKIP{color:#888}
.chart{display:block;margin:12px 0}.note{color:#888;font-size:13px}
</style></head><body>
<h1>Replay {{.R.Scenario}}</h1>
<p>Target {{.R.Target}}, {{.R.Users}} users, started {{.R.StartedAt.Format "2006-01-02 15:04:05"}}, {{printf "%.1f" .R.ElapsedS}} s.
Capacity: <b>{{printf "%.0f" .R.Capacity.PerSec}}</b> flash-sale requests/s answered with p99 {{printf "%.1f" .R.Capacity.P99}} ms
(best {{.R.Capacity.Window}} s window, bound {{printf "%.0f" .R.Capacity.P99Bound}} ms){{with .R.Ceiling}};
ceiling {{.Name}} {{printf "%.0f" .PerSec}}/s{{end}}.</p>
{{with .R.Caches}}<p>{{cacheLine .}}</p>{{end}}
<h2>Checks</h2><table><tr><th></th><th>check</th><th>detail</th></tr>
{{range .R.Checks}}<tr><td class="{{if not .OK}}FAIL{{else if .Skipped}}SKIP{{else}}PASS{{end}}">{{if not .OK}}FAIL{{else if .Skipped}}SKIP{{else}}PASS{{end}}</td><td>{{.Name}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>
<h2>Charts</h2>
{{range .Charts}}{{.SVG}}{{with .Note}}<p class="note">{{.}}</p>{{end}}{{end}}
<h2>Phases</h2><table><tr><th>phase</th><th>kind</th><th>from</th><th>to</th><th>peak/s</th><th>sent</th><th>answered/s</th><th>answered p99 ms</th><th>refused (429)</th><th>refused p99 ms</th><th>status</th></tr>
{{range .R.Phases}}<tr><td>{{.Name}}</td><td>{{.Kind}}</td><td class="n">{{.StartS}}s</td><td class="n">{{.EndS}}s</td><td class="n">{{.PeakRPS}}</td><td class="n">{{.Sent}}</td>{{if eq .Kind "seckill"}}<td class="n">{{printf "%.0f" .AnsweredPerS}}</td><td class="n">{{printf "%.1f" .AnsweredP99}}</td><td class="n">{{.Refused}}</td><td class="n">{{printf "%.1f" .RefusedP99}}</td>{{else}}<td></td><td></td><td></td><td></td>{{end}}<td>{{.Status}}</td></tr>
{{end}}</table>
<h2>Optional endpoints</h2><table>{{range .R.Features}}<tr><td>{{.Name}}</td><td>{{.Endpoint}}</td><td>{{if .Available}}available{{else}}{{.Reason}}{{end}}</td></tr>{{end}}
{{range .R.Faults}}<tr><td>fault</td><td>{{.Fault}}</td><td>{{.Status}}</td></tr>{{end}}</table>
{{if .Windows}}<h2>Fault windows</h2><p class="note">Requests due while each fault was on (shaded on the charts), those answered 5xx or not at all, their p99, and the seconds from the lift to the first of two seconds with at most 1 % such answers.</p>
<table><tr><th>#</th><th>fault</th><th>on s</th><th>off s</th><th>requests</th><th>5xx or none</th><th>share</th><th>p99 ms</th><th>recovered after s</th></tr>
{{range $i, $f := .Windows}}<tr><td>{{inc $i}}</td><td>{{.Fault}}</td><td class="n">{{printf "%.1f" .OnS}}</td><td class="n">{{printf "%.1f" .OffS}}</td><td class="n">{{.Requests}}</td><td class="n">{{.Failures}}</td><td class="n">{{printf "%.1f" (pct .FailureRate)}} %</td><td class="n">{{printf "%.1f" .P99}}</td><td class="n">{{recovered .}}</td></tr>
{{end}}</table>{{end}}
<h2>Endpoints</h2><table><tr><th>endpoint</th><th>outcome</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>
{{range .R.Endpoints}}<tr><td>{{.Endpoint}}</td><td>{{.Outcome}}</td><td class="n">{{.Count}}</td><td class="n">{{printf "%.1f" .P50}}</td><td class="n">{{printf "%.1f" .P90}}</td><td class="n">{{printf "%.1f" .P99}}</td><td class="n">{{printf "%.1f" .P999}}</td><td class="n">{{printf "%.1f" .Max}}</td></tr>
{{end}}</table>
<h2>Payments per channel</h2><table><tr><th>channel</th><th>opened</th><th>pay p50 ms</th><th>pay p99 ms</th><th>confirmed</th><th>wallet p50 ms</th><th>wallet p99 ms</th><th>final statuses</th></tr>
{{range .R.Channels}}<tr><td>{{.Channel}}</td><td class="n">{{.Opened}}</td><td class="n">{{printf "%.1f" .PayP50}}</td><td class="n">{{printf "%.1f" .PayP99}}</td><td class="n">{{.Confirmed}}</td><td class="n">{{printf "%.1f" .WalletP50}}</td><td class="n">{{printf "%.1f" .WalletP99}}</td><td>{{range $k, $v := .Final}}{{$k}} {{$v}} {{end}}</td></tr>
{{end}}</table>
{{with .R.Orders}}<p>Orders at the end: {{range $k, $v := .ByStatus}}{{$k}} {{$v}}; {{end}}flash-sale units released {{.ReleasedUnits}}.
Automatic refunds: {{.LateRefunds}} late, {{.DuplicateRefunds}} duplicate; refunded in full with their order: {{.BuyerRefunds}}.</p>{{end}}
<h2>Flash sales</h2><table><tr><th>sale</th><th>activity</th><th>stock</th><th>limit</th><th>accepted</th><th>challenge</th></tr>
{{range .R.Activities}}<tr><td>{{.Key}}</td><td>{{.ActivityID}}</td><td class="n">{{.Stock}}</td><td class="n">{{.PerUserLimit}}</td><td class="n">{{.Accepted}}</td><td>{{if .Challenge}}required{{end}}</td></tr>
{{end}}</table>
{{with .R.Bots}}<h2>Bots</h2><p class="note">{{.Accounts}} scripted accounts; their requests by trick and by what the platform answered (the error code of the wall that refused them).</p>
<table><tr><th>trick</th><th>answers</th></tr>
{{range $t, $a := .Answers}}<tr><td>{{$t}}</td><td>{{range $k, $v := $a}}{{$k}} {{$v}}; {{end}}</td></tr>
{{end}}</table>{{end}}
</body></html>
`))
