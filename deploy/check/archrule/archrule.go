// Package archrule is the one import rule between the platform's parts,
// as depguard (github.com/OpenPeeDeeP/depguard/v2) settings: services
// meet only through proto/ (their gRPC contracts) and platform/ (code
// every service shares), so the code of one service never imports
// another's (docs/architecture.md, "Walls"). cmd/archlint runs it over
// the repository in `make lint`.
//
// A second wall keeps the test and development harnesses
// (platform/testing/...: localstack, which starts real Redis, Postgres and
// Kafka, and consultest, a stand-in for Consul) out of the production
// code: the services, the gateway and the rest of platform/ may use them
// only from their tests.
//
// Left out on purpose: tests and the test harnesses (internal/servicetest),
// which start several services to test them together; and the commands
// that compose the whole platform (deploy/local, loadtest), which are not
// services and may use the harnesses.
package archrule

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/OpenPeeDeeP/depguard/v2"
)

// Module is the import path every package of the repository starts with.
const Module = "github.com/flashsale/flashsale/"

// Services are the parts that run as processes of their own, by
// directory: each may import proto/, platform/ and itself.
var Services = []string{
	"gateway", "services/product", "services/inventory", "services/order",
	"services/payment", "services/marketing", "services/channelsim",
}

// Contracts are the packages a service owns that another may import:
// the payment channels' wire protocol, which payment speaks and the
// channel simulator (the channels' stand-in) serves.
var Contracts = map[string][]string{
	"services/channelsim": {"services/payment/channel/wire"},
}

// Why is the message a refused import carries.
const Why = "services meet only through proto/ and platform/ (docs/architecture.md, \"Walls\")"

// Harnesses is the import path of the test and development harnesses.
const Harnesses = Module + "platform/testing/"

// WhyHarness is the message a production import of a harness carries.
const WhyHarness = "platform/testing/... is for tests and dev tools, not production code (docs/architecture.md, \"Walls\")"

// Production is the name of the list that walls the harnesses off.
const Production = "production"

// Settings returns the rule for the repository at root: one depguard
// list per service (and one for platform/ and proto/, which import no
// service), denying every other service's packages except its contracts.
// Packages are listed from the tree, so a new package of a service is
// denied to the others without a change here. A last list, Production,
// denies the harnesses to every non-test file of the services, platform/
// (outside platform/testing) and proto/.
func Settings(root string) (depguard.LinterSettings, error) {
	owned := map[string][]string{} // service → its packages (import paths)
	for _, s := range append(slices.Clone(Services), "loadtest", "deploy") {
		if _, err := os.Stat(filepath.Join(root, s)); errors.Is(err, fs.ErrNotExist) {
			continue // a tree without that part (the rule's tests)
		}
		err := filepath.WalkDir(filepath.Join(root, s), func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
			if hasGo(path) {
				rel, _ := filepath.Rel(root, path)
				owned[s] = append(owned[s], Module+filepath.ToSlash(rel)+"$")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	settings := depguard.LinterSettings{}
	deny := func(self string) map[string]string {
		out := map[string]string{}
		for other, pkgs := range owned {
			if other == self {
				continue
			}
			for _, p := range pkgs {
				if !slices.Contains(Contracts[self], strings.TrimSuffix(strings.TrimPrefix(p, Module), "$")) {
					out[p] = Why
				}
			}
		}
		return out
	}
	files := func(dir string) []string {
		return []string{"**/" + dir + "/**", "!$test", "!**/internal/servicetest/**"}
	}
	for _, s := range Services {
		settings[s] = &depguard.List{Files: files(s), Deny: deny(s)}
	}
	for _, shared := range []string{"platform", "proto"} {
		settings[shared] = &depguard.List{Files: files(shared), Deny: deny(shared)}
	}
	var production []string
	for _, dir := range append(slices.Clone(Services), "platform", "proto") {
		production = append(production, "**/"+dir+"/**")
	}
	settings[Production] = &depguard.List{
		Files: append(production, "!$test", "!**/internal/servicetest/**", "!**/platform/testing/**"),
		Deny:  map[string]string{Harnesses: WhyHarness},
	}
	return settings, nil
}

// hasGo reports whether dir holds a Go file other than a test.
func hasGo(dir string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			return true
		}
	}
	return false
}
