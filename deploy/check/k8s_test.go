package check

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/platform/redisclient"
)

// k8sObject is the part of a manifest the checks read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		// Workloads.
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// Services.
		ClusterIP string           `yaml:"clusterIP"`
		Ports     []k8sServicePort `yaml:"ports"`
		// HorizontalPodAutoscalers.
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas int `yaml:"minReplicas"`
		MaxReplicas int `yaml:"maxReplicas"`
	} `yaml:"spec"`
	// Service selectors are a plain map, which the workloads' selector
	// field cannot hold; they are decoded separately.
	serviceSelector map[string]string
	// node is the whole document, for the kinds whose other fields only
	// one test reads (NetworkPolicies).
	node *yaml.Node
}

type k8sServicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
}

type k8sContainer struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom []struct {
		ConfigMapRef struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// k8sOverlays are the ways the platform is applied,
// `kubectl apply -k deploy/k8s/overlays/<name>`; every check of the
// manifests runs on what each renders.
var k8sOverlays = []string{"dev", "prod", "prod-pressure-test"}

// rendered caches each overlay's rendering, which every test reads.
var rendered sync.Map // overlay → renderResult

type renderResult struct {
	yaml []byte
	err  error
}

// Render builds deploy/k8s/overlays/<overlay> with kustomize (the API
// `kubectl apply -k` embeds, with its defaults: no file outside the
// kustomization's directory tree), into the multi-document YAML kubectl
// would apply.
func Render(overlay string) ([]byte, error) {
	if r, ok := rendered.Load(overlay); ok {
		return r.(renderResult).yaml, r.(renderResult).err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	var out []byte
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, "deploy", "k8s", "overlays", overlay))
	if err == nil {
		out, err = res.AsYaml()
	}
	if err != nil {
		err = fmt.Errorf("kustomize build deploy/k8s/overlays/%s: %w", overlay, err)
	}
	rendered.Store(overlay, renderResult{out, err})
	return out, err
}

// MustManifests parses every document an overlay renders.
func MustManifests(tb testing.TB, overlay string) []k8sObject {
	tb.Helper()
	raw, err := Render(overlay)
	if err != nil {
		tb.Fatal(err)
	}
	return mustParseManifest(tb, overlay, raw)
}

// forEachOverlay runs f on what every overlay renders, as subtests.
func forEachOverlay(t *testing.T, f func(t *testing.T, overlay string, objs []k8sObject)) {
	t.Helper()
	for _, overlay := range k8sOverlays {
		t.Run(overlay, func(t *testing.T) { f(t, overlay, MustManifests(t, overlay)) })
	}
}

// MustExampleSecrets parses deploy/k8s/secrets.example, the Secrets an
// operator creates before applying the prod overlay, with their
// placeholder values.
func MustExampleSecrets(tb testing.TB) []k8sObject {
	tb.Helper()
	root := mustRepoRoot(tb)
	file := filepath.Join(root, "deploy", "k8s", "secrets.example", "secrets.yaml")
	raw, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	return mustParseManifest(tb, file, raw)
}

// operatorSecret stands for a value an operator generated: what a
// Secret's REPLACE-ME becomes in a real deployment.
const operatorSecret = "0f3a9c5e7b1d4f2a8c6e0b9d3f5a7c1e"

// operatorHost stands for the operator's own address: what a shipped
// placeholder host (config.PlaceholderHost: the prod overlay's
// channels.flashsale.example.com) becomes in a real deployment.
func operatorHost(v string) string { return strings.ReplaceAll(v, "example.com", "operator.net") }

// secretValue is the value of key in Secret name as the pods get it: the
// overlay's own Secret when it renders one (the dev overlay generates
// them), else the operator's, which secrets.example shows with
// REPLACE-ME where the operator's value goes; shipped is the value as
// this repository prints it. ok is false when neither has the key.
func secretValue(tb testing.TB, objs []k8sObject, name, key string) (value, shipped string, ok bool) {
	tb.Helper()
	if sec, found := find(objs, "Secret", name); found {
		if v, ok := sec.StringData[key]; ok {
			return v, v, true
		}
		enc, ok := sec.Data[key]
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			tb.Fatalf("Secret %s: %s: %v", name, key, err)
		}
		return string(b), string(b), ok
	}
	sec, _ := find(MustExampleSecrets(tb), "Secret", name)
	v, ok := sec.StringData[key]
	return strings.ReplaceAll(v, "REPLACE-ME", operatorSecret), v, ok
}

// workloads are the Deployments and StatefulSets of the platform's
// namespace (the dev overlay runs Redis, Postgres and Kafka beside it).
func workloads(objs []k8sObject) []k8sObject {
	var out []k8sObject
	for _, o := range byKind(objs, "Deployment", "StatefulSet") {
		if o.Metadata.Namespace == k8sNamespace {
			out = append(out, o)
		}
	}
	return out
}

// mustParseManifest parses every document of one manifest file.
func mustParseManifest(tb testing.TB, file string, raw []byte) []k8sObject {
	tb.Helper()
	var out []k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var node yaml.Node
		if err := dec.Decode(&node); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			tb.Fatalf("%s: %v", file, err)
		}
		o := k8sObject{node: &node}
		if err := node.Decode(&o); err != nil {
			tb.Fatalf("%s: %v", file, err)
		}
		if o.Kind == "Service" {
			var svc struct {
				Spec struct {
					Selector map[string]string `yaml:"selector"`
				} `yaml:"spec"`
			}
			if err := node.Decode(&svc); err != nil {
				tb.Fatalf("%s: %v", file, err)
			}
			o.serviceSelector = svc.Spec.Selector
		}
		if o.Kind == "" || o.Metadata.Name == "" {
			tb.Fatalf("%s: a document without kind or name", file)
		}
		out = append(out, o)
	}
	return out
}

func byKind(objs []k8sObject, kinds ...string) []k8sObject {
	var out []k8sObject
	for _, o := range objs {
		if slices.Contains(kinds, o.Kind) {
			out = append(out, o)
		}
	}
	return out
}

func find(objs []k8sObject, kind, name string) (k8sObject, bool) {
	for _, o := range objs {
		if o.Kind == kind && o.Metadata.Name == name {
			return o, true
		}
	}
	return k8sObject{}, false
}

// Every workload runs a pinned image with requests and limits, readiness
// on /readyz and liveness on /healthz at a port it declares, and labels
// its pods as its selector expects.
func TestK8sWorkloads(t *testing.T) {
	forEachOverlay(t, testK8sWorkloads)
}

func testK8sWorkloads(t *testing.T, overlay string, objs []k8sObject) {
	var names []string
	for _, w := range workloads(objs) {
		names = append(names, w.Metadata.Name)
		t.Run(w.Metadata.Name, func(t *testing.T) {
			if w.Metadata.Namespace != "flashsale" {
				t.Errorf("namespace %q, want flashsale", w.Metadata.Namespace)
			}
			for k, v := range w.Spec.Selector.MatchLabels {
				if w.Spec.Template.Metadata.Labels[k] != v {
					t.Errorf("selector %s=%s does not match the pod labels %v", k, v, w.Spec.Template.Metadata.Labels)
				}
			}
			if len(w.Spec.Template.Spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(w.Spec.Template.Spec.Containers))
			}
			c := w.Spec.Template.Spec.Containers[0]
			if !Pinned(c.Image) {
				t.Errorf("image %q is not pinned", c.Image)
			}
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
					t.Errorf("no %s request and limit", r)
				}
			}
			var ports []string
			for _, p := range c.Ports {
				ports = append(ports, p.Name)
			}
			ready, live := "/readyz", "/healthz"
			if b, ok := binaryOf(c.Name); ok && b.Probe != "/readyz" {
				ready, live = b.Probe, b.Probe // a service without health endpoints
			}
			for _, pr := range []struct {
				name, path string
				probe      *k8sProbe
			}{{"readiness", ready, c.ReadinessProbe}, {"liveness", live, c.LivenessProbe}} {
				if pr.probe == nil || pr.probe.HTTPGet == nil {
					t.Errorf("no %s probe", pr.name)
					continue
				}
				if pr.probe.HTTPGet.Path != pr.path || !slices.Contains(ports, pr.probe.HTTPGet.Port) {
					t.Errorf("%s probe %s on port %q, want %s on one of %v", pr.name, pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port, pr.path, ports)
				}
			}
		})
	}
	run, never := overlayBinaries(t, overlay)
	for _, b := range run {
		if !slices.Contains(names, b.Service) {
			t.Errorf("no workload runs %s", b.Service)
		}
	}
	// A stand-in runs outside development only where its own
	// configuration allows it there (the simulator as a stub that serves
	// pressure tests only), whatever the workload is called, and never
	// with the development switch turned on for it alone.
	for _, r := range mustK8sRuns(t, objs) {
		if !slices.ContainsFunc(never, func(b Binary) bool { return b.Service == r.bin.Service }) {
			continue
		}
		if config.FromMap(r.env).Dev() {
			t.Errorf("workload %s runs %s, a development stand-in, with %s in an overlay without it", r.workload, r.bin.Service, config.DevVar)
		} else if _, err := r.bin.Reads(r.env); err != nil {
			t.Errorf("workload %s runs %s, a development stand-in, without %s: %v", r.workload, r.bin.Service, config.DevVar, err)
		}
	}
}

// overlayBinaries are the binaries overlay must run (every one when its
// shared ConfigMap turns the development switch on, else every one but
// the development stand-ins) and those it need not (the stand-ins,
// outside development, which may run only as their configuration allows).
func overlayBinaries(t *testing.T, overlay string) (run, never []Binary) {
	t.Helper()
	cm, _ := find(MustManifests(t, overlay), "ConfigMap", "flashsale-common")
	dev := config.FromMap(cm.Data).Dev()
	for _, dir := range slices.Sorted(maps.Keys(Binaries)) {
		if b := Binaries[dir]; dev || !b.DevOnly {
			run = append(run, b)
		} else {
			never = append(never, b)
		}
	}
	return run, never
}

// Each workload's environment (its own variables, the shared ConfigMap
// and the secrets it references) is accepted by its binary's
// ConfigFromEnv; its own variables are all read; every variable of the
// shared ConfigMap is read by some binary; and every in-cluster address
// names a Service port.
func TestK8sEnvironmentMatchesTheConfiguration(t *testing.T) {
	forEachOverlay(t, testK8sEnvironmentMatchesTheConfiguration)
}

func testK8sEnvironmentMatchesTheConfiguration(t *testing.T, _ string, objs []k8sObject) {
	read := map[string]bool{}
	shared := map[string]bool{}
	for _, w := range workloads(objs) {
		c := w.Spec.Template.Spec.Containers[0]
		bin, ok := binaryOf(c.Name)
		if !ok {
			t.Errorf("%s: check.Binaries lists no such service", c.Name)
			continue
		}
		env, own := mustWorkloadEnv(t, objs, c)
		for _, ef := range c.EnvFrom {
			cm, _ := find(objs, "ConfigMap", ef.ConfigMapRef.Name)
			for k := range cm.Data {
				shared[k] = true
			}
		}
		names, err := bin.Reads(env)
		if err != nil {
			t.Errorf("%s refuses its configuration: %v", c.Name, err)
		}
		for _, n := range names {
			read[n] = true
		}
		for name := range own {
			if !slices.Contains(names, name) {
				t.Errorf("%s: %s is set but never read", c.Name, name)
			}
		}
		for name, value := range own {
			eps, err := Endpoints(name, value)
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
			}
			for _, ep := range eps {
				host, _, _ := strings.Cut(ep.Host, ".")
				if !strings.HasSuffix(ep.Host, ".svc.cluster.local") {
					continue // a managed service outside the cluster
				}
				svc, ok := find(objs, "Service", host)
				if !ok || !slices.ContainsFunc(svc.Spec.Ports, func(p k8sServicePort) bool { return p.Port == ep.Port }) {
					t.Errorf("%s: %s=%s: no Service %s with port %d", c.Name, name, value, host, ep.Port)
				}
			}
		}
	}
	for name := range shared {
		if !read[name] {
			t.Errorf("the shared ConfigMap sets %s, which no service reads", name)
		}
	}
}

// mustWorkloadEnv is the environment container c runs with: the
// ConfigMaps it takes in whole, then its own variables (secrets as
// secretValue resolves them, a pod ordinal read as 0), which own holds
// alone.
func mustWorkloadEnv(t *testing.T, objs []k8sObject, c k8sContainer) (env, own map[string]string) {
	t.Helper()
	env, own = map[string]string{}, map[string]string{}
	for _, ef := range c.EnvFrom {
		cm, ok := find(objs, "ConfigMap", ef.ConfigMapRef.Name)
		if !ok {
			t.Errorf("%s: ConfigMap %s does not exist", c.Name, ef.ConfigMapRef.Name)
			continue
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			var ok bool
			if v, _, ok = secretValue(t, objs, ref.Name, ref.Key); !ok || v == "" {
				t.Errorf("%s: %s: neither the overlay nor secrets.example has a secret %s with key %s", c.Name, e.Name, ref.Name, ref.Key)
			}
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			v = "0" // a pod's ordinal
		default:
			v = operatorHost(v)
		}
		env[e.Name], own[e.Name] = v, v
	}
	return env, own
}

// k8sRun is a workload of the manifests running one of Binaries, with
// the environment it gets and the settings its binary reads there.
type k8sRun struct {
	workload string
	bin      Binary
	env      map[string]string
	reads    []string
}

// mustK8sRuns returns the workloads that run a binary of Binaries (those
// that do not are TestK8sEnvironmentMatchesTheConfiguration's to report).
func mustK8sRuns(t *testing.T, objs []k8sObject) []k8sRun {
	t.Helper()
	var out []k8sRun
	for _, w := range workloads(objs) {
		c := w.Spec.Template.Spec.Containers[0]
		bin, ok := binaryOf(c.Name)
		if !ok {
			continue
		}
		env, _ := mustWorkloadEnv(t, objs, c)
		reads, _ := bin.Reads(env)
		out = append(out, k8sRun{workload: w.Metadata.Name, bin: bin, env: env, reads: reads})
	}
	return out
}

func binaryOf(service string) (Binary, bool) {
	for _, b := range Binaries {
		if b.Service == service {
			return b, true
		}
	}
	return Binary{}, false
}

// Services select a workload's pods and target ports its container
// declares; the gRPC services are headless, so clients balance per call.
func TestK8sServices(t *testing.T) {
	forEachOverlay(t, testK8sServices)
}

func testK8sServices(t *testing.T, _ string, objs []k8sObject) {
	for _, s := range byKind(objs, "Service") {
		if s.Metadata.Namespace != k8sNamespace {
			continue
		}
		var target *k8sObject
		for _, w := range workloads(objs) {
			match := len(s.serviceSelector) > 0
			for k, v := range s.serviceSelector {
				match = match && w.Spec.Template.Metadata.Labels[k] == v
			}
			if match {
				target = &w
			}
		}
		if target == nil {
			t.Errorf("service %s selects no workload", s.Metadata.Name)
			continue
		}
		c := target.Spec.Template.Spec.Containers[0]
		for _, p := range s.Spec.Ports {
			if !slices.ContainsFunc(c.Ports, func(cp struct {
				Name          string `yaml:"name"`
				ContainerPort int    `yaml:"containerPort"`
			}) bool {
				return cp.Name == p.TargetPort && cp.ContainerPort == p.Port
			}) {
				t.Errorf("service %s port %d targets %q, which %s does not declare on that port", s.Metadata.Name, p.Port, p.TargetPort, c.Name)
			}
		}
		if b, ok := binaryOf(s.Metadata.Name); ok && b.ServesGRPC && s.Spec.ClusterIP != "None" {
			t.Errorf("service %s serves gRPC but is not headless", s.Metadata.Name)
		}
	}
}

// In production the gateway and order scale horizontally; order never
// past the partitions of orders.placed.
func TestK8sAutoscalers(t *testing.T) {
	objs := MustManifests(t, "prod")
	hpas := byKind(objs, "HorizontalPodAutoscaler")
	for _, want := range []string{"gateway", "order"} {
		h, ok := find(hpas, "HorizontalPodAutoscaler", want)
		if !ok {
			t.Errorf("no autoscaler for %s", want)
			continue
		}
		if _, ok := find(objs, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name); !ok {
			t.Errorf("autoscaler %s targets %s %s, which does not exist", want, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
		if h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas <= h.Spec.MinReplicas {
			t.Errorf("autoscaler %s: %d..%d replicas, want at least 2 and room to grow", want, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
	}
	order, _ := find(objs, "StatefulSet", "order")
	h, _ := find(hpas, "HorizontalPodAutoscaler", "order")
	for _, e := range order.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "FLASHSALE_KAFKA_PARTITIONS" && e.Value != "" && h.Spec.MaxReplicas > atoi(t, e.Value) {
			t.Errorf("order scales to %d replicas but orders.placed has %s partitions", h.Spec.MaxReplicas, e.Value)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// In production Kubernetes runs against a managed Redis Cluster
// (DESIGN.md): the shared ConfigMap must ask for the cluster client and
// name its nodes in a form the services accept. (The dev overlay's one
// Redis is no cluster.)
func TestK8sRedisIsACluster(t *testing.T) {
	cm, ok := find(MustManifests(t, "prod"), "ConfigMap", "flashsale-common")
	if !ok {
		t.Fatal("no ConfigMap flashsale-common")
	}
	env := config.FromMap(cm.Data)
	cfg := redisclient.ConfigFromEnv(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	addrs, err := cfg.Addrs()
	if !cfg.Cluster || err != nil || len(addrs) == 0 {
		t.Fatalf("redis: cluster %v, nodes %v (%v); want the cluster client and at least one node", cfg.Cluster, addrs, err)
	}
}

// The dev overlay's Postgres has every database the generated
// flashsale-db Secret names, with its credentials: the image makes
// POSTGRES_DB, its init script the others.
func TestK8sDevPostgresHasTheDatabases(t *testing.T) {
	objs := MustManifests(t, "dev")
	pg, ok := find(objs, "Deployment", "postgres")
	if !ok {
		t.Fatal("the dev overlay runs no Postgres")
	}
	env := map[string]string{}
	for _, e := range pg.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	dbs := []string{env["POSTGRES_DB"]}
	initSQL, _ := find(objs, "ConfigMap", "postgres-init")
	for _, m := range regexp.MustCompile(`(?i)CREATE DATABASE (\w+);`).FindAllStringSubmatch(initSQL.Data["init.sql"], -1) {
		dbs = append(dbs, m[1])
	}
	var refs []string
	for _, w := range workloads(objs) {
		for _, e := range w.Spec.Template.Spec.Containers[0].Env {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.Name != "FLASHSALE_POSTGRES_URL" {
				continue
			}
			v, _, _ := secretValue(t, objs, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			refs = append(refs, w.Metadata.Name)
			u, err := url.Parse(v)
			if err != nil {
				t.Errorf("%s: %v", w.Metadata.Name, err)
				continue
			}
			pass, _ := u.User.Password()
			if db := strings.TrimPrefix(u.Path, "/"); !slices.Contains(dbs, db) {
				t.Errorf("%s uses database %q; the dev Postgres makes %v", w.Metadata.Name, db, dbs)
			}
			if u.User.Username() != env["POSTGRES_USER"] || pass != env["POSTGRES_PASSWORD"] {
				t.Errorf("%s connects as %s, the dev Postgres's user is %s with its password", w.Metadata.Name, u.User.Username(), env["POSTGRES_USER"])
			}
			if u.Host != "postgres.flashsale-dev.svc.cluster.local:5432" {
				t.Errorf("%s connects to %s, not the dev Postgres (Service postgres, namespace flashsale-dev, port 5432)", w.Metadata.Name, u.Host)
			}
		}
	}
	if len(refs) < 4 {
		t.Errorf("%d services read a Postgres URL (%v), want product, order, payment and marketing", len(refs), refs)
	}
}

// The runtime switches need a config centre on Kubernetes too: without
// one, a channel switched off through one payment replica stays on in the
// others and comes back at a restart, and the degrade level cannot be set
// at all. Every overlay gives the gateway and payment (the services that
// watch switches) a Consul address and keeps them out of its catalogue
// (Kubernetes Services do discovery); the dev overlay runs that Consul.
func TestK8sSwitchesHaveAConfigCentre(t *testing.T) {
	for _, overlay := range k8sOverlays {
		t.Run(overlay, func(t *testing.T) {
			objs := MustManifests(t, overlay)
			for _, name := range []string{"gateway", "payment"} {
				i := slices.IndexFunc(workloads(objs), func(w k8sObject) bool { return w.Metadata.Name == name })
				if i < 0 {
					t.Fatalf("no workload %s", name)
				}
				w := workloads(objs)[i]
				env := map[string]string{}
				c := w.Spec.Template.Spec.Containers[0]
				for _, ef := range c.EnvFrom {
					if cm, ok := find(objs, "ConfigMap", ef.ConfigMapRef.Name); ok {
						maps.Copy(env, cm.Data)
					}
				}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
				addr := env["FLASHSALE_CONSUL_ADDR"]
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					t.Errorf("%s: FLASHSALE_CONSUL_ADDR=%q: want a Consul host:port", name, addr)
					continue
				}
				if env["FLASHSALE_CONSUL_KV_ONLY"] != "true" {
					t.Errorf("%s: FLASHSALE_CONSUL_KV_ONLY=%q, want true (Kubernetes Services do discovery)", name, env["FLASHSALE_CONSUL_KV_ONLY"])
				}
				if overlay != "dev" {
					continue
				}
				svc, ns, _ := strings.Cut(strings.TrimSuffix(host, ".svc.cluster.local"), ".")
				s, ok := find(objs, "Service", svc)
				if !ok || s.Metadata.Namespace != ns || !slices.ContainsFunc(s.Spec.Ports, func(p k8sServicePort) bool { return strconv.Itoa(p.Port) == port }) {
					t.Errorf("%s: Consul at %s, which is no Service port of the dev overlay", name, addr)
				}
			}
		})
	}
}
