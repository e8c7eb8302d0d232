package report

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"

	"github.com/flashsale/flashsale/loadtest/result"
)

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
func faultBands(res *result.Replay) []Band {
	var out []Band
	for _, f := range res.Faults {
		if f.Ran() {
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
