package check

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The NetworkPolicies each overlay of deploy/k8s renders are held to the code: the calls each
// service makes are read from the settings its ConfigFromEnv reads (every
// *_ADDR, *_URL, *_BROKERS and *_ENDPOINT that names a peer), resolved
// through the manifests to a workload and a port, and the policies must
// let exactly those calls in, plus externalCallers, and nothing else.
// A new call in the code without its policy, or a policy wider than the
// calls, fails here.

// k8sNamespace is where everything of the platform runs.
const k8sNamespace = "flashsale"

// labelSelector is a Kubernetes label selector; the policies use
// matchLabels only, which is all the check evaluates.
type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []any             `yaml:"matchExpressions"`
}

// matches reports whether s selects labels (an empty selector selects
// everything).
func (s labelSelector) matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type networkPolicy struct {
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []struct {
			From []struct {
				PodSelector       *labelSelector `yaml:"podSelector"`
				NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
				IPBlock           any            `yaml:"ipBlock"`
			} `yaml:"from"`
			Ports []struct {
				Protocol string `yaml:"protocol"`
				// Port is a number or a container port's name.
				Port    string `yaml:"port"`
				EndPort int    `yaml:"endPort"`
			} `yaml:"ports"`
		} `yaml:"ingress"`
	} `yaml:"spec"`
}

// pod is one end of a connection: its namespace, the namespace's labels
// and its own labels; for a target, also its container ports by name.
type pod struct {
	name      string
	namespace string
	labels    map[string]string
	ports     map[string]int
}

func (p pod) namespaceLabels() map[string]string {
	// Kubernetes labels every namespace with its name.
	return map[string]string{"kubernetes.io/metadata.name": p.namespace}
}

// allows reports whether np lets from connect to port of to, and whether
// np applies to to at all.
func (np networkPolicy) allows(from, to pod, port int) (applies, allowed bool) {
	if np.Metadata.Namespace != to.namespace || !np.Spec.PodSelector.matches(to.labels) || !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		return false, false
	}
	for _, rule := range np.Spec.Ingress {
		fromOK := len(rule.From) == 0
		for _, peer := range rule.From {
			switch {
			case peer.IPBlock != nil:
				fromOK = true // an address range may hold anyone
			case peer.NamespaceSelector != nil:
				fromOK = fromOK || peer.NamespaceSelector.matches(from.namespaceLabels()) &&
					(peer.PodSelector == nil || peer.PodSelector.matches(from.labels))
			case peer.PodSelector != nil:
				fromOK = fromOK || from.namespace == np.Metadata.Namespace && peer.PodSelector.matches(from.labels)
			}
		}
		portOK := len(rule.Ports) == 0
		for _, p := range rule.Ports {
			lo, err := strconv.Atoi(p.Port)
			if err != nil {
				lo = to.ports[p.Port] // a named port of the target, 0 if none
			}
			hi := max(lo, p.EndPort)
			portOK = portOK || p.Port == "" || lo != 0 && port >= lo && port <= hi
		}
		if fromOK && portOK {
			return true, true
		}
	}
	return true, false
}

// reachable reports whether the policies let from connect to port of to:
// a pod no Ingress policy selects accepts anything.
func reachable(policies []networkPolicy, from, to pod, port int) bool {
	isolated := false
	for _, np := range policies {
		applies, allowed := np.allows(from, to, port)
		if allowed {
			return true
		}
		isolated = isolated || applies
	}
	return !isolated
}

// externalCallers are the callers from outside the workloads of
// deploy/k8s (networkpolicy.yaml names the same), and the listen setting
// of each service they may reach.
var externalCallers = []struct {
	pod pod
	why string
	to  func(Binary) (listenVar string, ok bool)
}{
	{
		pod: pod{name: "the ingress controller", namespace: "ingress-nginx", labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}},
		why: "buyers reach the API through it",
		to: func(b Binary) (string, bool) {
			return b.HTTPVar, b.Service == "gateway"
		},
	},
	{
		pod: pod{name: "Prometheus", namespace: "observability", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
		why: "it scrapes /metrics",
		to: func(b Binary) (string, bool) {
			return b.ProbeVar(), b.Metrics
		},
	},
	{
		pod: pod{name: "the load replay", namespace: k8sNamespace, labels: map[string]string{"app.kubernetes.io/name": "loadtest"}},
		why: "it buys through the gateway and pays at the simulator's pay URLs (FLASHSALE_CHANNELSIM_URL)",
		to: func(b Binary) (string, bool) {
			return b.HTTPVar, b.Service == "gateway" || b.Service == "channelsim"
		},
	},
}

// strangers must reach nothing: a pod of the namespace no service knows,
// pods of other namespaces (one labelled like a service of ours, one like
// Prometheus), and neighbours of the allowed outsiders.
var strangers = []pod{
	{name: "an unknown pod of the namespace", namespace: k8sNamespace, labels: map[string]string{"app.kubernetes.io/name": "intruder"}},
	{name: "an unlabelled pod of default", namespace: "default", labels: map[string]string{}},
	{name: "a pod named gateway in another namespace", namespace: "intruders", labels: map[string]string{"app.kubernetes.io/name": "gateway"}},
	{name: "a pod named prometheus in another namespace", namespace: "intruders", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
	{name: "another pod of ingress-nginx", namespace: "ingress-nginx", labels: map[string]string{"app.kubernetes.io/name": "default-backend"}},
	{name: "grafana beside Prometheus", namespace: "observability", labels: map[string]string{"app.kubernetes.io/name": "grafana"}},
}

// notDials are settings with a dial-like name that name no peer to call.
var notDials = map[string]string{
	"FLASHSALE_CONSUL_ADDR":         "optional: unset, the services use the dns:/// targets",
	"FLASHSALE_CHANNELSIM_BASE_URL": "the simulator's own address, the base of the pay URLs it hands out",
	// The big screen (docs/big-screen.md) scrapes the payment replicas'
	// counters as Prometheus does; the map leaves scrapes out. Turning it
	// on in Kubernetes means a policy from the gateway to the payment
	// service's admin port.
	"FLASHSALE_SCREEN_PAYMENT_METRICS": "the payment replicas' /metrics, scraped once a second (a scrape, not a call)",
}

// optionalDials name a peer only where they are set: unset, the binary
// calls nobody for them.
var optionalDials = map[string]string{
	"FLASHSALE_STUB_CHANNELS_URL": "the stub of the channels for pressure tests beside live ones; unset, a pressure test's payment is refused",
}

// dials reports whether name, read by b, names a peer b connects to.
func (b Binary) dials(name string) bool {
	if _, ok := notDials[name]; ok || name == b.HTTPVar {
		return false
	}
	if b.ServesGRPC && (name == "FLASHSALE_GRPC_ADDR" || name == "FLASHSALE_ADMIN_ADDR") {
		return false
	}
	for _, suffix := range []string{"_ADDR", "_URL", "_BROKERS", "_ENDPOINT"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// edge is a connection the architecture makes: who (a workload or an
// external caller), to which workload, on which container port.
type edge struct {
	from, to string
	port     int
}

// k8sPods are the workloads' pods by name, with their container ports.
func k8sPods(objs []k8sObject) map[string]pod {
	out := map[string]pod{}
	for _, w := range workloads(objs) {
		c := w.Spec.Template.Spec.Containers[0]
		p := pod{name: w.Metadata.Name, namespace: w.Metadata.Namespace, labels: w.Spec.Template.Metadata.Labels, ports: map[string]int{}}
		for _, cp := range c.Ports {
			p.ports[cp.Name] = cp.ContainerPort
		}
		out[w.Metadata.Name] = p
	}
	return out
}

// mustCalls derives the connections the architecture makes, with why:
// every peer each workload's binary reads (resolved through the Services
// to a workload and its container port), and the external callers.
func mustCalls(t *testing.T, objs []k8sObject, pods map[string]pod) map[edge]string {
	t.Helper()
	calls := map[edge]string{}
	runs := mustK8sRuns(t, objs)
	for _, r := range runs {
		for _, name := range r.reads {
			if !r.bin.dials(name) {
				continue
			}
			if _, optional := optionalDials[name]; optional && r.env[name] == "" {
				continue
			}
			if r.env[name] == "" {
				t.Errorf("%s reads %s, which the manifests leave unset: it would dial its default, nothing in a pod", r.workload, name)
				continue
			}
			eps, err := Endpoints(name, r.env[name])
			if err != nil {
				t.Errorf("%s: %v", r.workload, err)
				continue
			}
			for _, ep := range eps {
				to, port, ok := resolve(t, objs, pods, ep)
				if ok {
					calls[edge{r.workload, to, port}] = fmt.Sprintf("%s=%s", name, r.env[name])
				}
			}
		}
	}
	for _, ext := range externalCallers {
		for _, r := range runs {
			listen, ok := ext.to(r.bin)
			if !ok {
				continue
			}
			port, err := Port(r.env[listen])
			if err != nil {
				t.Errorf("%s: %s=%q: %v", r.workload, listen, r.env[listen], err)
				continue
			}
			calls[edge{ext.pod.name, r.workload, port}] = ext.why
		}
	}
	return calls
}

// resolve finds the workload and container port an endpoint reaches
// inside the namespace: <service>[.flashsale[.svc[.cluster.local]]]:port
// through the Service's selector and target port, or consul://<service>
// at the gRPC port it registers. Endpoints outside the namespace
// (managed Kafka, Redis, Postgres, the collector) return false.
func resolve(t *testing.T, objs []k8sObject, pods map[string]pod, ep Endpoint) (string, int, bool) {
	t.Helper()
	if ep.Consul {
		p, ok := pods[ep.Host]
		if !ok {
			t.Errorf("consul://%s: no such workload", ep.Host)
		}
		return ep.Host, p.ports["grpc"], ok
	}
	parts := strings.Split(ep.Host, ".")
	svc, ok := find(objs, "Service", parts[0])
	if !ok || len(parts) > 1 && parts[1] != k8sNamespace || svc.Metadata.Namespace != k8sNamespace {
		return "", 0, false
	}
	for _, sp := range svc.Spec.Ports {
		if sp.Port != ep.Port {
			continue
		}
		for name, p := range pods {
			match := len(svc.serviceSelector) > 0
			for k, v := range svc.serviceSelector {
				match = match && p.labels[k] == v
			}
			if match {
				return name, p.ports[sp.TargetPort], true
			}
		}
	}
	t.Errorf("%s:%d: Service %s selects no workload on that port", ep.Host, ep.Port, parts[0])
	return "", 0, false
}

// mustNetworkPolicies decodes the NetworkPolicies of objs and
// refuses what the check does not evaluate.
func mustNetworkPolicies(t *testing.T, objs []k8sObject) []networkPolicy {
	t.Helper()
	var out []networkPolicy
	for _, o := range byKind(objs, "NetworkPolicy") {
		var np networkPolicy
		if err := o.node.Decode(&np); err != nil {
			t.Fatalf("NetworkPolicy %s: %v", o.Metadata.Name, err)
		}
		name := np.Metadata.Name
		if np.Metadata.Namespace != k8sNamespace {
			t.Errorf("NetworkPolicy %s: namespace %q, want %s", name, np.Metadata.Namespace, k8sNamespace)
		}
		if !slices.Equal(np.Spec.PolicyTypes, []string{"Ingress"}) {
			t.Errorf("NetworkPolicy %s: policyTypes %v, want [Ingress] (this check models ingress only: extend it before restricting egress)", name, np.Spec.PolicyTypes)
		}
		selectors := []labelSelector{np.Spec.PodSelector}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Protocol != "" && p.Protocol != "TCP" {
					t.Errorf("NetworkPolicy %s: protocol %s: every call of the platform is TCP, which is all this check evaluates", name, p.Protocol)
				}
			}
			for _, peer := range r.From {
				if peer.IPBlock != nil {
					t.Errorf("NetworkPolicy %s: an ipBlock peer: address ranges say nothing about who is calling", name)
				}
				for _, s := range []*labelSelector{peer.PodSelector, peer.NamespaceSelector} {
					if s != nil {
						selectors = append(selectors, *s)
					}
				}
			}
		}
		for _, s := range selectors {
			if len(s.MatchExpressions) > 0 {
				t.Errorf("NetworkPolicy %s: matchExpressions, which this check does not evaluate", name)
			}
		}
		out = append(out, np)
	}
	return out
}

// Nothing in the namespace accepts a connection unless a policy names
// the caller, whatever workloads are added later.
func TestK8sNetworkPoliciesDenyByDefault(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, _ string, objs []k8sObject) {
		for _, np := range mustNetworkPolicies(t, objs) {
			if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 &&
				slices.Contains(np.Spec.PolicyTypes, "Ingress") && len(np.Spec.Ingress) == 0 {
				return
			}
		}
		t.Errorf("no NetworkPolicy selects every pod of %s for Ingress with no rule (default deny)", k8sNamespace)
	})
}

// The policies let in exactly the calls of the code and the external
// callers: every caller (the workloads, the external callers and
// strangers) against every port of every workload.
func TestK8sNetworkPoliciesAllowExactlyTheArchitecture(t *testing.T) {
	forEachOverlay(t, testK8sNetworkPoliciesAllowExactlyTheArchitecture)
}

func testK8sNetworkPoliciesAllowExactlyTheArchitecture(t *testing.T, _ string, objs []k8sObject) {
	policies := mustNetworkPolicies(t, objs)
	pods := k8sPods(objs)
	calls := mustCalls(t, objs, pods)

	callers := slices.Collect(maps.Values(pods))
	for _, ext := range externalCallers {
		callers = append(callers, ext.pod)
	}
	callers = append(callers, strangers...)
	for _, to := range pods {
		for portName, port := range to.ports {
			for _, from := range callers {
				if from.name == to.name {
					continue // a pod can always reach itself
				}
				why, want := calls[edge{from.name, to.name, port}]
				switch got := reachable(policies, from, to, port); {
				case want && !got:
					t.Errorf("%s calls %s:%d (%s; %s), which no NetworkPolicy lets in", from.name, to.name, port, portName, why)
				case got && !want:
					t.Errorf("the NetworkPolicies let %s reach %s:%d (%s), which the code never calls", from.name, to.name, port, portName)
				}
			}
		}
	}
	// The derivation must find the architecture's calls at all: a change
	// that hid them (a renamed setting, say) would otherwise pass with
	// everything closed.
	for _, e := range []edge{
		{"gateway", "order", 9103}, {"order", "inventory", 9102}, {"product", "inventory", 9102},
		{"payment", "order", 9103}, {"payment", "channelsim", 9301}, {"channelsim", "gateway", 8080},
	} {
		if _, sim := pods["channelsim"]; !sim && (e.from == "channelsim" || e.to == "channelsim") {
			continue // no simulator in this overlay: the real channels are outside
		}
		if _, ok := calls[e]; !ok {
			t.Errorf("no call %s → %s:%d derived from the code; derived %v", e.from, e.to, e.port, slices.Collect(maps.Keys(calls)))
		}
	}
}

func TestNetworkPolicyEvaluation(t *testing.T) {
	gw := pod{name: "gateway", namespace: k8sNamespace, labels: map[string]string{"app": "gateway"}, ports: map[string]int{"http": 8080}}
	ord := pod{name: "order", namespace: k8sNamespace, labels: map[string]string{"app": "order"}, ports: map[string]int{"grpc": 9103, "admin": 9203}}
	prom := pod{name: "prom", namespace: "observability", labels: map[string]string{"app": "prometheus"}}
	policy := func(yaml string) []networkPolicy {
		return mustNetworkPolicies(t, mustParseManifest(t, "policies", []byte(yaml)))
	}
	deny := `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: flashsale}
spec: {podSelector: {}, policyTypes: [Ingress]}
`
	orderFromGateway := deny + `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: order, namespace: flashsale}
spec:
  podSelector: {matchLabels: {app: order}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: gateway}}}]
      ports: [{port: grpc}]
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: observability}}, podSelector: {matchLabels: {app: prometheus}}}]
      ports: [{port: 9203}]
`
	tests := []struct {
		name     string
		policies string
		from, to pod
		port     int
		want     bool
	}{
		{"no policy: open", "", prom, ord, 9103, true},
		{"default deny", deny, gw, ord, 9103, false},
		{"allowed caller on its named port", orderFromGateway, gw, ord, 9103, true},
		{"allowed caller on another port", orderFromGateway, gw, ord, 9203, false},
		{"outsider on its numbered port", orderFromGateway, prom, ord, 9203, true},
		{"outsider on the gRPC port", orderFromGateway, prom, ord, 9103, false},
		{"same labels in another namespace", orderFromGateway, pod{name: "x", namespace: "other", labels: gw.labels}, ord, 9103, false},
		{"unselected pod stays closed by the default", orderFromGateway, ord, gw, 8080, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []networkPolicy
			if tt.policies != "" {
				ps = policy(tt.policies)
			}
			if got := reachable(ps, tt.from, tt.to, tt.port); got != tt.want {
				t.Fatalf("reachable: got %v, want %v", got, tt.want)
			}
		})
	}
}
