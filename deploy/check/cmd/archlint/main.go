// Command archlint fails when the code of one service imports another's
// (archrule): `make lint` runs it over every module,
//
//	go run ./deploy/check/cmd/archlint ./gateway/... ./services/order/... ...
//
// from the repository root.
package main

import (
	"fmt"
	"os"

	"github.com/OpenPeeDeeP/depguard/v2"
	"golang.org/x/tools/go/analysis/singlechecker"

	"github.com/flashsale/flashsale/deploy/check/archrule"
)

func main() {
	root, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	settings, err := archrule.Settings(root)
	if err != nil {
		fail(err)
	}
	analyzer, err := depguard.NewAnalyzer(&settings)
	if err != nil {
		fail(err)
	}
	singlechecker.Main(analyzer)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "archlint:", err)
	os.Exit(1)
}
