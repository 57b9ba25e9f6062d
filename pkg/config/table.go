package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Setting is one row of a service's settings table: its variable, its
// default as the README shows it, its bounds, what it means, and how it is
// read into the service's settings S. Rows are built with IntSetting,
// DurationSetting, StringSetting and BoolSetting, or as a keyed literal for
// a variable read its own way. A service's table (settings.go) is the
// only place its defaults live; its README's configuration table is
// generated from it (Markdown) and checked by the service's tests
// (package configtest).
type Setting[S any] struct {
	Name, Default, Bounds, Doc string
	Read                       func(e *Env, s *S)
}

// IntSetting is a row of an integer within [lo, hi].
func IntSetting[S any](name string, def, lo, hi int, doc string, set func(*S, int)) Setting[S] {
	return Setting[S]{name, "`" + strconv.Itoa(def) + "`", fmt.Sprintf("%d–%d", lo, hi), doc,
		func(e *Env, s *S) { set(s, e.Int(name, def, lo, hi)) }}
}

// DurationSetting is a row of a duration of at least lo.
func DurationSetting[S any](name string, def, lo time.Duration, doc string, field func(*S) *time.Duration) Setting[S] {
	return Setting[S]{name, "`" + ShortDuration(def) + "`", "≥ " + ShortDuration(lo), doc,
		func(e *Env, s *S) { *field(s) = e.Duration(name, def, lo) }}
}

// StringSetting is a row of a string; an empty default shows as "unset".
func StringSetting[S any](name, def, doc string, field func(*S) *string) Setting[S] {
	shown := "unset"
	if def != "" {
		shown = "`" + def + "`"
	}
	return Setting[S]{name, shown, "", doc, func(e *Env, s *S) { *field(s) = e.String(name, def) }}
}

// BoolSetting is a row of a boolean (true, false, 1, 0, …).
func BoolSetting[S any](name string, def bool, doc string, field func(*S) *bool) Setting[S] {
	return Setting[S]{name, "`" + strconv.FormatBool(def) + "`", "", doc, func(e *Env, s *S) { *field(s) = e.Bool(name, def) }}
}

// ShortDuration writes d as an operator would: 2m, not 2m0s.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ReadTable reads every row of table into s; e collects the errors.
func ReadTable[S any](e *Env, table []Setting[S], s *S) {
	for _, v := range table {
		v.Read(e, s)
	}
}

// Markdown renders table as a README's configuration table.
func Markdown[S any](table []Setting[S]) string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Bounds | Meaning |\n|---|---|---|---|\n")
	for _, v := range table {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Name, v.Default, v.Bounds, v.Doc)
	}
	return b.String()
}

var singleValue = regexp.MustCompile("^`([^`]*)`$")

// Value is the row's default as a value to set, or "" when the README
// shows no single value (unset, host name, prose).
func (v Setting[S]) Value() string {
	if m := singleValue.FindStringSubmatch(v.Default); m != nil {
		return m[1]
	}
	return ""
}
