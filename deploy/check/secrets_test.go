package check

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/platform/config"
	"github.com/flashsale/flashsale/services/payment/channel/wire"
)

// secretVars are the variables the binaries read as secrets
// (config.Env.Secret): a production process refuses to start without
// them or on a value printed in this repository.
var secretVars = []string{"FLASHSALE_JWT_SECRET", "FLASHSALE_CHANNELS"}

// TestShippedSecretsAreRefused: no secret this repository prints can run
// a production process. Each value the overlays (generated Secrets, or
// secrets.example's for what the operator creates), the compose file and
// the simulator ship for a secret variable is put in the environment of
// each binary that reads that variable, without the development switch,
// and must be refused. So an overlay may apply a Secret only when it
// turns that switch on (dev): any other, the prod overlay, applies none,
// which would write over the operator's.
func TestShippedSecretsAreRefused(t *testing.T) {
	shipped := map[string][]string{} // secret variable → values shipped for it
	for _, overlay := range k8sOverlays {
		objs := MustManifests(t, overlay)
		cm, _ := find(objs, "ConfigMap", "flashsale-common")
		dev := config.FromMap(cm.Data).Dev()
		for _, s := range byKind(objs, "Secret") {
			if !dev {
				t.Errorf("overlay %s applies Secret %s without %s: it would overwrite the operator's (keep it in secrets.example)", overlay, s.Metadata.Name, config.DevVar)
			}
		}
		for _, w := range workloads(objs) {
			for _, e := range w.Spec.Template.Spec.Containers[0].Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				if _, v, ok := secretValue(t, objs, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key); ok {
					shipped[e.Name] = append(shipped[e.Name], v)
				}
			}
		}
	}
	_, f := MustCompose(t)
	for _, s := range f.Services {
		for name, v := range s.Environment {
			if v = Interpolate(v); v != "" {
				shipped[name] = append(shipped[name], v)
			}
		}
	}
	var defaults []string
	for _, c := range wire.DefaultChannels {
		defaults = append(defaults, c.Name+"="+c.Secret)
	}
	shipped["FLASHSALE_CHANNELS"] = append(shipped["FLASHSALE_CHANNELS"], strings.Join(defaults, ","))

	for _, name := range secretVars {
		if len(shipped[name]) == 0 {
			t.Errorf("nothing ships a value for %s: is it still a secret the binaries read?", name)
		}
		readers := 0
		for dir, b := range Binaries {
			if read, _ := b.Reads(map[string]string{}); !slices.Contains(read, name) {
				continue
			}
			readers++
			for _, v := range shipped[name] {
				env := map[string]string{name: v}
				if _, err := b.Reads(env); err == nil || !strings.Contains(err.Error(), name) {
					t.Errorf("%s starts with %s=%q outside development (%v)", dir, name, v, err)
				}
				dev := maps.Clone(env)
				dev[config.DevVar] = "true"
				if _, err := b.Reads(dev); err != nil && strings.Contains(err.Error(), name) {
					t.Errorf("%s refuses %s=%q in development: %v", dir, name, v, err)
				}
			}
		}
		if readers == 0 {
			t.Errorf("no binary reads %s", name)
		}
	}
}

// TestShippedPlaceholderHostsAreRefused: an address this repository
// ships where the operator's own goes (the prod overlay's payment
// channels, config.PlaceholderHost) keeps its binary from starting
// outside development, as a shipped secret does: applied unedited, the
// service would look healthy and fail every payment.
func TestShippedPlaceholderHostsAreRefused(t *testing.T) {
	refused := 0
	for _, overlay := range k8sOverlays {
		objs := MustManifests(t, overlay)
		cm, _ := find(objs, "ConfigMap", "flashsale-common")
		if config.FromMap(cm.Data).Dev() {
			continue
		}
		for _, r := range mustK8sRuns(t, objs) {
			shipped := maps.Clone(r.env)
			for _, w := range workloads(objs) {
				if w.Metadata.Name != r.workload {
					continue
				}
				for _, e := range w.Spec.Template.Spec.Containers[0].Env {
					if e.ValueFrom == nil && e.Value != r.env[e.Name] {
						shipped[e.Name] = e.Value
					}
				}
			}
			if maps.Equal(shipped, r.env) {
				continue
			}
			if _, err := r.bin.Reads(shipped); err == nil || !strings.Contains(err.Error(), "placeholder host") {
				t.Errorf("%s: %s starts on the shipped placeholder address: %v", overlay, r.workload, err)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Error("no shipped placeholder address found: does the prod overlay still name the channels with one?")
	}
}
