package check

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/loadtest"
	"github.com/flashsale/flashsale/platform/config"
)

// docs/architecture.md's map is held to the code, so that it cannot
// drift again: every block after a mapMarker line is checked. The
// flowcharts must draw exactly the calls the processes make, and the
// gRPC table must list exactly the methods each process calls, and the
// ones no process calls.
//
//   - gRPC and Kafka edges come from the code (DeriveCallGraph);
//   - HTTP, Redis, SQL and Consul edges from the addresses each process
//     reads (its ConfigFromEnv, which reads the settings it dials) as
//     docker-compose.yml sets them (a service reading one that compose
//     leaves unset fails), and every gRPC call must have such an address
//     too: a process that dials a service it never calls, or calls one
//     it has no address for, fails here as well;
//   - the callers from outside, which no setting names, are
//     externalMapEdges.

// mapMarker precedes each checked block of docs/architecture.md.
const mapMarker = "<!-- map: checked by deploy/check/architecture_test.go -->"

// Edge kinds: the first word of a flowchart edge's label. The rest of a
// gRPC label is the service, of a produce label the topic, of a consume
// label "<topic> as <group>"; the rest of the others is free text.
var edgeKinds = []string{"gRPC", "HTTP", "Redis", "SQL", "Consul", "produce", "consume"}

// The nodes of the stores, as the flowcharts name them: the Postgres
// databases are pg_<database>.
const (
	nodeRedis  = "redis"
	nodeKafka  = "kafka"
	nodeConsul = "consul"
)

// externalMapEdges are calls from outside the platform's settings: no
// address names them.
var externalMapEdges = map[string]string{
	"buyer -->|HTTP| gateway": "buyers' apps and browsers call the API",
}

// undrawnHosts are compose hosts the processes dial that the map leaves
// out, and why.
var undrawnHosts = map[string]string{
	"otel-collector": "every process exports its traces there (FLASHSALE_OTLP_ENDPOINT): the map says so once, in words",
}

// mapEdge is an edge of a flowchart: from -->|label| to.
type mapEdge struct {
	from, label, to string
	line            int
}

// key is what the check compares: the label's detail only where the
// code names it (gRPC service, topic and group).
func (e mapEdge) key() string {
	kind, detail, _ := strings.Cut(e.label, " ")
	switch kind {
	case "gRPC", "produce", "consume":
		return fmt.Sprintf("%s -->|%s %s| %s", e.from, kind, detail, e.to)
	}
	return fmt.Sprintf("%s -->|%s| %s", e.from, kind, e.to)
}

// rpcRow is a row of the gRPC table: caller, service, server, methods.
type rpcRow struct {
	caller, service, server string
	methods                 []string
	line                    int
}

// archMap is what docs/architecture.md's checked blocks say.
type archMap struct {
	nodes map[string]string // id -> label, across the flowcharts
	edges []mapEdge
	rows  []rpcRow
}

var (
	mermaidNode = regexp.MustCompile(`^(\w+)\s*(\[\[|\[\(|\(\[|\(\(|\[|\()(.+?)(\]\]|\)\]|\]\)|\)\)|\]|\))$`)
	mermaidEdge = regexp.MustCompile(`^(\w+)\s*(?:-->|-\.->|==>)\s*\|([^|]+)\|\s*(\w+)$`)
	backticked  = regexp.MustCompile("`([^`]+)`")
)

// parseArchMap reads the checked blocks of the architecture chapter: the
// flowcharts' nodes and edges (one a line: id[label] or
// from -->|label| to; subgraph, end, direction and %% comments are
// allowed, anything else is an error so the check never skips a line it
// cannot read) and the gRPC table's rows.
func parseArchMap(t *testing.T, path string) archMap {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := archMap{nodes: map[string]string{}}
	lines := strings.Split(string(raw), "\n")
	blocks := 0
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != mapMarker {
			continue
		}
		blocks++
		i++
		for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
			i++
		}
		switch {
		case i < len(lines) && strings.TrimSpace(lines[i]) == "```mermaid":
			i = parseFlowchart(t, lines, i+1, &m)
		case i < len(lines) && strings.HasPrefix(lines[i], "|"):
			i = parseRPCTable(t, lines, i, &m)
		default:
			t.Fatalf("%s:%d: a map marker not followed by a mermaid flowchart or a table", path, i)
		}
	}
	if blocks == 0 || len(m.edges) == 0 || len(m.rows) == 0 {
		t.Fatalf("%s: no checked flowchart and gRPC table (each after a line %q)", path, mapMarker)
	}
	for _, e := range m.edges {
		for _, id := range []string{e.from, e.to} {
			if _, ok := m.nodes[id]; !ok {
				t.Errorf("docs/architecture.md:%d: edge %s names node %s, which no line declares", e.line, e.key(), id)
			}
		}
	}
	return m
}

// parseFlowchart reads a flowchart from lines[i] to its closing fence
// and returns the fence's index.
func parseFlowchart(t *testing.T, lines []string, i int, m *archMap) int {
	t.Helper()
	declared := map[string]bool{}
	if i >= len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[i]), "flowchart ") {
		t.Fatalf("docs/architecture.md:%d: a checked mermaid block must be a flowchart", i+1)
	}
	for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
		line := strings.TrimSpace(lines[i])
		switch {
		case line == "" || line == "end" || strings.HasPrefix(line, "%%") ||
			strings.HasPrefix(line, "subgraph ") || strings.HasPrefix(line, "direction "):
		case mermaidEdge.MatchString(line):
			s := mermaidEdge.FindStringSubmatch(line)
			e := mapEdge{from: s[1], label: strings.TrimSpace(s[2]), to: s[3], line: i + 1}
			kind, _, _ := strings.Cut(e.label, " ")
			if !slices.Contains(edgeKinds, kind) {
				t.Errorf("docs/architecture.md:%d: edge label %q starts with %q, not one of %v", i+1, e.label, kind, edgeKinds)
			}
			m.edges = append(m.edges, e)
		case mermaidNode.MatchString(line):
			s := mermaidNode.FindStringSubmatch(line)
			if declared[s[1]] {
				t.Errorf("docs/architecture.md:%d: node %s declared twice", i+1, s[1])
			}
			declared[s[1]] = true
			m.nodes[s[1]] = s[3]
		default:
			t.Errorf("docs/architecture.md:%d: %q is neither a node (id[label]) nor an edge (from -->|label| to)", i+1, line)
		}
	}
	return i
}

// parseRPCTable reads the gRPC table from lines[i]: a header, a rule and
// rows | caller | service | server | `Method`, `Method` | what for |. A
// caller of "nobody" lists the methods no process calls.
func parseRPCTable(t *testing.T, lines []string, i int, m *archMap) int {
	t.Helper()
	for n := 0; i < len(lines) && strings.HasPrefix(lines[i], "|"); i, n = i+1, n+1 {
		if n < 2 {
			continue // the header and the rule
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(lines[i]), "|"), "|")
		if len(cells) != 5 {
			t.Errorf("docs/architecture.md:%d: a gRPC table row needs 5 cells (caller, service, server, methods, what for)", i+1)
			continue
		}
		clean := func(s string) string { return strings.Trim(strings.TrimSpace(s), "`") }
		r := rpcRow{caller: clean(cells[0]), service: clean(cells[1]), server: clean(cells[2]), line: i + 1}
		for _, mm := range backticked.FindAllStringSubmatch(cells[3], -1) {
			r.methods = append(r.methods, mm[1])
		}
		m.rows = append(m.rows, r)
	}
	return i - 1
}

// dialEdges are the calls each process's addresses make in
// docker-compose.yml, as map keys, with the setting behind each; and, by
// process, the processes its gRPC addresses name and whether it dials
// Kafka.
func dialEdges(t *testing.T) (edges map[string]string, grpcTargets map[string]map[string]string, kafka map[string]bool) {
	t.Helper()
	p := mustComposeProject(t, nil)
	edges = map[string]string{}
	grpcTargets = map[string]map[string]string{}
	kafka = map[string]bool{}
	servesHTTP := map[string]bool{}
	for _, b := range Binaries {
		servesHTTP[b.Service] = !b.ServesGRPC
	}
	procs := Processes()
	for _, dir := range slices.Sorted(maps.Keys(procs)) {
		proc := procs[dir]
		env := composeEnv(t, p, proc)
		var dials []string // settings naming a peer, as NAME=value
		if b, ok := Binaries[dir]; ok {
			read, err := b.Reads(env)
			if err != nil {
				t.Errorf("%s refuses its compose configuration: %v", proc, err)
			}
			for _, name := range read {
				if name == "FLASHSALE_CONSUL_ADDR" && env[name] != "" {
					edges[fmt.Sprintf("%s -->|Consul| %s", proc, nodeConsul)] = name + "=" + env[name]
				}
				_, optional := optionalDials[name]
				switch {
				case !b.dials(name), optional && env[name] == "":
				case env[name] == "":
					t.Errorf("%s reads %s, which docker-compose.yml leaves unset: it would dial its default, and the map cannot tell what", proc, name)
				default:
					dials = append(dials, name+"="+env[name])
				}
			}
		} else {
			// The load driver: the settings it reads, each optional
			// (unset, it skips what needs it), and its -target.
			var read []string
			loadtest.EnvFromConfig(config.FromFunc(func(name string) (string, bool) {
				read = append(read, name)
				v, ok := env[name]
				return v, ok
			}))
			for _, name := range read {
				if (Binary{}).dials(name) && env[name] != "" {
					dials = append(dials, name+"="+env[name])
				}
			}
			s, err := p.GetService(proc)
			if err != nil {
				t.Fatal(err)
			}
			if i := slices.Index(s.Command, "-target"); i >= 0 && i+1 < len(s.Command) {
				dials = append(dials, "FLASHSALE_TARGET_URL="+s.Command[i+1]) // the flag, named as a URL setting
			} else {
				t.Errorf("the %s service's command %v has no -target", proc, s.Command)
			}
		}
		slices.Sort(dials)
		for _, d := range dials {
			name, value, _ := strings.Cut(d, "=")
			eps, err := Endpoints(name, value)
			if err != nil {
				t.Errorf("%s: %v", proc, err)
				continue
			}
			for _, ep := range eps {
				host := ep.Host
				switch {
				case ep.Consul || procsServing(host) && !servesHTTP[host]:
					if grpcTargets[proc] == nil {
						grpcTargets[proc] = map[string]string{}
					}
					grpcTargets[proc][host] = d
				case servesHTTP[host]:
					edges[fmt.Sprintf("%s -->|HTTP| %s", proc, host)] = d
				case host == "redis":
					edges[fmt.Sprintf("%s -->|Redis| %s", proc, nodeRedis)] = d
				case host == "postgres":
					u, err := url.Parse(value)
					if err != nil {
						t.Errorf("%s: %s: %v", proc, d, err)
						continue
					}
					edges[fmt.Sprintf("%s -->|SQL| pg_%s", proc, strings.TrimPrefix(u.Path, "/"))] = d
				case strings.HasPrefix(host, "kafka-"):
					kafka[proc] = true
				case undrawnHosts[host] != "":
				default:
					t.Errorf("%s: %s names %s, which the map has no node for", proc, d, host)
				}
			}
		}
	}
	return edges, grpcTargets, kafka
}

// procsServing reports whether host is a process of the map.
func procsServing(host string) bool {
	return slices.Contains(slices.Collect(maps.Values(Processes())), host)
}

// TestArchitectureMapMatchesTheCode holds docs/architecture.md's
// flowcharts and gRPC table to the calls the code and the compose
// settings make.
func TestArchitectureMapMatchesTheCode(t *testing.T) {
	root := mustRepoRoot(t)
	doc := parseArchMap(t, filepath.Join(root, "docs", "architecture.md"))
	code := DeriveCallGraph(t)
	declared := protoServices(t, root)
	dials, grpcTargets, dialsKafka := dialEdges(t)

	// Every declared service is served by one process.
	server := map[string]string{}
	for _, s := range slices.Sorted(maps.Keys(declared)) {
		switch procs := code.servers[s]; len(procs) {
		case 1:
			server[s] = procs[0]
		default:
			t.Errorf("gRPC service %s (proto/) is registered by %d processes %v, want one", s, len(procs), procs)
		}
	}

	want := map[string]string{} // map key -> why
	for k, why := range dials {
		want[k] = why
	}
	for k, why := range externalMapEdges {
		want[k] = why
	}
	calls := map[[2]string][]string{} // (caller, service) -> methods
	for c := range code.rpcs {
		if !slices.Contains(declared[c.service], c.method) {
			t.Errorf("%s calls %s.%s, which proto/ does not declare", c.process, c.service, c.method)
		}
		k := [2]string{c.process, c.service}
		calls[k] = append(calls[k], c.method)
	}
	for k, methods := range calls {
		caller, service := k[0], k[1]
		to, ok := server[service]
		if !ok {
			continue
		}
		slices.Sort(methods)
		want[fmt.Sprintf("%s -->|gRPC %s| %s", caller, service, to)] = fmt.Sprintf("%s calls %s.%s", caller, service, strings.Join(methods, ", "))
		if _, ok := grpcTargets[caller][to]; !ok {
			t.Errorf("%s calls %s of %s, but no address %s reads in docker-compose.yml names %s", caller, service, to, caller, to)
		}
	}
	for caller, targets := range grpcTargets {
		for to, setting := range targets {
			called := false
			for k := range calls {
				called = called || k[0] == caller && server[k[1]] == to
			}
			if !called {
				t.Errorf("%s dials %s (%s) but its code calls no service %s serves", caller, to, setting, to)
			}
		}
	}
	usesKafka := map[string]bool{}
	for u := range code.kafka {
		usesKafka[u.process] = true
		switch {
		case u.consume && u.group == "":
			want[fmt.Sprintf("%s -->|consume %s| %s", nodeKafka, u.topic, u.process)] = "a reader of every partition, without a group"
		case u.consume:
			want[fmt.Sprintf("%s -->|consume %s as %s| %s", nodeKafka, u.topic, u.group, u.process)] = "a reader of group " + u.group
		default:
			want[fmt.Sprintf("%s -->|produce %s| %s", u.process, u.topic, nodeKafka)] = "a writer"
		}
	}
	for _, proc := range slices.Sorted(maps.Values(Processes())) {
		if usesKafka[proc] != dialsKafka[proc] {
			t.Errorf("%s: its code uses Kafka: %v; it dials brokers in docker-compose.yml: %v; the two must agree", proc, usesKafka[proc], dialsKafka[proc])
		}
	}

	t.Logf("derived from the code and docker-compose.yml: %d gRPC methods called over %d caller and service pairs, %d Kafka uses, %d edges in all",
		len(code.rpcs), len(calls), len(code.kafka), len(want))

	drawn := map[string]int{}
	for _, e := range doc.edges {
		if prev, dup := drawn[e.key()]; dup {
			t.Errorf("docs/architecture.md:%d: %s is drawn twice (line %d too)", e.line, e.key(), prev)
		}
		drawn[e.key()] = e.line
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if _, ok := drawn[k]; !ok {
			t.Errorf("docs/architecture.md lacks the edge %s (%s)", k, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(drawn)) {
		if _, ok := want[k]; !ok {
			t.Errorf("docs/architecture.md:%d draws %s, which the code and its settings never make", drawn[k], k)
		}
	}
	used := map[string]bool{}
	for _, e := range doc.edges {
		used[e.from], used[e.to] = true, true
	}
	for id := range doc.nodes {
		if !used[id] {
			t.Errorf("docs/architecture.md: node %s has no edge", id)
		}
	}

	// The gRPC table: each caller's methods of each service, and the
	// methods nobody calls.
	rows := map[[2]string]rpcRow{}
	for _, r := range doc.rows {
		k := [2]string{r.caller, r.service}
		if _, dup := rows[k]; dup {
			t.Errorf("docs/architecture.md:%d: a second row for %s calling %s", r.line, r.caller, r.service)
		}
		rows[k] = r
		if want := server[r.service]; r.server != want {
			t.Errorf("docs/architecture.md:%d: %s is served by %q, not %q", r.line, r.service, want, r.server)
		}
	}
	uncalled := map[string][]string{}
	for s, methods := range declared {
		for _, m := range methods {
			called := false
			for k, ms := range calls {
				called = called || k[1] == s && slices.Contains(ms, m)
			}
			if !called {
				uncalled[s] = append(uncalled[s], m)
			}
		}
		if len(uncalled[s]) > 0 {
			calls[[2]string{"nobody", s}] = uncalled[s]
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(calls), func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) }) {
		r, ok := rows[k]
		want := slices.Sorted(slices.Values(calls[k]))
		switch got := slices.Sorted(slices.Values(r.methods)); {
		case !ok:
			t.Errorf("docs/architecture.md's gRPC table lacks the row | %s | %s | %s | %s |", k[0], k[1], server[k[1]], strings.Join(want, ", "))
		case !slices.Equal(got, want):
			t.Errorf("docs/architecture.md:%d: %s calls %s methods %v, the code %v", r.line, k[0], k[1], got, want)
		}
		delete(rows, k)
	}
	for _, r := range rows {
		t.Errorf("docs/architecture.md:%d: a row for %s calling %s, which the code never does", r.line, r.caller, r.service)
	}
}
