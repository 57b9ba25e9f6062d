// Package configtest holds the checks every service runs on its settings
// table (pkg/config Setting): the README's configuration table is the one
// the table renders, each default the table shows is the one applied,
// every variable read is documented, and the chart's values offer only
// variables the service reads, with the defaults its comments name.
package configtest

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/courierhq/courier/pkg/config"
)

// Markers around a README's generated settings table.
const (
	TableBegin = "<!-- settings table: generated from settings.go; `go test . -run TestREADMEEnvironmentIsGenerated -update` rewrites it -->\n"
	TableEnd   = "<!-- end of settings table -->\n"
)

// READMEIsGenerated fails t unless the README at path holds exactly
// rendered between TableBegin and TableEnd; with update it rewrites it.
func READMEIsGenerated(t testing.TB, path, rendered string, update bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i, j := strings.Index(text, TableBegin), strings.Index(text, TableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no generated settings table (%q … %q)", path, TableBegin, TableEnd)
	}
	got := text[i+len(TableBegin) : j]
	if got == rendered {
		return
	}
	if update {
		if err := os.WriteFile(path, []byte(text[:i+len(TableBegin)]+rendered+text[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's settings table differs from settings.go; run `go test . -run TestREADMEEnvironmentIsGenerated -update`.\nwant:\n%s\ngot:\n%s", path, rendered, got)
}

// DefaultsAreApplied fails t unless each default the table shows, set
// explicitly, changes nothing (load reads settings from the given
// variables on top of the least environment the service accepts), so the
// README's default is the one applied, not only the one a row prints. It
// wants at least atLeast such rows.
func DefaultsAreApplied[S any](t testing.TB, table []config.Setting[S], load func(map[string]string) (S, error), atLeast int) {
	t.Helper()
	defaults, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, v := range table {
		def := v.Value()
		if def == "" {
			continue
		}
		got, err := load(map[string]string{v.Name: def})
		if err != nil {
			t.Errorf("%s=%s (the documented default) is refused: %v", v.Name, def, err)
			continue
		}
		if !reflect.DeepEqual(got, defaults) {
			t.Errorf("%s: the table's default %q is not the one loadSettings applies", v.Name, def)
		}
		checked++
	}
	if checked < atLeast {
		t.Errorf("only %d defaults checked: is the table still parsed?", checked)
	}
}

// ReadVariables returns every variable load reads from an environment
// holding only base.
func ReadVariables(t testing.TB, load func(*config.Env) error, base map[string]string) map[string]bool {
	t.Helper()
	read := map[string]bool{}
	e := &config.Env{Lookup: func(k string) (string, bool) {
		read[k] = true
		v, ok := base[k]
		return v, ok
	}}
	if err := load(e); err != nil {
		t.Fatal(err)
	}
	return read
}

// EveryVariableIsARow fails t unless every variable in read is a row of
// table or a shared variable (a row of the root README's configuration
// table, at rootREADME), and no row is twice in the table.
func EveryVariableIsARow[S any](t testing.TB, table []config.Setting[S], read map[string]bool, rootREADME string) {
	t.Helper()
	rows := map[string]bool{}
	for _, v := range table {
		if rows[v.Name] {
			t.Errorf("%s is twice in the table", v.Name)
		}
		rows[v.Name] = true
	}
	shared := READMERows(t, rootREADME, "## Configuration")
	for v := range read {
		if _, ok := shared[v]; !ok && !rows[v] {
			t.Errorf("%s is read by loadSettings but is neither a row of settings.go's table nor in the root README's configuration table", v)
		}
	}
}

var (
	tableRow = regexp.MustCompile(`^\|([^|]*)\|([^|]*)\|`)
	ticked   = regexp.MustCompile("`([^`]*)`")
)

// READMERows returns the variables of a README's configuration tables
// (the section starting with heading, up to the next "## ") and their
// documented defaults ("" when the default is not a single value: unset,
// empty, prose).
func READMERows(t testing.TB, path, heading string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, heading)
	if i < 0 {
		t.Fatalf("%s: no %q section", path, heading)
	}
	text = text[i+len(heading):]
	if j := strings.Index(text, "\n## "); j >= 0 {
		text = text[:j]
	}
	rows := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		m := tableRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var names, defs []string
		for _, n := range ticked.FindAllStringSubmatch(m[1], -1) {
			names = append(names, n[1])
		}
		for _, d := range ticked.FindAllStringSubmatch(m[2], -1) {
			defs = append(defs, d[1])
		}
		for k, n := range names {
			rows[n] = ""
			if len(defs) == len(names) {
				rows[n] = defs[k]
			}
		}
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no table rows under %q", path, heading)
	}
	return rows
}

// Defaults maps each row of table to its default as a value (Value).
func Defaults[S any](table []config.Setting[S]) map[string]string {
	out := make(map[string]string, len(table))
	for _, v := range table {
		out[v.Name] = v.Value()
	}
	return out
}

var (
	chartKey   = regexp.MustCompile(`^    ([A-Z_]+): ""$`)
	chartNamed = regexp.MustCompile(`default ([^\s),;:]+)`)
)

// ChartEnv returns the variables of one env block of the chart's values
// (values.yaml at path; the block follows the comment line starting with
// "  # "+heading, e.g. "ws-edge settings;"), each with the default its
// comment names ("" when it names none).
func ChartEnv(t testing.TB, path, heading string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n  # "+heading)
	if i < 0 {
		t.Fatalf("%s: no env block after %q", path, heading)
	}
	lines := strings.Split(text[i+1:], "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[1]) != "env:" {
		t.Fatalf("%s: %q is not followed by env:", path, heading)
	}
	out, comment := map[string]string{}, ""
	for _, line := range lines[2:] {
		if !strings.HasPrefix(line, "    ") {
			break
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			comment += line
			continue
		}
		m := chartKey.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: unexpected line in the env block after %q: %q", path, heading, line)
		}
		out[m[1]] = ""
		if d := chartNamed.FindStringSubmatch(comment); d != nil {
			out[m[1]] = d[1]
		}
		comment = ""
	}
	return out
}

// ChartEnvMatches fails t unless every variable the chart's env block
// offers (ChartEnv) is one of defaults (the service's variables and their
// defaults), and a default its comment names is the service's. It wants at
// least atLeast variables in the block.
func ChartEnvMatches(t testing.TB, path, heading string, defaults map[string]string, atLeast int) {
	t.Helper()
	chart := ChartEnv(t, path, heading)
	for name, named := range chart {
		def, ok := defaults[name]
		if !ok {
			t.Errorf("%s offers %s, which the service does not read from its settings table", path, name)
			continue
		}
		if named != "" && named != def {
			t.Errorf("%s: %s's comment says default %s, settings.go %q", path, name, named, def)
		}
	}
	if len(chart) < atLeast {
		t.Errorf("only %d chart variables seen after %q: is %s still parsed?", len(chart), heading, path)
	}
}
