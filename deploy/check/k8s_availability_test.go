package check

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	gwapp "github.com/flashsale/flashsale/gateway/app"
	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/telemetry"
)

// selects reports whether sel selects a pod labelled l in the same
// namespace.
func selects(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(l))
}

// Every workload has exactly one PodDisruptionBudget, selecting its pods
// and no other workload's, that lets a drain evict one pod at a time:
// with none, a node drain or cluster upgrade may take every replica at
// once; with minAvailable equal to the replicas, it could evict none.
func TestK8sDisruptionBudgets(t *testing.T) {
	for _, overlay := range k8sOverlays {
		t.Run(overlay, func(t *testing.T) {
			objs := mustTypedManifests(t, overlay)
			pods := podTemplates(objs)
			var pdbs []*policyv1.PodDisruptionBudget
			for _, o := range objs {
				if p, ok := o.(*policyv1.PodDisruptionBudget); ok {
					pdbs = append(pdbs, p)
				}
			}
			for name, pod := range pods {
				var mine []*policyv1.PodDisruptionBudget
				for _, p := range pdbs {
					if p.Namespace == k8sNamespace && selects(t, p.Spec.Selector, pod.Labels) {
						mine = append(mine, p)
					}
				}
				if len(mine) != 1 {
					t.Errorf("%s: %d PodDisruptionBudgets select its pods, want 1", name, len(mine))
					continue
				}
				p := mine[0]
				for other, op := range pods {
					if other != name && selects(t, p.Spec.Selector, op.Labels) {
						t.Errorf("PodDisruptionBudget %s selects the pods of %s too", p.Name, other)
					}
				}
				replicas := workloadReplicas(objs, name)
				switch {
				case p.Spec.MaxUnavailable != nil:
					if p.Spec.MaxUnavailable.String() == "0" || p.Spec.MaxUnavailable.String() == "0%" {
						t.Errorf("PodDisruptionBudget %s: maxUnavailable 0 blocks every drain", p.Name)
					}
				case p.Spec.MinAvailable != nil:
					if p.Spec.MinAvailable.Type != 0 || int32(p.Spec.MinAvailable.IntValue()) >= replicas {
						t.Errorf("PodDisruptionBudget %s: minAvailable %s of %d replicas blocks every drain", p.Name, p.Spec.MinAvailable.String(), replicas)
					}
				default:
					t.Errorf("PodDisruptionBudget %s: neither minAvailable nor maxUnavailable", p.Name)
				}
			}
		})
	}
}

// workloadReplicas returns the replicas of the workload podTemplates
// names kind/name (1 when unset, as the API defaults it).
func workloadReplicas(objs []runtime.Object, name string) int32 {
	var r *int32
	for _, o := range objs {
		switch w := o.(type) {
		case *appsv1.Deployment:
			if "Deployment/"+w.Name == name {
				r = w.Spec.Replicas
			}
		case *appsv1.StatefulSet:
			if "StatefulSet/"+w.Name == name {
				r = w.Spec.Replicas
			}
		}
	}
	if r == nil {
		return 1
	}
	return *r
}

// Every workload spreads its replicas over the nodes where it can
// (kubernetes.io/hostname), without leaving a pod unscheduled for it
// (ScheduleAnyway: a kind cluster has one node), counting its own pods.
func TestK8sTopologySpread(t *testing.T) {
	for _, overlay := range k8sOverlays {
		t.Run(overlay, func(t *testing.T) {
			for name, pod := range podTemplates(mustTypedManifests(t, overlay)) {
				if !slices.ContainsFunc(pod.Spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
					return c.TopologyKey == corev1.LabelHostname && c.WhenUnsatisfiable == corev1.ScheduleAnyway && c.MaxSkew >= 1 &&
						selects(t, c.LabelSelector, pod.Labels)
				}) {
					t.Errorf("%s: no topologySpreadConstraint over %s, ScheduleAnyway, selecting its own pods; has %+v", name, corev1.LabelHostname, pod.Spec.TopologySpreadConstraints)
				}
			}
		})
	}
}

// Prometheus finds the pods by their annotations: every binary that
// serves /metrics says scrape, /metrics and the container port it serves
// them on (its admin port, or the gateway's API port: the port of
// ProbeVar in its environment), which the container declares; the one
// that serves none says no scrape.
func TestK8sScrapeAnnotations(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, _ string, objs []k8sObject) {
		for _, w := range workloads(objs) {
			c := w.Spec.Template.Spec.Containers[0]
			b, ok := binaryOf(c.Name)
			if !ok {
				continue // TestK8sEnvironmentMatchesTheConfiguration reports it
			}
			a := w.Spec.Template.Metadata.Annotations
			if !b.Metrics {
				if a["prometheus.io/scrape"] == "true" {
					t.Errorf("%s serves no /metrics but asks to be scraped", w.Metadata.Name)
				}
				continue
			}
			env, _ := mustWorkloadEnv(t, objs, c)
			port, err := Port(env[b.ProbeVar()])
			if err != nil {
				t.Errorf("%s: %s=%q: %v", w.Metadata.Name, b.ProbeVar(), env[b.ProbeVar()], err)
				continue
			}
			declared := slices.ContainsFunc(c.Ports, func(p struct {
				Name          string `yaml:"name"`
				ContainerPort int    `yaml:"containerPort"`
			}) bool {
				return p.ContainerPort == port
			})
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || a["prometheus.io/port"] != strconv.Itoa(port) || !declared {
				t.Errorf("%s: scrape annotations %q, %q, port %q; want \"true\", /metrics and %d, the declared port of %s", w.Metadata.Name,
					a["prometheus.io/scrape"], a["prometheus.io/path"], a["prometheus.io/port"], port, b.ProbeVar())
			}
		}
	})
}

// The gateway's Ingress is served by ingress-nginx (the controller the
// NetworkPolicies let in) and routes every path to a port of the
// gateway Service, which targets the port the gateway listens on
// (TestK8sServices); the overlays name its host.
func TestK8sIngress(t *testing.T) {
	for _, overlay := range k8sOverlays {
		t.Run(overlay, func(t *testing.T) {
			objs := mustTypedManifests(t, overlay)
			var gw *corev1.Service
			var ings []*networkingv1.Ingress
			for _, o := range objs {
				switch v := o.(type) {
				case *corev1.Service:
					if v.Name == "gateway" && v.Namespace == k8sNamespace {
						gw = v
					}
				case *networkingv1.Ingress:
					ings = append(ings, v)
				}
			}
			if gw == nil || len(ings) == 0 {
				t.Fatalf("gateway Service %v, %d Ingresses; want both", gw != nil, len(ings))
			}
			for _, ing := range ings {
				if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
					t.Errorf("Ingress %s: class %v, want nginx", ing.Name, deref(ing.Spec.IngressClassName))
				}
				if ing.Spec.DefaultBackend != nil {
					t.Errorf("Ingress %s: a default backend", ing.Name)
				}
				if len(ing.Spec.Rules) == 0 {
					t.Errorf("Ingress %s: no rules", ing.Name)
				}
				for _, r := range ing.Spec.Rules {
					if r.Host == "" {
						t.Errorf("Ingress %s: a rule without a host (the overlay sets it)", ing.Name)
					}
					if r.HTTP == nil || len(r.HTTP.Paths) == 0 {
						t.Errorf("Ingress %s: host %s routes nothing", ing.Name, r.Host)
						continue
					}
					for _, p := range r.HTTP.Paths {
						if err := routesToService(p.Backend, gw); err != nil {
							t.Errorf("Ingress %s: %s%s: %v", ing.Name, r.Host, p.Path, err)
						}
					}
					// The API is routed; the gateway's operations
					// endpoints, on the same port, are not.
					for path, want := range map[string]bool{
						"/api/v1/activities": true, "/admin/v1/products": true,
						"/metrics": false, telemetry.DependenciesPath: false, "/healthz": false, "/readyz": false,
					} {
						if got := ingressRoutes(r.HTTP.Paths, path); got != want {
							t.Errorf("Ingress %s: %s%s routed %v, want %v", ing.Name, r.Host, path, got, want)
						}
					}
				}
			}
		})
	}
}

// Behind the ingress every connection to the gateway comes from the
// ingress controller, so the per-IP limit (and the IP blocklist) must read
// the client from X-Forwarded-For: the gateway trusts the proxies' ranges
// in every overlay (each routes buyers through an Ingress, TestK8sIngress),
// or one abusive
// client would 429 every buyer behind the same ingress pod.
func TestK8sGatewayTrustsTheIngressForTheClientAddress(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, _ string, objs []k8sObject) {
		gw, ok := find(objs, "Deployment", "gateway")
		if !ok {
			t.Fatal("no gateway Deployment")
		}
		env, _ := mustWorkloadEnv(t, objs, gw.Spec.Template.Spec.Containers[0])
		cfg := gwapp.ConfigFromEnv(config.FromMap(env))
		if cfg.IPLimit.RPS <= 0 {
			return // no per-IP limit to share
		}
		if len(cfg.TrustedProxies) == 0 {
			t.Fatalf("the gateway has a per-IP limit (%v a second) but trusts no proxy: every buyer behind the ingress shares one bucket", cfg.IPLimit.RPS)
		}
		for _, pod := range []string{"10.244.0.7", "172.17.0.3", "192.168.1.20"} {
			if !slices.ContainsFunc(cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr(pod)) }) {
				t.Errorf("a pod address %s is not among the trusted proxies %v", pod, cfg.TrustedProxies)
			}
		}
	})
}

// ingressRoutes reports whether one of paths takes a request for path
// (Prefix: by whole path elements; Exact; ImplementationSpecific, which
// ingress-nginx reads as a prefix).
func ingressRoutes(paths []networkingv1.HTTPIngressPath, path string) bool {
	for _, p := range paths {
		prefix := strings.TrimSuffix(p.Path, "/")
		switch {
		case p.PathType != nil && *p.PathType == networkingv1.PathTypeExact:
			if p.Path == path {
				return true
			}
		case prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/"):
			return true
		}
	}
	return false
}

// routesToService checks that an Ingress backend names svc and one of
// its ports, by name or number.
func routesToService(b networkingv1.IngressBackend, svc *corev1.Service) error {
	if b.Service == nil || b.Service.Name != svc.Name {
		return fmt.Errorf("backend %+v, want Service %s", b, svc.Name)
	}
	for _, p := range svc.Spec.Ports {
		if (b.Service.Port.Name != "" && b.Service.Port.Name == p.Name) || (b.Service.Port.Number != 0 && b.Service.Port.Number == p.Port) {
			return nil
		}
	}
	return fmt.Errorf("port %+v is not a port of Service %s", b.Service.Port, svc.Name)
}

// In production every service runs at least two replicas, so one pod's
// loss or eviction leaves it serving. (The channel simulator, which keeps
// its trades in memory, runs one, in the dev overlay only.)
func TestK8sProdReplicas(t *testing.T) {
	objs := mustTypedManifests(t, "prod")
	pods := podTemplates(objs)
	if run, _ := overlayBinaries(t, "prod"); len(pods) < len(run) {
		t.Errorf("%d workloads, want one per binary (%d)", len(pods), len(run))
	}
	for name := range pods {
		if r := workloadReplicas(objs, name); r < 2 {
			t.Errorf("%s: %d replicas, want at least 2", name, r)
		}
	}
}
