package check

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/flashsale/flashsale/deploy/local"
	"github.com/flashsale/flashsale/platform/config"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	// Args is the service's command: the arguments to the image's entrypoint.
	Args  []string `yaml:"command"`
	Build *struct {
		Context string            `yaml:"context"`
		Args    map[string]string `yaml:"args"`
	} `yaml:"build"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test    []string `yaml:"test"`
		Disable bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
	Profiles []string `yaml:"profiles"`
}

// infraPorts are the ports the infrastructure images listen on inside
// the compose network (their defaults, or the compose file's settings).
var infraPorts = map[string][]int{
	"postgres":       {5432},
	"redis":          {6379},
	"kafka-1":        {9092},
	"kafka-2":        {9092},
	"kafka-3":        {9092},
	"consul":         {8500},
	"otel-collector": {4317, 4318, 8888, 13133},
	"jaeger":         {4317, 16686},
	"prometheus":     {9090},
	"grafana":        {3000},
}

// mustYAML reads the YAML file at path into out.
func mustYAML(tb testing.TB, out any, path string) {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, out); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}

// MustCompose parses docker-compose.yml with ${VAR:-default} resolved.
func MustCompose(tb testing.TB) (string, composeFile) {
	tb.Helper()
	root := mustRepoRoot(tb)
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		tb.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal([]byte(Interpolate(string(raw))), &f); err != nil {
		tb.Fatalf("docker-compose.yml: %v", err)
	}
	if len(f.Services) == 0 {
		tb.Fatal("docker-compose.yml has no services")
	}
	return root, f
}

// job reports whether s runs to completion on demand (it sits behind a
// profile, as the load replay does) rather than as a service.
func (s composeService) job() bool { return len(s.Profiles) > 0 }

// command is the package directory a built service runs.
func (s composeService) command() string {
	if s.Build == nil {
		return ""
	}
	return s.Build.Args["CMD"]
}

func TestComposeImagesArePinnedOrBuilt(t *testing.T) {
	_, f := MustCompose(t)
	for name, s := range f.Services {
		switch {
		case s.Image != "" && s.Build != nil:
			t.Errorf("%s: both image and build", name)
		case s.Image != "":
			if !Pinned(s.Image) {
				t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
			}
		case s.Build == nil:
			t.Errorf("%s: neither image nor build", name)
		case s.Build.Context != ".":
			t.Errorf("%s: build context %q, want the repository root (the one Dockerfile)", name, s.Build.Context)
		case s.command() == "":
			t.Errorf("%s: build without a CMD argument", name)
		}
	}
}

// Every built service and job runs a command of the repository.
func TestComposeCommandsExist(t *testing.T) {
	root, f := MustCompose(t)
	for name, s := range f.Services {
		if cmd := s.command(); cmd != "" && !IsCommand(root, cmd) {
			t.Errorf("%s: %s is not a main package", name, cmd)
		}
	}
}

func TestComposeHealthchecksAndDependencies(t *testing.T) {
	_, f := MustCompose(t)
	healthy := func(name string) bool {
		s, ok := f.Services[name]
		return ok && s.Healthcheck != nil && !s.Healthcheck.Disable && len(s.Healthcheck.Test) > 1
	}
	for name, s := range f.Services {
		if !healthy(name) && !s.job() {
			t.Errorf("%s: no healthcheck", name)
		}
		if waitsFor(f, name, name) {
			t.Errorf("%s waits for itself through depends_on: compose refuses the cycle", name)
		}
		for dep, d := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("%s depends on %s, which is not a service", name, dep)
			}
			switch d.Condition {
			case "service_healthy":
				if !healthy(dep) {
					t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
				}
			case "service_started", "service_completed_successfully":
			default:
				t.Errorf("%s depends on %s without a condition (%q)", name, dep, d.Condition)
			}
		}
	}
}

func TestComposeVolumesAreNamed(t *testing.T) {
	_, f := MustCompose(t)
	for name, s := range f.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				continue // a configuration file of the repository
			}
			if _, ok := f.Volumes[src]; !ok {
				t.Errorf("%s mounts %q, which is not a named volume", name, src)
			}
		}
	}
}

// goService is a compose service running one of Binaries.
type goService struct {
	name string
	s    composeService
	bin  Binary
}

func goServices(t *testing.T, f composeFile) []goService {
	t.Helper()
	var out []goService
	for name, s := range f.Services {
		if s.job() || s.command() == "" {
			continue
		}
		bin, ok := Binaries[s.command()]
		if !ok {
			t.Errorf("%s runs %s, which check.Binaries does not list", name, s.command())
			continue
		}
		if bin.Service != name {
			t.Errorf("compose service %s runs %s's binary; the names must agree (Consul, Prometheus and the docs use them)", name, bin.Service)
		}
		out = append(out, goService{name, s, bin})
	}
	slices.SortFunc(out, func(a, b goService) int { return strings.Compare(a.name, b.name) })
	return out
}

// listenPorts are the ports a Go service listens on, from its settings.
func listenPorts(t *testing.T, g goService) map[string]int {
	t.Helper()
	ports := map[string]int{}
	for _, v := range []string{"FLASHSALE_GRPC_ADDR", "FLASHSALE_ADMIN_ADDR", g.bin.HTTPVar} {
		if a, ok := g.s.Environment[v]; ok {
			p, err := Port(a)
			if err != nil {
				t.Errorf("%s: %s=%q: %v", g.name, v, a, err)
				continue
			}
			ports[v] = p
		}
	}
	return ports
}

// Each Go service's environment is exactly what its ConfigFromEnv reads
// and accepts, it listens where its healthcheck probes, and every address
// it dials is a service of the file listening on that port (or, for
// consul://, a service that registers in Consul).
func TestComposeServicesMatchTheirConfiguration(t *testing.T) {
	_, f := MustCompose(t)
	services := goServices(t, f)
	if len(services) < len(Binaries) {
		t.Errorf("compose runs %d of the %d services", len(services), len(Binaries))
	}
	listening := map[string][]int{}
	for h, ps := range infraPorts {
		listening[h] = ps
	}
	registers := map[string]bool{}
	for _, g := range services {
		for _, p := range listenPorts(t, g) {
			listening[g.name] = append(listening[g.name], p)
		}
		registers[g.name] = g.bin.ServesGRPC && g.s.Environment["FLASHSALE_CONSUL_ADDR"] != ""
	}
	for _, g := range services {
		t.Run(g.name, func(t *testing.T) {
			for _, p := range g.bin.CheckEnv(g.s.Environment) {
				t.Error(p)
			}
			ports := listenPorts(t, g)
			if g.bin.ServesGRPC {
				if _, ok := ports["FLASHSALE_GRPC_ADDR"]; !ok {
					t.Error("FLASHSALE_GRPC_ADDR is not set: the service would listen on its default, unknown to the file")
				}
				if _, ok := ports["FLASHSALE_ADMIN_ADDR"]; !ok {
					t.Error("FLASHSALE_ADMIN_ADDR is not set")
				}
			}
			probe, ok := ports[g.bin.ProbeVar()]
			if !ok {
				t.Errorf("%s is not set: the service would listen on its default, unknown to the file", g.bin.ProbeVar())
			}
			if hc := g.s.Healthcheck; hc != nil && len(hc.Test) == 3 {
				u, err := url.Parse(hc.Test[2])
				if err != nil || hc.Test[1] != "/healthcheck" || u.Port() != fmt.Sprint(probe) || u.Path != g.bin.Probe {
					t.Errorf("healthcheck %v, want /healthcheck on http://127.0.0.1:%d%s", hc.Test, probe, g.bin.Probe)
				}
			} else {
				t.Errorf("healthcheck %v, want [CMD /healthcheck URL]", g.s.Healthcheck)
			}
			for name, value := range g.s.Environment {
				eps, err := Endpoints(name, value)
				if err != nil {
					t.Error(err)
					continue
				}
				for _, ep := range eps {
					switch {
					case ep.Consul && !registers[ep.Host]:
						t.Errorf("%s=%s: no service %s registers in Consul", name, value, ep.Host)
					case ep.Consul:
						// Two services that call each other cannot both
						// wait for the other (compose refuses the cycle):
						// one of them resolves the other through Consul
						// once it registers.
						if _, ok := g.s.DependsOn[ep.Host]; !ok && !waitsFor(f, ep.Host, g.name) {
							t.Errorf("%s=%s: depends_on lacks %s", name, value, ep.Host)
						}
					case !slices.Contains(listening[ep.Host], ep.Port):
						t.Errorf("%s=%s: nothing in the file listens on %s:%d", name, value, ep.Host, ep.Port)
					}
				}
			}
		})
	}
}

// waitsFor reports whether service a starts only after b, through its
// depends_on or theirs.
func waitsFor(f composeFile, a, b string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(s string) bool {
		if seen[s] {
			return false
		}
		seen[s] = true
		for dep := range f.Services[s].DependsOn {
			if dep == b || walk(dep) {
				return true
			}
		}
		return false
	}
	return walk(a)
}

// Prometheus scrapes every Go service's metrics port (the gateway serves
// /metrics on its API port), and nothing that is not there.
func TestPrometheusScrapesEveryService(t *testing.T) {
	root, f := MustCompose(t)
	targets := scrapeTargets(t, root)
	for _, g := range goServices(t, f) {
		if !g.bin.Metrics {
			continue
		}
		metrics := listenPorts(t, g)[g.bin.ProbeVar()]
		if want := fmt.Sprintf("%s:%d", g.name, metrics); !slices.Contains(targets, want) {
			t.Errorf("prometheus does not scrape %s", want)
		}
	}
	for _, target := range targets {
		host, _, _ := strings.Cut(target, ":")
		if _, ok := f.Services[host]; !ok {
			t.Errorf("prometheus scrapes %s, which is not a compose service", target)
		}
	}
}

// scrapeTargets returns the host:port targets of deploy/prometheus.yml.
func scrapeTargets(tb testing.TB, root string) []string {
	tb.Helper()
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	mustYAML(tb, &prom, filepath.Join(root, "deploy", "prometheus.yml"))
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	return targets
}

// exporterMetrics are the series of the stores' exporters that the
// dashboard reads, with their label names, by the compose service that
// runs the exporter and the port it serves /metrics on. They are the
// exporters' code, not ours, so they are listed here from each
// exporter's documentation for the version compose pins.
var exporterMetrics = map[string]struct {
	port   string
	series map[string][]string
}{
	"redis-exporter": {"9121", map[string][]string{
		"redis_commands_processed_total": nil, "redis_memory_used_bytes": nil, "redis_connected_clients": nil,
	}},
	"postgres-exporter": {"9187", map[string][]string{
		"pg_stat_database_xact_commit": {"datid", "datname"}, "pg_stat_database_numbackends": {"datid", "datname"},
	}},
	"kafka-exporter": {"9308", map[string][]string{
		"kafka_topic_partition_current_offset": {"topic", "partition"}, "kafka_consumergroup_lag_sum": {"consumergroup", "topic"},
	}},
}

// Compose runs each exporter the dashboard reads and Prometheus scrapes
// it, so the "Stores" row is not drawn empty.
func TestPrometheusScrapesTheExporters(t *testing.T) {
	root, f := MustCompose(t)
	targets := scrapeTargets(t, root)
	for name, e := range exporterMetrics {
		if _, ok := f.Services[name]; !ok {
			t.Errorf("compose does not run %s", name)
		}
		if want := name + ":" + e.port; !slices.Contains(targets, want) {
			t.Errorf("prometheus does not scrape %s", want)
		}
	}
}

// Grafana's dashboard reads the provisioned datasource and charts what
// issues 6 and 15 list, and every series a panel queries is one the code
// registers.
func TestGrafanaDashboardIsProvisioned(t *testing.T) {
	root, _ := MustCompose(t)
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	mustYAML(t, &ds, filepath.Join(root, "deploy", "grafana", "provisioning", "datasources", "prometheus.yaml"))
	uids := map[string]bool{}
	for _, d := range ds.Datasources {
		uids[d.UID] = true
	}
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "dashboards", "flashsale.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue // a row heads the panels below it and queries nothing
		}
		if !uids[p.Datasource.UID] {
			t.Errorf("panel %q reads datasource %q, which is not provisioned", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, metric := range []string{
		"gateway_http_requests_total", "gateway_http_request_duration_seconds_bucket", "order_consumer_lag_messages",
		"inventory_stock_remaining", "payment_payments_total", "gateway_circuit_breaker_state",
		"payment_channel_breaker_state", "payment_refunds_total", "payment_callbacks_total",
		// The "Business" row (issue 15).
		"order_gmv_cents_total", "order_orders_placed_total", "order_orders_stored_total", "order_orders_paid_total",
		"order_orders_expired_total", "order_orders_cancelled_total", "order_refunded_units_total",
		"order_refunded_cents_total", "payment_reconcile_differences_total", "order_dead_letters_total",
		"order_invariant_violations_total", "inventory_expiry_due_entries",
	} {
		if !regexp.MustCompile(`\b` + metric + `\b`).MatchString(all) {
			t.Errorf("no panel charts %s", metric)
		}
	}
	// A panel querying a name no code exports draws nothing, silently.
	metrics := registeredMetrics(t, root)
	for _, e := range exporterMetrics {
		for name, labels := range e.series {
			metrics[name] = metric{kind: plainMetric, labels: labels}
		}
	}
	for _, expr := range exprs {
		for _, metric := range unregistered(expr, metrics) {
			t.Errorf("a panel queries %s (%s), which no service registers", metric, expr)
		}
	}
}

var (
	promRange  = regexp.MustCompile(`\[[^\]]*\]`)
	promLabels = regexp.MustCompile(`\b(by|without)\s*\([^)]*\)|\{[^}]*\}`)
	promName   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// queriedMetrics returns the series names a PromQL expression reads: its
// identifiers, less ranges, label lists and functions (a name followed by
// "("). A histogram's series keep their _bucket, _sum and _count
// suffixes; unregistered takes them off for histograms only.
func queriedMetrics(expr string) []string {
	expr = promLabels.ReplaceAllString(promRange.ReplaceAllString(expr, ""), "")
	var out []string
	for _, loc := range promName.FindAllStringIndex(expr, -1) {
		rest := strings.TrimLeft(expr[loc[1]:], " ")
		name := expr[loc[0]:loc[1]]
		if strings.HasPrefix(rest, "(") || !strings.Contains(name, "_") {
			continue // a function, or a keyword such as sum
		}
		out = append(out, name)
	}
	return out
}

func TestQueriedMetrics(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{"sum by (channel, status) (rate(payment_payments_total[1m]))", []string{"payment_payments_total"}},
		{"histogram_quantile(0.99, sum by (route, le) (rate(gateway_http_request_duration_seconds_bucket[1m])))", []string{"gateway_http_request_duration_seconds_bucket"}},
		{"max by (activity_id) (inventory_stock_remaining)", []string{"inventory_stock_remaining"}},
		{`sum(rate(a_total{job="x_y"}[5m])) / sum without (instance_id) (b_count)`, []string{"a_total", "b_count"}},
	}
	for _, tt := range tests {
		if got := queriedMetrics(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("queriedMetrics(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}

// Compose runs a development stack (dev tokens, Consul without ACLs):
// every port it publishes is bound to the loopback address unless
// FLASHSALE_BIND says otherwise, so no other machine reaches it by
// default.
func TestComposePublishesOnLoopbackByDefault(t *testing.T) {
	_, f := MustCompose(t)
	for name, s := range f.Services {
		for _, p := range s.Ports {
			// MustCompose interpolates: the default is what is read.
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q: want \"${FLASHSALE_BIND:-127.0.0.1}:<host port>:<container port>\"", name, p)
			}
		}
	}
}

// The banner `make compose-up` prints after the stack is healthy names
// only ports compose publishes on this machine.
func TestComposeBannerNamesPublishedPorts(t *testing.T) {
	_, f := MustCompose(t)
	published := map[string]bool{}
	for _, s := range f.Services {
		for _, p := range s.Ports {
			// [address:]host port:container port (MustCompose has
			// interpolated ${FLASHSALE_BIND:-127.0.0.1} already).
			parts := strings.Split(p, ":")
			published[parts[max(len(parts)-2, 0)]] = true
		}
	}
	for _, l := range local.ComposeLinks {
		// The URL is the line's word that starts with http: a method
		// may come before it ("POST http://...") and a note after.
		u := ""
		for _, w := range strings.Fields(l.URL) {
			if strings.HasPrefix(w, "http") && u == "" {
				u = w
			}
		}
		parsed, err := url.Parse(u)
		if err != nil || parsed.Port() == "" {
			t.Errorf("banner line %q: %q is not a URL with a port", l.Name, u)
			continue
		}
		if !published[parsed.Port()] {
			t.Errorf("banner line %q: port %s is not published by any compose service", l.Name, parsed.Port())
		}
	}
}

// TestComposeRunsOutsideDevelopment: `docker compose up --scale
// channelsim=0` with FLASHSALE_DEV=false and secrets of one's own, as
// docs/operations.md tells, starts every service on its configuration:
// payment on the channels named, no longer waiting for the simulator,
// which refuses to run outside development.
func TestComposeRunsOutsideDevelopment(t *testing.T) {
	const channels = "https://channels.internal.operator.net:443"
	p := mustComposeProject(t, map[string]string{
		config.DevVar:            "false",
		"FLASHSALE_JWT_SECRET":   "9c2f4e7a1b3d5f608a7c9e1b2d4f6a8c",
		"FLASHSALE_CHANNELS":     "alipay=5e1a9c3f7b2d4e6a,wechat=8b4d2f6a1c3e5a7b,unionpay=3f7b1d5a9c2e4f6b",
		"FLASHSALE_CONSUL_TOKEN": "0f6c1d2e-9a4b-4c3d-8e7f-5a6b7c8d9e0f",
		"FLASHSALE_CHANNELS_URL": channels,
	})
	for _, b := range Binaries {
		env := config.FromMap(composeEnv(t, p, b.Service))
		b.Load(env)
		switch err := env.Err(); {
		case b.DevOnly && err == nil:
			t.Errorf("%s runs outside development", b.Service)
		case !b.DevOnly && err != nil:
			t.Errorf("%s refuses its configuration outside development: %v", b.Service, err)
		}
	}
	if got := composeEnv(t, p, "payment")["FLASHSALE_CHANNELS_URL"]; got != channels {
		t.Errorf("payment pays through %q, want the channels named, %s", got, channels)
	}
	s, err := p.GetService("payment")
	if err != nil {
		t.Fatal(err)
	}
	if dep, ok := s.DependsOn["channelsim"]; ok && dep.Required {
		t.Error("payment requires the simulator, which does not run outside development")
	}
}
