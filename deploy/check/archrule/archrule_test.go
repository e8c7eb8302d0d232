package archrule_test

import (
	"path/filepath"
	"testing"

	"github.com/OpenPeeDeeP/depguard/v2"
	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/flashsale/flashsale/deploy/check/archrule"
)

// The rule refuses a service's import of another service, and of
// platform/ importing a service; it lets a service use a contract it is
// given and a test harness start other services. The "want" comments in
// testdata say which imports must be reported.
func TestArchruleRefusesCrossServiceImports(t *testing.T) {
	testdata := analysistest.TestData()
	settings, err := archrule.Settings(filepath.Join(testdata, "src", "github.com", "flashsale", "flashsale"))
	if err != nil {
		t.Fatal(err)
	}
	analyzer, err := depguard.NewAnalyzer(&settings)
	if err != nil {
		t.Fatal(err)
	}
	analysistest.Run(t, testdata, analyzer,
		archrule.Module+"services/order", archrule.Module+"services/order/internal/servicetest",
		archrule.Module+"services/channelsim", archrule.Module+"platform/clock")
}
