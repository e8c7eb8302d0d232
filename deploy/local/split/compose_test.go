package split

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository this package is in.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// testPlan maps the repository's docker-compose.yml, as a fresh machine
// interpolates it, onto 127.9.9.0/24 with the stores at fixed addresses.
func testPlan(t *testing.T) *plan {
	t.Helper()
	project, err := loadCompose(context.Background(), repoRoot(t), map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := newPlan(project, "127.9.9")
	if err != nil {
		t.Fatal(err)
	}
	pl.redis, pl.postgres = "127.0.0.1:6001", "127.0.0.1:6002"
	return pl
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// The order service gets compose's environment with every hostname on
// this machine: its own listeners on its own loopback address and
// compose's ports, the three brokers' addresses, Postgres and Redis
// where localstack runs them, the other services still through Consul,
// the address to advertise there; the collector, not run here, is left
// out.
func TestEnvironmentMapsComposeHostnames(t *testing.T) {
	pl := testPlan(t)
	ip := func(name string) string {
		if pl.ips[name] == "" {
			t.Fatalf("%s has no address (%v)", name, pl.ips)
		}
		return pl.ips[name]
	}
	got := envMap(pl.environ("order"))
	want := map[string]string{
		"FLASHSALE_GRPC_ADDR":         ip("order") + ":9103",
		"FLASHSALE_ADMIN_ADDR":        ip("order") + ":9203",
		"FLASHSALE_KAFKA_BROKERS":     ip("kafka-1") + ":9092," + ip("kafka-2") + ":9092," + ip("kafka-3") + ":9092",
		"FLASHSALE_POSTGRES_URL":      "postgres://flashsale:flashsale@127.0.0.1:6002/orders?sslmode=disable",
		"FLASHSALE_REDIS_ADDR":        "127.0.0.1:6001",
		"FLASHSALE_CONSUL_ADDR":       ip("consul") + ":8500",
		"FLASHSALE_ADVERTISE_HOST":    ip("order"),
		"FLASHSALE_INVENTORY_ADDR":    "consul://inventory",
		"FLASHSALE_PAYMENT_WINDOW":    "20s",
		"FLASHSALE_KAFKA_REPLICATION": "3",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("order: %s=%q, want %q", k, got[k], v)
		}
	}
	if v, ok := got["FLASHSALE_OTLP_ENDPOINT"]; ok {
		t.Errorf("order: FLASHSALE_OTLP_ENDPOINT=%q names the collector, which is not run", v)
	}
	sim := envMap(pl.environ("channelsim"))
	if want := "http://" + ip("gateway") + ":8080/api/v1/payments/callbacks"; sim["FLASHSALE_NOTIFY_URL"] != want {
		t.Errorf("channelsim: FLASHSALE_NOTIFY_URL=%q, want %q", sim["FLASHSALE_NOTIFY_URL"], want)
	}
	if _, ok := sim["FLASHSALE_ADVERTISE_HOST"]; ok {
		t.Error("channelsim, which does not register in Consul, is given FLASHSALE_ADVERTISE_HOST")
	}
	if ips := slices.Sorted(func(yield func(string) bool) {
		for _, v := range pl.ips {
			if !yield(v) {
				return
			}
		}
	}); len(slices.Compact(ips)) != len(pl.ips) {
		t.Errorf("two services share an address: %v", pl.ips)
	}
}

// The loadtest service's command and the healthchecks are mapped as the
// environment is, and paths in a bind mount name the repository's files.
func TestCommandsMapHostnamesAndMounts(t *testing.T) {
	pl := testPlan(t)
	root := repoRoot(t)
	pl.mounts = map[string]string{"/reports": "/tmp/reports"}
	lt := pl.project.Services["loadtest"]
	got := pl.args("loadtest", lt.Command)
	want := []string{"-scenario", filepath.Join(root, "loadtest", "scenarios", "double11.yaml"),
		"-target", "http://" + pl.ips["gateway"] + ":8080", "-out", "/tmp/reports"}
	if !slices.Equal(got, want) {
		t.Errorf("loadtest command %q, want %q", got, want)
	}
	hc := pl.project.Services["payment"].HealthCheck.Test
	if got, want := pl.args("payment", hc[2:]), []string{"http://" + pl.ips["payment"] + ":9204/readyz"}; !slices.Equal(got, want) {
		t.Errorf("payment's healthcheck %q, want %q", got, want)
	}
}

// Services start after what they depend on; every database a service's
// URL names is created.
func TestStartOrderAndDatabases(t *testing.T) {
	pl := testPlan(t)
	order, err := pl.startOrder()
	if err != nil {
		t.Fatal(err)
	}
	before := func(a, b string) {
		i, j := slices.Index(order, a), slices.Index(order, b)
		if i < 0 || j < 0 || i > j {
			t.Errorf("start order %v: %s must start before %s", order, a, b)
		}
	}
	before("inventory", "product")
	before("product", "order")
	before("order", "payment")
	before("channelsim", "payment")
	before("payment", "gateway")
	if slices.Contains(order, "loadtest") {
		t.Errorf("start order %v runs the loadtest service, which has a profile", order)
	}
	if got, want := pl.databases(), []string{"marketing", "orders", "payment", "products"}; !slices.Equal(got, want) {
		t.Errorf("databases %v, want %v", got, want)
	}
}
