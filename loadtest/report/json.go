package report

import (
	"encoding/json"
	"os"

	"github.com/flashsale/flashsale/loadtest/result"
)

// WriteJSON writes the result, checks included, as indented JSON.
func WriteJSON(path string, res *result.Replay) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
