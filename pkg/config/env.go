package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Overrides applies environment variables over values loaded from YAML or
// defaults. A variable that is unset or empty leaves the value alone; a bad
// value is recorded and reported by Err together with every other one.
type Overrides struct {
	lookup func(string) (string, bool)
	errs   []error
}

// NewOverrides reads the process environment.
func NewOverrides() *Overrides { return &Overrides{lookup: os.LookupEnv} }

// NewOverridesFrom reads from a map instead of the environment (tests).
func NewOverridesFrom(env map[string]string) *Overrides {
	return &Overrides{lookup: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
}

func (o *Overrides) get(key string) (string, bool) {
	lookup := o.lookup
	if lookup == nil { // the zero value reads the environment
		lookup = os.LookupEnv
	}
	v, ok := lookup(key)
	return v, ok && v != ""
}

func (o *Overrides) fail(key, v, what string) {
	o.errs = append(o.errs, fmt.Errorf("%s: %q is not %s", key, v, what))
}

// String sets *dst from key.
func (o *Overrides) String(key string, dst *string) {
	if v, ok := o.get(key); ok {
		*dst = v
	}
}

// Int sets *dst from key; a non-integer is an error naming key.
func (o *Overrides) Int(key string, dst *int) {
	v, ok := o.get(key)
	if !ok {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		o.fail(key, v, "an integer")
		return
	}
	*dst = n
}

// Float sets *dst from key; a non-number is an error naming key.
func (o *Overrides) Float(key string, dst *float64) {
	v, ok := o.get(key)
	if !ok {
		return
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		o.fail(key, v, "a number")
		return
	}
	*dst = f
}

// Duration sets *dst from key (Go syntax, e.g. "1m30s").
func (o *Overrides) Duration(key string, dst *time.Duration) {
	v, ok := o.get(key)
	if !ok {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		o.fail(key, v, "a duration")
		return
	}
	*dst = d
}

// Bool sets *dst from key (strconv.ParseBool syntax).
func (o *Overrides) Bool(key string, dst *bool) {
	v, ok := o.get(key)
	if !ok {
		return
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		o.fail(key, v, "a boolean")
		return
	}
	*dst = b
}

// Err joins every bad value seen so far.
func (o *Overrides) Err() error { return errors.Join(o.errs...) }
