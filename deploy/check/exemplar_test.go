package check

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/platform/telemetry"
)

// A latency bucket's exemplar leads to its trace only if every link of
// the chain holds: the services attach telemetry.ExemplarTraceLabel
// (platform/telemetry, tested there), Prometheus stores exemplars, the
// Prometheus data source sends that label to the Jaeger data source, and
// the dashboard's latency panel asks for exemplars.
func TestExemplarsLinkLatencyToTraces(t *testing.T) {
	root, f := MustCompose(t)
	if cmd := f.Services["prometheus"].Args; !slices.Contains(cmd, "--enable-feature=exemplar-storage") {
		t.Errorf("compose's prometheus command %q does not enable exemplar-storage: exemplars are dropped at scrape", cmd)
	}

	var ds struct {
		Datasources []struct {
			UID      string `yaml:"uid"`
			Type     string `yaml:"type"`
			JSONData struct {
				Destinations []struct {
					Name          string `yaml:"name"`
					DatasourceUID string `yaml:"datasourceUid"`
				} `yaml:"exemplarTraceIdDestinations"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	mustYAML(t, &ds, filepath.Join(root, "deploy", "grafana", "provisioning", "datasources", "prometheus.yaml"))
	types := map[string]string{}
	for _, d := range ds.Datasources {
		types[d.UID] = d.Type
	}
	linked := false
	for _, d := range ds.Datasources {
		for _, dest := range d.JSONData.Destinations {
			if d.Type == "prometheus" && dest.Name == telemetry.ExemplarTraceLabel && types[dest.DatasourceUID] == "jaeger" {
				linked = true
			}
		}
	}
	if !linked {
		t.Errorf("no Prometheus data source sends exemplar label %q to a Jaeger data source", telemetry.ExemplarTraceLabel)
	}

	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "dashboards", "flashsale.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr     string `json:"expr"`
				Exemplar bool   `json:"exemplar"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, "_duration_seconds_bucket") && !tg.Exemplar {
				t.Errorf("latency query %q does not ask for exemplars", tg.Expr)
			}
		}
	}
}
