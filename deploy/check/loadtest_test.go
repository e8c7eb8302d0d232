package check

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	gwapp "github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/loadtest"
	"github.com/flashsale/flashsale/loadtest/scenario"
	"github.com/flashsale/flashsale/platform/config"
	orderapp "github.com/flashsale/flashsale/services/order/app"
)

// composeEnv is a service's environment as the container gets it.
func composeEnv(tb testing.TB, p *types.Project, service string) map[string]string {
	tb.Helper()
	s, err := p.GetService(service)
	if err != nil {
		tb.Fatal(err)
	}
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// scenarioFile is the file of the repository the loadtest service's
// -scenario names, through its bind mounts.
func scenarioFile(s types.ServiceConfig) (string, error) {
	i := slices.Index(s.Command, "-scenario")
	if i < 0 || i+1 >= len(s.Command) {
		return "", fmt.Errorf("command %v names no -scenario", s.Command)
	}
	path := s.Command[i+1]
	for _, v := range s.Volumes {
		if rest, ok := strings.CutPrefix(path, v.Target+"/"); ok && v.Type == types.VolumeTypeBind {
			return filepath.Join(v.Source, rest), nil
		}
	}
	return "", fmt.Errorf("-scenario %s is in no bind mount of the repository", path)
}

// sameDatabase reports whether two postgres URLs name the same database
// on the same server.
func sameDatabase(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	return errA == nil && errB == nil && a != "" && ua.Host == ub.Host && ua.Path == ub.Path
}

// TestComposeLoadtestRunsItsScenario holds each scenario's assumptions
// against the compose file: run as documented (the default scenario with
// nothing set, another with FLASHSALE_SCENARIO and its payment window as
// FLASHSALE_PAYMENT_WINDOW), the loadtest service replays that file, the
// order service expires orders after the scenario's payment window, the
// channel simulator's URL reaches the simulator when the scenario has
// slow or failing faults, and the audit reads the orders and payment
// databases the services write.
func TestComposeLoadtestRunsItsScenario(t *testing.T) {
	root := mustRepoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "loadtest", "scenarios", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios (%v)", err)
	}
	defaultProject := mustComposeProject(t, nil)
	lt, err := defaultProject.GetService("loadtest")
	if err != nil {
		t.Fatal(err)
	}
	defaultFile, err := scenarioFile(lt)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			sc, err := scenario.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			p := defaultProject
			if file != defaultFile {
				env := map[string]string{"FLASHSALE_SCENARIO": name}
				if w := sc.Platform.PaymentWindow; w > 0 {
					env["FLASHSALE_PAYMENT_WINDOW"] = w.D().String()
				}
				p = mustComposeProject(t, env)
			}
			s, err := p.GetService("loadtest")
			if err != nil {
				t.Fatal(err)
			}
			if got, err := scenarioFile(s); err != nil || got != file {
				t.Errorf("the loadtest service replays %q (%v), want %s", got, err, file)
			}

			orderEnv := config.FromMap(composeEnv(t, p, "order"))
			window := orderapp.ConfigFromEnv(orderEnv).PaymentWindow
			if err := orderEnv.Err(); err != nil {
				t.Fatal(err)
			}
			if w := sc.Platform.PaymentWindow.D(); w > 0 && window != w {
				t.Errorf("order's payment window is %s, the scenario assumes %s (platform.payment_window)", window, w)
			}
			gwEnv := config.FromMap(composeEnv(t, p, "gateway"))
			gw := gwapp.ConfigFromEnv(gwEnv)
			if d := sc.Platform.ChallengeDifficulty; d > 0 && gw.ChallengeBits != d {
				t.Errorf("the gateway asks %d-bit challenges, the scenario assumes %d (platform.challenge_difficulty)", gw.ChallengeBits, d)
			}
			if d := sc.Bots.BlockedDevice; d != "" && !slices.Contains(gw.Blocklist.Devices, d) {
				t.Errorf("the gateway's blocklist %v lacks the scenario's bot device %q (bots.blocked_device)", gw.Blocklist.Devices, d)
			}

			ltEnv := composeEnv(t, p, "loadtest")
			var read []string
			e := config.FromFunc(func(name string) (string, bool) {
				read = append(read, name)
				v, ok := ltEnv[name]
				return v, ok
			})
			lenv := loadtest.EnvFromConfig(e)
			for name := range ltEnv {
				if strings.HasPrefix(name, "FLASHSALE_") && !slices.Contains(read, name) {
					t.Errorf("the loadtest service sets %s, which the loadtest command never reads", name)
				}
			}
			if sc.NeedsSimulator() {
				sim := composeEnv(t, p, "channelsim")
				port, err := Port(sim["FLASHSALE_CHANNELSIM_ADDR"])
				u, uerr := url.Parse(lenv.SimulatorURL)
				if err != nil || uerr != nil || u.Hostname() != "channelsim" || u.Port() != fmt.Sprint(port) {
					t.Errorf("slow and failing faults need the simulator: FLASHSALE_CHANNELSIM_URL=%q, the simulator listens on channelsim:%d", lenv.SimulatorURL, port)
				}
			}
			if orders := composeEnv(t, p, "order")["FLASHSALE_POSTGRES_URL"]; !sameDatabase(lenv.OrdersURL, orders) {
				t.Errorf("the audit reads orders from %q, the order service writes %q", lenv.OrdersURL, orders)
			}
			if payments := composeEnv(t, p, "payment")["FLASHSALE_POSTGRES_URL"]; sc.MakesPayments() && !sameDatabase(lenv.PaymentsURL, payments) {
				t.Errorf("the audit reads payments from %q, the payment service writes %q", lenv.PaymentsURL, payments)
			}
		})
	}
}

// The scenario files the loadtest service can name are the repository's.
func TestScenarioFileFollowsTheMount(t *testing.T) {
	var s types.ServiceConfig
	s.Command = types.ShellCommand{"-scenario", "/scenarios/x.yaml"}
	s.Volumes = []types.ServiceVolumeConfig{{Type: types.VolumeTypeBind, Source: "/repo/loadtest/scenarios", Target: "/scenarios"}}
	if got, err := scenarioFile(s); err != nil || got != "/repo/loadtest/scenarios/x.yaml" {
		t.Errorf("scenarioFile = %q, %v", got, err)
	}
	s.Command = types.ShellCommand{"-scenario", "/elsewhere/x.yaml"}
	if _, err := scenarioFile(s); err == nil {
		t.Error("a scenario outside the mounts resolved")
	}
}

// The dev overlay runs the Double-11 replay as docs/operations.md
// ("First time on Kubernetes") runs it, from this machine through
// port-forwards: development mode on (the replay's buyers take dev
// tokens), order expiring after the scenario's payment window, and the
// simulator handing out pay URLs on 127.0.0.1 at the port it listens on,
// where `kubectl port-forward svc/channelsim` puts it.
func TestK8sDevRunsTheDoubleElevenReplay(t *testing.T) {
	root := mustRepoRoot(t)
	sc, err := scenario.Load(filepath.Join(root, "loadtest", "scenarios", "double11.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := MustManifests(t, "dev")
	env := map[string]map[string]string{}
	for _, w := range workloads(objs) {
		env[w.Metadata.Name], _ = mustWorkloadEnv(t, objs, w.Spec.Template.Spec.Containers[0])
	}
	if !config.FromMap(env["gateway"]).Dev() {
		t.Errorf("the gateway runs without %s: the replay's buyers cannot get dev tokens", config.DevVar)
	}
	orderEnv := config.FromMap(env["order"])
	if w := orderapp.ConfigFromEnv(orderEnv).PaymentWindow; w != sc.Platform.PaymentWindow.D() || orderEnv.Err() != nil {
		t.Errorf("order's payment window is %s (%v), the scenario assumes %s", w, orderEnv.Err(), sc.Platform.PaymentWindow.D())
	}
	gw := gwapp.ConfigFromEnv(config.FromMap(env["gateway"]))
	if d := sc.Platform.ChallengeDifficulty; d > 0 && gw.ChallengeBits != d {
		t.Errorf("the gateway asks %d-bit challenges, the scenario assumes %d (platform.challenge_difficulty)", gw.ChallengeBits, d)
	}
	if d := sc.Bots.BlockedDevice; d != "" && !slices.Contains(gw.Blocklist.Devices, d) {
		t.Errorf("the gateway's blocklist %v lacks the scenario's bot device %q (bots.blocked_device)", gw.Blocklist.Devices, d)
	}
	port, err := Port(env["channelsim"]["FLASHSALE_CHANNELSIM_ADDR"])
	u, uerr := url.Parse(env["channelsim"]["FLASHSALE_CHANNELSIM_BASE_URL"])
	if err != nil || uerr != nil || u.Hostname() != "127.0.0.1" || u.Port() != fmt.Sprint(port) {
		t.Errorf("the simulator hands out pay URLs at %q, listening on %d; want http://127.0.0.1:%d, the port-forward's", u, port, port)
	}
}
