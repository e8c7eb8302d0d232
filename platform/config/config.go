// Package config reads settings from the environment with defaults and
// collects every invalid value, so a service fails at start with one clear
// message naming each bad variable.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads variables and remembers what could not be parsed.
type Env struct {
	lookup   func(string) (string, bool)
	errs     []error
	defaults map[string]string
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

// Defaults returns the default of every variable read so far, as text
// ("" for none); docs/configuration.md is written from it.
func (e *Env) Defaults() map[string]string { return e.defaults }

// remember records name's default the first time it is read.
func (e *Env) remember(name, def string) {
	if e.defaults == nil {
		e.defaults = map[string]string{}
	}
	if _, ok := e.defaults[name]; !ok {
		e.defaults[name] = def
	}
}

func (e *Env) raw(name string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// String returns the variable or def.
func (e *Env) String(name, def string) string {
	e.remember(name, def)
	if v, ok := e.raw(name); ok {
		return v
	}
	return def
}

// DevString returns the variable, or in development (DevVar) def: a
// default that only suits a development setup (the channel simulator's
// address), so outside development the variable is required.
func (e *Env) DevString(name, def string) string {
	e.remember(name, def)
	if v, ok := e.raw(name); ok {
		return v
	}
	if !e.Dev() {
		e.errs = append(e.errs, fmt.Errorf("%s is required (its default, %s, is for development: %s=true)", name, def, DevVar))
	}
	return def
}

// DatabaseURL is DevString for a database's URL, whose password is a
// secret: outside development the variable is required (the default, a
// local database without a password, suits development only), and a
// password that is a public placeholder (Public: the example manifests'
// REPLACE-ME) is refused, as Secret refuses one.
func (e *Env) DatabaseURL(name, def string) string {
	v := e.DevString(name, def)
	if e.Dev() {
		return v
	}
	if Public(databasePassword(v)) {
		e.errs = append(e.errs, fmt.Errorf("%s holds a public placeholder password: set the database's own", name))
	}
	return v
}

// databasePassword returns the password of a database URL
// (postgres://user:password@host/db, or ?password= in its query) or of a
// keyword/value DSN (password=... among its fields).
func databasePassword(v string) string {
	if u, err := url.Parse(v); err == nil && u.Scheme != "" {
		if p, ok := u.User.Password(); ok {
			return p
		}
		return u.Query().Get("password")
	}
	for _, field := range strings.Fields(v) {
		if p, ok := strings.CutPrefix(field, "password="); ok {
			return strings.Trim(p, "'")
		}
	}
	return ""
}

// Int returns the variable parsed as an integer, or def.
func (e *Env) Int(name string, def int64) int64 {
	e.remember(name, strconv.FormatInt(def, 10))
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
	e.remember(name, def.String())
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

// Positive returns the duration variable, or def, and records an error
// unless it is above zero: the read and the check of most of the
// platform's periods and timeouts, written once.
func (e *Env) Positive(name string, def time.Duration) time.Duration {
	d := e.Duration(name, def)
	e.Check(d > 0, "%s=%s: must be positive", name, d)
	return d
}

// IntIn returns the integer variable, or def, and records an error unless
// it lies in lo..hi. The range is checked on the int64 as read, before a
// caller narrows it (to an int32 pool size, a uint32 percentage), so a
// huge value cannot wrap into the range.
func (e *Env) IntIn(name string, def, lo, hi int64) int64 {
	n := e.Int(name, def)
	e.Check(n >= lo && n <= hi, "%s=%d: must be %d..%d", name, n, lo, hi)
	return n
}

// Bool returns the variable parsed by strconv.ParseBool, or def.
func (e *Env) Bool(name string, def bool) bool {
	e.remember(name, strconv.FormatBool(def))
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
	e.remember(name, strings.Join(def, ","))
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

// DevVar names the one switch for development conveniences: the
// gateway's dev token endpoint and the secrets printed in this repository
// (the channel simulator's defaults, compose's JWT secret). A production
// deployment leaves it unset, and then no process starts on a secret
// anybody can read.
const DevVar = "FLASHSALE_DEV"

// Dev reports whether the development switch (DevVar) is on.
func (e *Env) Dev() bool { return e.Bool(DevVar, false) }

// publicMarks are what every secret printed in this repository contains
// (the simulator's "alipay-dev-secret", compose's "...-change-me-...",
// the example manifests' "REPLACE-ME"), and what placeholders commonly
// contain.
var publicMarks = []string{"dev-secret", "change-me", "changeme", "replace-me", "replace-with", "placeholder", "example"}

// Public reports whether secret is one anybody can read: it contains one
// of the marks the repository's own secrets and common placeholders
// carry, in any case.
func Public(secret string) bool {
	s := strings.ToLower(secret)
	for _, m := range publicMarks {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// PlaceholderHost reports whether host is a name reserved for examples
// (RFC 2606, RFC 6761): example.com, example.net, example.org and their
// subdomains, and every name under .example, .invalid or .test. The
// shipped manifests name such a host where the operator's own address
// goes (the prod overlay's payment channels), so a process outside
// development refuses one, as it refuses a public secret.
func PlaceholderHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, d := range []string{"example.com", "example.net", "example.org", "example", "invalid", "test"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// SecretIf is Secret for a secret the process needs only when need is
// true (Consul's token, with Consul configured): the variable is read
// either way, and held to Secret's rules only then.
func (e *Env) SecretIf(need bool, name string) string {
	if need {
		return e.Secret(name)
	}
	e.remember(name, "")
	v, _ := e.raw(name)
	return v
}

// Secret returns the secret in the variable. Outside development (DevVar)
// it is required and must not be Public; in development it may be unset
// ("", the caller then uses its development default) or public.
func (e *Env) Secret(name string) string {
	e.remember(name, "")
	v, ok := e.raw(name)
	switch {
	case e.Dev():
	case !ok:
		e.errs = append(e.errs, fmt.Errorf("%s is required (%s=true allows the development defaults)", name, DevVar))
	case Public(v):
		e.errs = append(e.errs, fmt.Errorf("%s holds a public placeholder secret: set a secret of your own", name))
	}
	return v
}
