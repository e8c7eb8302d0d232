package archrule_test

import (
	"path/filepath"
	"testing"

	"github.com/OpenPeeDeeP/depguard/v2"
	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/flashsale/flashsale/deploy/check/archrule"
)

// The rule refuses a service's import of another service, and of
// platform/ importing a service; it lets a service use a contract it is
// given and a test harness start other services. The "want" comments in
// testdata say which imports must be reported.
func TestArchruleRefusesCrossServiceImports(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), analyzer(t),
		archrule.Module+"services/order", archrule.Module+"services/order/internal/servicetest",
		archrule.Module+"services/channelsim", archrule.Module+"platform/clock")
}

// The harnesses under platform/testing/ are refused to the production code
// (a service's app, the rest of platform/) and allowed to its tests, to
// the services' test harnesses, to each other and to the dev tools.
func TestArchruleKeepsHarnessesOutOfProduction(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), analyzer(t),
		archrule.Module+"services/inventory/app", archrule.Module+"services/inventory/internal/servicetest",
		archrule.Module+"platform/serve", archrule.Module+"platform/testing/localstack",
		archrule.Module+"loadtest/cmd/demo")
}

// analyzer is the rule for the tree in testdata, as archlint makes it.
func analyzer(t *testing.T) *analysis.Analyzer {
	t.Helper()
	settings, err := archrule.Settings(filepath.Join(analysistest.TestData(), "src", "github.com", "flashsale", "flashsale"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := depguard.NewAnalyzer(&settings)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
