// Package config reads settings from the environment with defaults and
// collects every invalid value, so a service fails at start with one clear
// message naming each bad variable.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads variables and remembers what could not be parsed.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
}

// FromEnv reads the process environment.
func FromEnv() *Env { return &Env{lookup: os.LookupEnv} }

// FromFunc reads variables through lookup (os.LookupEnv's signature);
// tests use it to see which variables a configuration reads.
func FromFunc(lookup func(string) (string, bool)) *Env { return &Env{lookup: lookup} }

// FromMap reads a fixed set of variables (for tests).
func FromMap(m map[string]string) *Env {
	return FromFunc(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

func (e *Env) raw(name string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// String returns the variable or def.
func (e *Env) String(name, def string) string {
	if v, ok := e.raw(name); ok {
		return v
	}
	return def
}

// Int returns the variable parsed as an integer, or def.
func (e *Env) Int(name string, def int64) int64 {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not an integer", name, v))
		return def
	}
	return n
}

// Duration returns the variable parsed by time.ParseDuration, or def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not a duration (e.g. 15m, 500ms)", name, v))
		return def
	}
	return d
}

// Bool returns the variable parsed by strconv.ParseBool, or def.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not a boolean", name, v))
		return def
	}
	return b
}

// List returns the comma-separated variable, or def.
func (e *Env) List(name string, def []string) []string {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Check records a failed validation of an already read value.
func (e *Env) Check(ok bool, format string, args ...any) {
	if !ok {
		e.errs = append(e.errs, fmt.Errorf(format, args...))
	}
}

// Err returns every problem found so far, or nil.
func (e *Env) Err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration: %w", errors.Join(e.errs...))
}
