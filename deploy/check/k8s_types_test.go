package check

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// apiTypes knows the Kubernetes kinds the manifests may use; a kind it
// does not know fails the decoding, so a new kind is added here first.
var apiTypes = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme,
		networkingv1.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// decodeStrict decodes every document of a manifest file into its
// Kubernetes API type, refusing unknown and duplicate fields (what
// `kubectl apply --validate=strict` refuses), and kinds apiTypes does not
// know.
func decodeStrict(raw []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var out []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
			return nil, err
		}
		obj, err := apiTypes.New(tm.GroupVersionKind())
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
		}
		// encoding/json matches field names case-insensitively; the API
		// server's decoder (sigs.k8s.io/json) does not, nor does this one.
		j, err := sigsyaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tm.Kind, err)
		}
		strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err = errors.Join(append(strict, err)...); err != nil {
			return nil, fmt.Errorf("%s: %w", tm.Kind, err)
		}
		out = append(out, obj)
	}
}

var commentLine = regexp.MustCompile(`(?m)^\s*#.*$`)

func stripComments(doc []byte) []byte { return commentLine.ReplaceAll(doc, nil) }

// mustTypedManifests decodes every document an overlay renders
// strictly.
func mustTypedManifests(tb testing.TB, overlay string) []runtime.Object {
	tb.Helper()
	raw, err := Render(overlay)
	if err != nil {
		tb.Fatal(err)
	}
	objs, err := decodeStrict(raw)
	if err != nil {
		tb.Errorf("overlay %s: %v", overlay, err)
	}
	return objs
}

// TestManifestsDecodeStrictly: every object each overlay renders is a
// Kubernetes object with no field the API does not have (a misspelt
// runAsUser would otherwise be dropped in silence and the pod run
// without it), and kustomize renders the overlay at all.
func TestManifestsDecodeStrictly(t *testing.T) {
	for _, overlay := range k8sOverlays {
		if objs := mustTypedManifests(t, overlay); len(objs) == 0 {
			t.Errorf("overlay %s: no objects", overlay)
		}
	}
}

// The strict decoding refuses what a lenient parser lets through.
func TestDecodeStrictRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIp: None}\n",
		"misspelt nested": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      securityContext: {runAsUSer: 1}\n      containers: []\n",
		"duplicate field": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {a: b}\ndata: {c: d}\n",
		"unknown kind":    "apiVersion: v1\nkind: Servce\nmetadata: {name: a}\n",
		"wrong type":      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: three}\n",
	} {
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
	objs, err := decodeStrict([]byte("# a comment\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n"))
	if err != nil || len(objs) != 1 {
		t.Fatalf("a valid file: %d objects, %v", len(objs), err)
	}
}

// podTemplates returns the pod template of every workload of the
// platform's namespace, by name.
func podTemplates(objs []runtime.Object) map[string]corev1.PodTemplateSpec {
	out := map[string]corev1.PodTemplateSpec{}
	for _, o := range objs {
		if m, ok := o.(metav1.Object); !ok || m.GetNamespace() != k8sNamespace {
			continue
		}
		switch w := o.(type) {
		case *appsv1.Deployment:
			out["Deployment/"+w.Name] = w.Spec.Template
		case *appsv1.StatefulSet:
			out["StatefulSet/"+w.Name] = w.Spec.Template
		case *appsv1.DaemonSet:
			out["DaemonSet/"+w.Name] = w.Spec.Template
		}
	}
	return out
}

// imageUser returns the uid and gid of the last USER of the Dockerfile
// (the runtime stage's), which must be numeric.
func imageUser(dockerfile string) (uid, gid int64, err error) {
	var user string
	for _, line := range strings.Split(dockerfile, "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.EqualFold(f[0], "USER") {
			user = f[1]
		}
	}
	if user == "" {
		return 0, 0, errors.New("no USER: the image runs as root")
	}
	u, g, ok := strings.Cut(user, ":")
	uid, err = strconv.ParseInt(u, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("USER %s: the kubelet cannot verify a non-numeric user is not root", user)
	}
	gid = uid
	if ok {
		if gid, err = strconv.ParseInt(g, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("USER %s: non-numeric group", user)
		}
	}
	if uid == 0 {
		return 0, 0, fmt.Errorf("USER %s is root", user)
	}
	return uid, gid, nil
}

func TestImageUser(t *testing.T) {
	for _, tt := range []struct {
		file     string
		uid, gid int64
		ok       bool
	}{
		{"FROM a AS build\nUSER 0\nFROM b\nUSER 65532:65532\n", 65532, 65532, true},
		{"FROM b\nUSER 1000\n", 1000, 1000, true},
		{"FROM b\nUSER nonroot:nonroot\n", 0, 0, false},
		{"FROM b\nUSER 0:0\n", 0, 0, false},
		{"FROM b\n", 0, 0, false},
	} {
		uid, gid, err := imageUser(tt.file)
		if (err == nil) != tt.ok || uid != tt.uid || gid != tt.gid {
			t.Errorf("imageUser(%q) = %d, %d, %v", tt.file, uid, gid, err)
		}
	}
}

// TestPodsRunAsTheImageUserHardened holds the Dockerfile's USER against
// every pod: each container runs as that numeric, non-root uid and gid
// (the kubelet refuses runAsNonRoot with a named user), on a read-only
// root filesystem, with every capability dropped, no privilege
// escalation and the runtime's default seccomp profile.
func TestPodsRunAsTheImageUserHardened(t *testing.T) {
	root := mustRepoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, err := imageUser(string(raw))
	if err != nil {
		t.Errorf("Dockerfile: %v", err)
	}
	for _, overlay := range k8sOverlays {
		t.Run(overlay, func(t *testing.T) { testPodsRunAsHardened(t, overlay, uid, gid) })
	}
}

func testPodsRunAsHardened(t *testing.T, overlay string, uid, gid int64) {
	pods := podTemplates(mustTypedManifests(t, overlay))
	if run, _ := overlayBinaries(t, overlay); len(pods) < len(run) {
		t.Errorf("%d workloads, want one per binary (%d)", len(pods), len(run))
	}
	for name, pod := range pods {
		t.Run(name, func(t *testing.T) {
			psc := pod.Spec.SecurityContext
			if psc == nil {
				psc = &corev1.PodSecurityContext{}
			}
			for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
				csc := c.SecurityContext
				if csc == nil {
					csc = &corev1.SecurityContext{}
				}
				// A container's setting overrides the pod's.
				runAsUser, runAsGroup, nonRoot, seccomp := psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot, psc.SeccompProfile
				if csc.RunAsUser != nil {
					runAsUser = csc.RunAsUser
				}
				if csc.RunAsGroup != nil {
					runAsGroup = csc.RunAsGroup
				}
				if csc.RunAsNonRoot != nil {
					nonRoot = csc.RunAsNonRoot
				}
				if csc.SeccompProfile != nil {
					seccomp = csc.SeccompProfile
				}
				if runAsUser == nil || *runAsUser == 0 || *runAsUser != uid {
					t.Errorf("%s: runAsUser %v, want the image's non-root uid %d", c.Name, deref(runAsUser), uid)
				}
				if runAsGroup == nil || *runAsGroup == 0 || *runAsGroup != gid {
					t.Errorf("%s: runAsGroup %v, want the image's non-root gid %d", c.Name, deref(runAsGroup), gid)
				}
				if nonRoot == nil || !*nonRoot {
					t.Errorf("%s: runAsNonRoot is not true", c.Name)
				}
				if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: seccompProfile %v, want RuntimeDefault", c.Name, seccomp)
				}
				if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
					t.Errorf("%s: readOnlyRootFilesystem is not true", c.Name)
				}
				if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
					t.Errorf("%s: allowPrivilegeEscalation is not false", c.Name)
				}
				if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) > 0 {
					t.Errorf("%s: capabilities %v, want drop ALL and add none", c.Name, csc.Capabilities)
				}
				if csc.Privileged != nil && *csc.Privileged {
					t.Errorf("%s: privileged", c.Name)
				}
			}
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// TestMemoryLimitsAgree: every binary runs under a memory limit, the
// same in compose and Kubernetes, since each derives GOMEMLIMIT from it
// (serve.LimitMemory): a binary without one would run without a soft
// limit and its GC target of 400 would let a spike grow the heap until
// the kernel kills it.
func TestMemoryLimitsAgree(t *testing.T) {
	project := mustComposeProject(t, nil)
	for _, overlay := range k8sOverlays {
		pods := podTemplates(mustTypedManifests(t, overlay))
		run, _ := overlayBinaries(t, overlay)
		for _, b := range run {
			var k8s int64
			for _, kind := range []string{"Deployment/", "StatefulSet/"} {
				if pod, ok := pods[kind+b.Service]; ok && len(pod.Spec.Containers) > 0 {
					k8s = pod.Spec.Containers[0].Resources.Limits.Memory().Value()
				}
			}
			var compose int64
			if s, err := project.GetService(b.Service); err == nil && s.Deploy != nil && s.Deploy.Resources.Limits != nil {
				compose = int64(s.Deploy.Resources.Limits.MemoryBytes)
			}
			if k8s == 0 || compose != k8s {
				t.Errorf("%s: memory limit %d bytes in Kubernetes (%s), %d in compose; want the same, set in both", b.Service, k8s, overlay, compose)
			}
		}
	}
}
