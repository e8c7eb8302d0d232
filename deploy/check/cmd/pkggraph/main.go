// Command pkggraph writes docs/package-graph.md, the packages as boxes and
// their imports as arrows, from the code (`make package-graph`, run from
// the repository root).
package main

import (
	"fmt"
	"os"

	"github.com/flashsale/flashsale/deploy/check"
)

func main() {
	if err := check.WritePackageGraphDoc("."); err != nil {
		fmt.Fprintln(os.Stderr, "pkggraph:", err)
		os.Exit(1)
	}
}
