package check

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// storeImages are the images of the stores and brokers the services
// connect to over TCP. Their healthchecks must ask over TCP too: a probe
// through a Unix socket (pg_isready or redis-cli without -h) can pass
// before the server listens on the network, as the Postgres image's
// first start does while its init scripts run.
var storeImages = []string{"postgres", "redis", "apache/kafka", "hashicorp/consul"}

// imageRepository returns an image reference without its tag and digest.
func imageRepository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if colon := strings.LastIndex(image, ":"); colon > strings.LastIndex(image, "/") {
		image = image[:colon]
	}
	return image
}

// probedPort returns the loopback TCP port a healthcheck command names:
// an http://127.0.0.1:<port> URL, a 127.0.0.1:<port> address, or -h/--host
// 127.0.0.1 with -p/--port <port> (the address may follow the flag or be
// joined to it by "="). It returns 0 when the command names none.
func probedPort(args []string) int {
	var host, port string
	for i, a := range args {
		flag, value, joined := strings.Cut(a, "=")
		if !joined && i+1 < len(args) {
			value = args[i+1]
		}
		switch flag {
		case "-h", "--host", "--hostname":
			host = value
		case "-p", "--port":
			port = value
		}
		if u, err := url.Parse(value); err == nil && u.Hostname() == "127.0.0.1" && u.Port() != "" {
			return portNumber(u.Port())
		}
		if h, p, err := net.SplitHostPort(value); err == nil && h == "127.0.0.1" {
			return portNumber(p)
		}
	}
	if host == "127.0.0.1" {
		return portNumber(port)
	}
	return 0
}

// portNumber returns s as a port, 0 when it is none.
func portNumber(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// Every healthcheck of a store or broker names a TCP host and the port
// the services reach it on.
func TestComposeStoreHealthchecksUseTCP(t *testing.T) {
	p := mustComposeProject(t, nil)
	probed := map[string]bool{}
	for name, s := range p.Services {
		repo := imageRepository(s.Image)
		if !slices.Contains(storeImages, repo) {
			continue
		}
		probed[repo] = true
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s: no healthcheck", name)
			continue
		}
		got, want := probedPort(s.HealthCheck.Test[1:]), infraPorts[name][0]
		if got != want {
			t.Errorf("%s: healthcheck %q does not ask 127.0.0.1:%d over TCP (it may pass before %s listens there)",
				name, s.HealthCheck.Test, want, name)
		}
	}
	for _, repo := range storeImages {
		if !probed[repo] {
			t.Errorf("no compose service runs %s: the list of store images is stale", repo)
		}
	}
}

func TestProbedPort(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"pg_isready", "-U", "flashsale", "-d", "products"}, 0},
		{[]string{"pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "flashsale"}, 5432},
		{[]string{"pg_isready", "-h", "127.0.0.1", "-U", "flashsale"}, 0},
		{[]string{"pg_isready", "-h", "/var/run/postgresql", "-p", "5432"}, 0},
		{[]string{"redis-cli", "ping"}, 0},
		{[]string{"redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"}, 6379},
		{[]string{"kafka-broker-api-versions.sh", "--bootstrap-server", "localhost:9092"}, 0},
		{[]string{"kafka-broker-api-versions.sh", "--bootstrap-server", "127.0.0.1:9092"}, 9092},
		{[]string{"consul", "members"}, 0},
		{[]string{"consul", "members", "-http-addr=http://127.0.0.1:8500"}, 8500},
	} {
		if got := probedPort(c.args); got != c.want {
			t.Errorf("probedPort(%q) = %d, want %d", c.args, got, c.want)
		}
	}
}
