package check

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// metricKind is what a registered metric is, which decides the series
// names Prometheus stores for it.
type metricKind int

const (
	plainMetric     metricKind = iota // a counter or gauge: its name
	histogramMetric                   // also name_bucket (with le), name_sum, name_count
)

// metric is a registered metric: its kind and its label names.
type metric struct {
	kind   metricKind
	labels []string
}

// promImport is the import path whose constructors name the metrics.
const promImport = "github.com/prometheus/client_golang/prometheus"

// registeredMetrics returns the metrics the Go code of the services, the
// gateway and the platform constructs, read from the syntax tree rather
// than by searching the text: the Name (with Namespace and Subsystem) of
// every prometheus.CounterOpts, GaugeOpts, HistogramOpts and SummaryOpts
// literal, with the label names of the New…Vec call that takes it, and
// the name and variable labels of every prometheus.NewDesc call (the
// collectors that report at scrape time). A name or label list the code
// builds at run time cannot be read this way, so it is reported as a
// problem rather than skipped: a metric must be named by literals for the
// alerts and panels to be checked against it.
//
// Why not the registries themselves: building each service's registry
// means running the service (Postgres, Redis, Kafka, the other services),
// and a collector such as the consumer lag reports nothing when its
// source is down, so a registry scraped here could miss names the code
// does export. The constructors are where a name is decided, whatever
// answers at run time.
func registeredMetrics(tb testing.TB, root string) map[string]metric {
	tb.Helper()
	metrics := map[string]metric{}
	var problems []string
	fset := token.NewFileSet()
	for _, dir := range []string{"services", "gateway", "platform"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			local := importName(f, promImport)
			if local == "" {
				return nil
			}
			problem := func(n ast.Node, err error) {
				problems = append(problems, fmt.Sprintf("%s: %v", fset.Position(n.Pos()), err))
			}
			// The labels of each Vec's options, found at the call before
			// the options literal inside it is visited.
			vecLabels := map[*ast.CompositeLit][]string{}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					switch {
					case isVec(n.Fun, local) && len(n.Args) == 2:
						opts, ok := n.Args[0].(*ast.CompositeLit)
						if !ok {
							problem(n, fmt.Errorf("the options of a Vec are not a literal"))
							return true
						}
						labels, err := stringList(n.Args[1])
						if err != nil {
							problem(n, fmt.Errorf("labels: %w", err))
						}
						vecLabels[opts] = labels
					case isSelector(n.Fun, local, "NewDesc") && len(n.Args) >= 3:
						name, err := literal(n.Args[0])
						if err != nil {
							problem(n, fmt.Errorf("NewDesc: %w", err))
							return true
						}
						labels, err := stringList(n.Args[2])
						if err != nil {
							problem(n, fmt.Errorf("NewDesc labels: %w", err))
						}
						metrics[name] = metric{kind: plainMetric, labels: labels}
					}
				case *ast.CompositeLit:
					kind, ok := optsKind(n.Type, local)
					if !ok {
						return true
					}
					name, err := optsName(n)
					if err != nil {
						problem(n, err)
						return true
					}
					metrics[name] = metric{kind: kind, labels: append(vecLabels[n], constLabels(n)...)}
				}
				return true
			})
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	for _, p := range problems {
		tb.Errorf("metric not readable: %s", p)
	}
	return metrics
}

// isVec says whether e is one of the client's New…Vec constructors.
func isVec(e ast.Expr, pkg string) bool {
	for _, c := range []string{"NewCounterVec", "NewGaugeVec", "NewHistogramVec", "NewSummaryVec"} {
		if isSelector(e, pkg, c) {
			return true
		}
	}
	return false
}

// stringList is the value of a []string literal of string literals, or
// of nil.
func stringList(e ast.Expr) ([]string, error) {
	if id, ok := e.(*ast.Ident); ok && id.Name == "nil" {
		return nil, nil
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Errorf("%T is not a []string literal", e)
	}
	out := make([]string, 0, len(lit.Elts))
	for _, el := range lit.Elts {
		v, err := literal(el)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// importName is the name file f uses for the import path, "" when it
// does not import it.
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return filepath.Base(path)
		}
	}
	return ""
}

func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// optsKind says whether t is one of the client's *Opts types, and which
// kind of metric it makes.
func optsKind(t ast.Expr, pkg string) (metricKind, bool) {
	switch {
	case isSelector(t, pkg, "CounterOpts"), isSelector(t, pkg, "GaugeOpts"):
		return plainMetric, true
	case isSelector(t, pkg, "HistogramOpts"), isSelector(t, pkg, "SummaryOpts"):
		return histogramMetric, true
	}
	return 0, false
}

// optsName is the full name an *Opts literal gives its metric: Namespace,
// Subsystem and Name joined by "_", as prometheus.BuildFQName does.
// constLabels returns the names of the constant labels an options literal
// sets in place (ConstLabels: prometheus.Labels{"source": ...}); labels
// built elsewhere are not read.
func constLabels(lit *ast.CompositeLit) []string {
	var names []string
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if key, _ := kv.Key.(*ast.Ident); key == nil || key.Name != "ConstLabels" {
			continue
		}
		labels, ok := kv.Value.(*ast.CompositeLit)
		if !ok {
			continue
		}
		for _, l := range labels.Elts {
			if lkv, ok := l.(*ast.KeyValueExpr); ok {
				if name, err := literal(lkv.Key); err == nil {
					names = append(names, name)
				}
			}
		}
	}
	return names
}

func optsName(lit *ast.CompositeLit) (string, error) {
	parts := map[string]string{}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			return "", fmt.Errorf("options without field names")
		}
		key, _ := kv.Key.(*ast.Ident)
		if key == nil || (key.Name != "Namespace" && key.Name != "Subsystem" && key.Name != "Name") {
			continue
		}
		v, err := literal(kv.Value)
		if err != nil {
			return "", fmt.Errorf("%s: %w", key.Name, err)
		}
		parts[key.Name] = v
	}
	var name []string
	for _, k := range []string{"Namespace", "Subsystem", "Name"} {
		if parts[k] != "" {
			name = append(name, parts[k])
		}
	}
	if parts["Name"] == "" {
		return "", fmt.Errorf("no Name")
	}
	return strings.Join(name, "_"), nil
}

// literal is the value of a string literal.
func literal(e ast.Expr) (string, error) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", fmt.Errorf("%T is not a string literal", e)
	}
	return strconv.Unquote(lit.Value)
}

// scrapeLabels are the labels Prometheus adds to every series it scrapes
// (the scrape's job and target), which no code registers.
var scrapeLabels = []string{"job", "instance"}

// histoSuffixes are the series a histogram or summary adds to its name.
var histoSuffixes = []string{"_bucket", "_sum", "_count"}

var (
	promSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	promGrouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// unregistered returns what expr reads that no code registers: a series
// name that is not a registered name (or a histogram's name plus one of
// its suffixes), a label a selector matches on that its metric does not
// have, and a label an aggregation groups by that not every metric of
// expr has. A misspelt label matches nothing (or, negated, everything),
// which an alert would never say.
func unregistered(expr string, metrics map[string]metric) []string {
	var out []string
	labelsOf := map[string][]string{}
	for _, series := range queriedMetrics(expr) {
		if m, ok := metrics[series]; ok {
			labelsOf[series] = append(slices.Clone(m.labels), scrapeLabels...)
			continue
		}
		known := false
		for _, suffix := range histoSuffixes {
			base, cut := strings.CutSuffix(series, suffix)
			if m, in := metrics[base]; cut && in && m.kind == histogramMetric {
				known = true
				labelsOf[series] = append(slices.Clone(m.labels), scrapeLabels...)
				if suffix == "_bucket" {
					labelsOf[series] = append(labelsOf[series], "le")
				}
			}
		}
		if !known {
			out = append(out, series)
		}
	}
	for _, sel := range promSelector.FindAllStringSubmatch(expr, -1) {
		labels, ok := labelsOf[sel[1]]
		if !ok {
			continue // reported above, or a keyword such as by
		}
		for _, m := range promMatcher.FindAllStringSubmatch(sel[2], -1) {
			if !slices.Contains(labels, m[1]) {
				out = append(out, sel[1]+" label "+m[1])
			}
		}
	}
	for _, g := range promGrouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			l = strings.TrimSpace(l)
			for series, labels := range labelsOf {
				if l != "" && !slices.Contains(labels, l) {
					out = append(out, series+" label "+l)
				}
			}
		}
	}
	return out
}

func TestRegisteredMetrics(t *testing.T) {
	root := mustRepoRoot(t)
	metrics := registeredMetrics(t, root)
	// One of each way a metric is made: a CounterVec's options, a
	// histogram's, a collector's Desc with labels and without.
	for name, want := range map[string]metric{
		"order_gmv_cents_total":                 {plainMetric, []string{"kind", "channel"}},
		"gateway_http_request_duration_seconds": {histogramMetric, []string{"route"}},
		"payment_channel_breaker_state":         {plainMetric, []string{"channel"}},
		"inventory_expiry_due_entries":          {plainMetric, nil},
	} {
		if got, ok := metrics[name]; !ok || got.kind != want.kind || !slices.Equal(got.labels, want.labels) {
			t.Errorf("%s: registered %v as %+v, want %+v", name, ok, got, want)
		}
	}
	for _, tt := range []struct {
		expr string
		want []string
	}{
		{"histogram_quantile(0.99, sum by (route, le) (rate(gateway_http_request_duration_seconds_bucket[1m])))", nil},
		{"order_gmv_cents_total_count", []string{"order_gmv_cents_total_count"}}, // a counter has no _count
		{"sum(rate(order_gmv_cents[1m]))", []string{"order_gmv_cents"}},
		{`sum by (channel) (rate(payment_payments_total{status="succeeded"}[5m]))`, nil},
		{`sum by (chanel) (rate(payment_payments_total{state!="failed"}[5m]))`,
			[]string{"payment_payments_total label state", "payment_payments_total label chanel"}},
		{"sum by (le) (rate(gateway_http_request_duration_seconds_sum[1m]))", []string{"gateway_http_request_duration_seconds_sum label le"}},
	} {
		if got := unregistered(tt.expr, metrics); !slices.Equal(got, tt.want) {
			t.Errorf("unregistered(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}

// alertRules is deploy/prometheus/alerts.yml.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// Every alert reads only metrics the code registers, waits (for:), says
// how bad it is, and names a runbook section that docs/operations.md has;
// alerts_test.yml has a case where it fires and one where it must not.
func TestAlertsReadRegisteredMetrics(t *testing.T) {
	root := mustRepoRoot(t)
	var rules alertRules
	mustYAML(t, &rules, filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	metrics := registeredMetrics(t, root)
	anchors := markdownAnchors(t, filepath.Join(root, "docs", "operations.md"))
	tests := alertTests(t, filepath.Join(root, "deploy", "prometheus", "alerts_test.yml"))
	seen := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			seen++
			for _, m := range unregistered(r.Expr, metrics) {
				t.Errorf("alert %s reads %s, which no service registers", r.Alert, m)
			}
			if r.For == "" {
				t.Errorf("alert %s has no for:", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
			doc, anchor, _ := strings.Cut(r.Annotations["runbook"], "#")
			if doc != "docs/operations.md" || !anchors[anchor] {
				t.Errorf("alert %s: runbook %q is not a section of docs/operations.md", r.Alert, r.Annotations["runbook"])
			}
			if c := tests[r.Alert]; !c.fires || !c.silent {
				t.Errorf("alert %s: alerts_test.yml has a firing case %v and a silent case %v, want both", r.Alert, c.fires, c.silent)
			}
		}
	}
	if seen == 0 {
		t.Fatal("alerts.yml has no alert")
	}
}

// markdownAnchors returns the anchors of the file's headings, as GitHub
// makes them: lower case, spaces to hyphens, other punctuation dropped.
func markdownAnchors(tb testing.TB, path string) map[string]bool {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	out := map[string]bool{}
	for line := range strings.Lines(string(raw)) {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.ToLower(strings.TrimSpace(strings.TrimLeft(h, "#")))
			out[strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")] = true
		}
	}
	return out
}

// alertCases says which kinds of case a promtool test file has for an
// alert: one expecting it to fire, one expecting silence.
type alertCases struct{ fires, silent bool }

func alertTests(tb testing.TB, path string) map[string]alertCases {
	tb.Helper()
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	mustYAML(tb, &f, path)
	out := map[string]alertCases{}
	for _, t := range f.Tests {
		for _, a := range t.AlertRuleTest {
			c := out[a.Alertname]
			if len(a.ExpAlerts) > 0 {
				c.fires = true
			} else {
				c.silent = true
			}
			out[a.Alertname] = c
		}
	}
	return out
}

func TestMarkdownAnchors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.md")
	if err := os.WriteFile(path, []byte("# Title\n### A stuck consumer (orders stay PROCESSING)\n## ExpiryLate\ntext # not a heading\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := markdownAnchors(t, path)
	for _, want := range []string{"title", "a-stuck-consumer-orders-stay-processing", "expirylate"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("anchors %v, want 3", got)
	}
}

// Prometheus loads alerts.yml: deploy/prometheus.yml names it (relative
// to itself) and compose mounts it at that path beside the configuration.
func TestPrometheusLoadsTheAlertRules(t *testing.T) {
	root, f := MustCompose(t)
	var prom struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	mustYAML(t, &prom, filepath.Join(root, "deploy", "prometheus.yml"))
	if !slices.Contains(prom.RuleFiles, "prometheus/alerts.yml") {
		t.Errorf("deploy/prometheus.yml loads rule files %v, not prometheus/alerts.yml", prom.RuleFiles)
	}
	mounts := f.Services["prometheus"].Volumes
	if !slices.Contains(mounts, "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro") {
		t.Fatalf("compose mounts %v, not deploy/prometheus.yml at /etc/prometheus/prometheus.yml", mounts)
	}
	for _, rf := range prom.RuleFiles {
		if _, err := os.Stat(filepath.Join(root, "deploy", rf)); err != nil {
			t.Errorf("rule file %s: %v", rf, err)
		}
		if want := "./deploy/" + rf + ":/etc/prometheus/" + rf + ":ro"; !slices.Contains(mounts, want) {
			t.Errorf("compose does not mount rule file %s (want %q among %v)", rf, want, mounts)
		}
	}
}
