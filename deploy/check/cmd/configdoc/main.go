// Command configdoc writes docs/configuration.md, the table of every
// FLASHSALE_* variable, from the code (`make config-doc`, run from the
// repository root).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/flashsale/flashsale/deploy/check"
)

func main() {
	doc, err := check.ConfigurationDoc(".")
	if err == nil {
		err = os.WriteFile(filepath.Join("docs", "configuration.md"), []byte(doc), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}
