package main

import (
	"flag"
	"reflect"
	"testing"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/config/configtest"
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
	return configtest.ReadVariables(t, func(e *config.Env) error { _, err := loadSettings(e); return err }, baseEnv)
}

var update = flag.Bool("update", false, "rewrite README.md's generated configuration table from settings.go")

// TestREADMEEnvironmentIsGenerated keeps the README's table of the edge's
// own variables exactly what settings.go's table renders, so a default, a
// bound or a meaning changed in code and not in the README (or in the
// README and not in code) fails here (-update writes it).
func TestREADMEEnvironmentIsGenerated(t *testing.T) {
	configtest.READMEIsGenerated(t, "README.md", markdownTable(), *update)
}

// TestTableDefaultsAreApplied: each default the table shows, set
// explicitly, changes nothing, so the README's (generated) default is the
// one loadSettings applies, not only the one a row prints.
func TestTableDefaultsAreApplied(t *testing.T) {
	configtest.DefaultsAreApplied(t, rows(), func(kv map[string]string) (settings, error) { return settingsWith(t, kv) }, 25)
}

// TestEveryOwnVariableIsInTheTable: a variable the edge reads itself (not
// through pkg/topology or pkg/auth, documented in the root README) is a row
// of settings.go's table, so it is in the generated README table.
func TestEveryOwnVariableIsInTheTable(t *testing.T) {
	configtest.EveryVariableIsARow(t, rows(), readVariables(t), "../../README.md")
}

// TestChartEnvMatchesTheTable: every variable the chart's wsEdge.env
// offers is one the edge reads, and a default the chart's comment names
// is the table's.
func TestChartEnvMatchesTheTable(t *testing.T) {
	configtest.ChartEnvMatches(t, "../../k8s/courier/values.yaml", "ws-edge settings;", configtest.Defaults(rows()), 10)
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
