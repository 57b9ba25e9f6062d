// Package config reads settings from environment variables. Every reader
// records a problem instead of failing at once, so a service reports every
// missing or malformed variable, by name, in one error at start.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads variables through Lookup (os.LookupEnv by default) and collects
// errors that name the variable at fault.
type Env struct {
	Lookup func(string) (string, bool)
	errs   []error
}

// FromOS returns an Env backed by the process environment.
func FromOS() *Env { return &Env{Lookup: os.LookupEnv} }

// FromMap returns an Env backed by m; handy in tests.
func FromMap(m map[string]string) *Env {
	return &Env{Lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

func (e *Env) get(name string) (string, bool) {
	v, ok := e.Lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (e *Env) fail(name, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

// String returns the variable or def when it is unset or empty.
func (e *Env) String(name, def string) string {
	if v, ok := e.get(name); ok {
		return v
	}
	return def
}

// Required returns the variable and records an error when it is unset.
func (e *Env) Required(name string) string {
	v, ok := e.get(name)
	if !ok {
		e.fail(name, "required but not set")
	}
	return v
}

// Int returns the variable as an int within [min, max], or def when unset.
func (e *Env) Int(name string, def, min, max int) int {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail(name, "%q is not an integer", v)
		return def
	}
	if n < min || n > max {
		e.fail(name, "%d is outside [%d, %d]", n, min, max)
		return def
	}
	return n
}

// Duration returns the variable as a time.Duration ("250ms", "5s"), at least
// min, or def when unset.
func (e *Env) Duration(name string, def, min time.Duration) time.Duration {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(name, "%q is not a duration (e.g. 500ms, 10s)", v)
		return def
	}
	if d < min {
		e.fail(name, "%s is below the minimum %s", d, min)
		return def
	}
	return d
}

// Bool returns the variable as a bool, or def when unset.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, "%q is not a boolean", v)
		return def
	}
	return b
}

// List returns a comma-separated variable as its trimmed, non-empty items.
func (e *Env) List(name string, def []string) []string {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Check records err against name when err is not nil; for validations that
// involve several variables.
func (e *Env) Check(name string, err error) {
	if err != nil {
		e.fail(name, "%v", err)
	}
}

// Err returns every recorded problem joined, or nil.
func (e *Env) Err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(e.errs...))
}
