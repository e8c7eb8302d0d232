package scenario

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as "1m30s" in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// maxDuration bounds every duration a scenario writes: no replay runs for
// longer, and sums of a few such (a phase's start, ramp and hold) stay
// far inside what a time.Duration holds instead of wrapping round to a
// scenario that ends before it starts.
const maxDuration = 7 * 24 * time.Hour

// UnmarshalYAML parses a Go duration string of at most maxDuration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 30s or 1m30s", n.Line, n.Value)
	}
	if v > maxDuration {
		return fmt.Errorf("line %d: %q is longer than a week, longer than any replay", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Load reads and validates a scenario file. Unknown fields are
// errors, so a misspelt key never silently falls back to a default.
func Load(path string) (*Scenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates a scenario.
func Parse(raw []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	s.defaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Scenario) defaults() {
	if s.Users.FirstID == 0 {
		s.Users.FirstID = 100_000
	}
	for i := range s.Phases {
		p := &s.Phases[i]
		if p.Quantity == 0 {
			p.Quantity = 1
		}
		if p.Lines == [2]int{} {
			p.Lines = [2]int{1, 3}
		}
	}
	if s.Drain == nil {
		d := Duration(20 * time.Second)
		s.Drain = &d
	}
}
