package main

import (
	"flag"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/courierhq/courier/pkg/config"
)

// baseEnv is the least environment loadSettings accepts, with a fixed pod
// name so two loads compare equal on any host.
var baseEnv = map[string]string{"AUTH_HS256_SECRET": "docs-test-secret-0123456789", "POD_NAME": "docs-test"}

func settingsWith(t *testing.T, kv map[string]string) (settings, error) {
	t.Helper()
	m := map[string]string{}
	for k, v := range baseEnv {
		m[k] = v
	}
	for k, v := range kv {
		m[k] = v
	}
	return loadSettings(config.FromMap(m))
}

// readVariables returns every variable loadSettings reads.
func readVariables(t *testing.T) map[string]bool {
	t.Helper()
	read := map[string]bool{}
	e := &config.Env{Lookup: func(k string) (string, bool) {
		read[k] = true
		v, ok := baseEnv[k]
		return v, ok
	}}
	if _, err := loadSettings(e); err != nil {
		t.Fatal(err)
	}
	return read
}

// tableDefault is a row's default as a value to set ("" when the README
// shows no single value: unset, host name, prose).
func tableDefault(v setting) string {
	if m := regexp.MustCompile("^`([^`]*)`$").FindStringSubmatch(v.def); m != nil {
		return m[1]
	}
	return ""
}

var update = flag.Bool("update", false, "rewrite README.md's generated configuration table from settings.go")

const (
	tableBegin = "<!-- settings table: generated from settings.go; `go test . -run TestREADMEEnvironmentIsGenerated -update` rewrites it -->\n"
	tableEnd   = "<!-- end of settings table -->\n"
)

// TestREADMEEnvironmentIsGenerated keeps the README's table of the edge's
// own variables exactly what settings.go's table renders, so a default, a
// bound or a meaning changed in code and not in the README (or in the
// README and not in code) fails here (-update writes it).
func TestREADMEEnvironmentIsGenerated(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i, j := strings.Index(text, tableBegin), strings.Index(text, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no generated settings table (%q … %q)", tableBegin, tableEnd)
	}
	got, want := text[i+len(tableBegin):j], markdownTable()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile("README.md", []byte(text[:i+len(tableBegin)]+want+text[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's settings table differs from settings.go; run `go test . -run TestREADMEEnvironmentIsGenerated -update`.\nwant:\n%s\ngot:\n%s", want, got)
}

// TestTableDefaultsAreApplied: each default the table shows, set
// explicitly, changes nothing, so the README's (generated) default is the
// one loadSettings applies, not only the one a row prints.
func TestTableDefaultsAreApplied(t *testing.T) {
	defaults, err := settingsWith(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, v := range table {
		def := tableDefault(v)
		if def == "" {
			continue
		}
		got, err := settingsWith(t, map[string]string{v.name: def})
		if err != nil {
			t.Errorf("%s=%s (the documented default) is refused: %v", v.name, def, err)
			continue
		}
		if !reflect.DeepEqual(got, defaults) {
			t.Errorf("%s: the table's default %q is not the one loadSettings applies", v.name, def)
		}
		checked++
	}
	if checked < 25 {
		t.Errorf("only %d defaults checked: is the table still parsed?", checked)
	}
}

// TestEveryOwnVariableIsInTheTable: a variable the edge reads itself (not
// through pkg/topology or pkg/auth, documented in the root README) is a row
// of settings.go's table, so it is in the generated README table.
func TestEveryOwnVariableIsInTheTable(t *testing.T) {
	rows := map[string]bool{}
	for _, v := range table {
		if rows[v.name] {
			t.Errorf("%s is twice in the table", v.name)
		}
		rows[v.name] = true
	}
	root, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for v := range readVariables(t) {
		if !rows[v] && !strings.Contains(string(root), "`"+v+"`") {
			t.Errorf("%s is read by loadSettings but is neither a row of settings.go's table nor in the root README", v)
		}
	}
}

// TestChartEnvMatchesTheTable: every variable the chart's wsEdge.env
// offers is one the edge reads, and a default the chart's comment names
// is the table's.
func TestChartEnvMatchesTheTable(t *testing.T) {
	b, err := os.ReadFile("../../k8s/courier/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{}
	for _, v := range table {
		defaults[v.name] = tableDefault(v)
	}
	text := string(b)
	i := strings.Index(text, "\n  # ws-edge settings;")
	if i < 0 {
		t.Fatal("values.yaml: no wsEdge env block")
	}
	key := regexp.MustCompile(`^    ([A-Z_]+): ""$`)
	named := regexp.MustCompile(`default ([^\s),;:]+)`)
	comment, seen := "", 0
	for _, line := range strings.Split(text[i+1:], "\n")[2:] {
		if !strings.HasPrefix(line, "    ") {
			break
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			comment += line
			continue
		}
		m := key.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("values.yaml: unexpected line in wsEdge.env: %q", line)
		}
		seen++
		def, ok := defaults[m[1]]
		if !ok {
			t.Errorf("values.yaml offers %s, which is not in settings.go's table", m[1])
		}
		if d := named.FindStringSubmatch(comment); d != nil && d[1] != def {
			t.Errorf("values.yaml: %s's comment says default %s, settings.go %q", m[1], d[1], def)
		}
		comment = ""
	}
	if seen < 10 {
		t.Errorf("only %d chart variables seen: is values.yaml still parsed?", seen)
	}
}

// notSettings are the edge.Config fields no variable sets: constants their
// package owns (its zero-value fallback is their one default).
var notSettings = map[string]bool{"CloseConcurrency": true, "Session.MaxBadFrames": true, "Session.StoreTimeout": true}

// TestPackagesDoNotFillIn: settings.go sets every numeric knob of the
// edge's configuration, so the packages' zero-value fallbacks (edge.New,
// session.Options.WithDefaults, hub, sequencer, inboxreader, acks, fanout;
// kept for tests' partial configs) never apply in the binary: a row
// dropped from the table leaves its field zero and fails here.
func TestPackagesDoNotFillIn(t *testing.T) {
	s, err := settingsWith(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			f, name := v.Field(i), prefix+v.Type().Field(i).Name
			switch f.Kind() {
			case reflect.Struct:
				if name == "Session" {
					walk(name+".", f)
				}
			case reflect.Int, reflect.Int64, reflect.Float64:
				if notSettings[name] {
					continue
				}
				checked++
				if f.IsZero() {
					t.Errorf("edge.Config.%s is zero after loadSettings: its package would fill in a default of its own", name)
				}
			}
		}
	}
	walk("", reflect.ValueOf(s.Edge))
	if checked < 20 {
		t.Errorf("only %d fields checked", checked)
	}
	// And the session's own fallbacks change nothing but its constants.
	opts := s.Edge.Session.WithDefaults()
	opts.MaxBadFrames, opts.StoreTimeout = s.Edge.Session.MaxBadFrames, s.Edge.Session.StoreTimeout
	if opts != s.Edge.Session {
		t.Errorf("session.Options.WithDefaults changed configured options: %+v, settings %+v", opts, s.Edge.Session)
	}
}
