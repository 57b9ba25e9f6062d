package main

import (
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/config/configtest"
)

var update = flag.Bool("update", false, "rewrite README.md's generated configuration table from settings.go")

func settingsWith(kv map[string]string) (settings, error) {
	return loadSettings(config.FromMap(kv))
}

// TestREADMEEnvironmentIsGenerated keeps the README's table of the
// worker's own variables exactly what settings.go's table renders, so a
// default, a bound or a meaning changed in code and not in the README
// fails here (-update writes it).
func TestREADMEEnvironmentIsGenerated(t *testing.T) {
	configtest.READMEIsGenerated(t, "README.md", markdownTable(), *update)
}

// TestTableDefaultsAreApplied: each default the table shows, set
// explicitly, changes nothing, so the README's (generated) default is the
// one loadSettings applies, not only the one a row prints.
func TestTableDefaultsAreApplied(t *testing.T) {
	configtest.DefaultsAreApplied(t, table, settingsWith, 20)
}

// TestEveryOwnVariableIsInTheTable: a variable the worker reads itself
// (not through pkg/topology, documented in the root README) is a row of
// settings.go's table, so it is in the generated README table.
func TestEveryOwnVariableIsInTheTable(t *testing.T) {
	read := configtest.ReadVariables(t, func(e *config.Env) error { _, err := loadSettings(e); return err }, nil)
	configtest.EveryVariableIsARow(t, table, read, "../../README.md")
}

// TestChartEnvMatchesTheTable: the chart's worker env offers only
// variables the worker reads, with the defaults its comments name, and
// every WORKER_ knob of the table plus chartKnobs; the others (addresses,
// shutdown) are the chart's own business.
func TestChartEnvMatchesTheTable(t *testing.T) {
	// The notify hook's switch, and the retention every service must share.
	chartKnobs := map[string]bool{"NOTIFY_ENABLED": true, "INBOX_RETENTION": true}
	const values, heading = "../../k8s/courier/values.yaml", "Worker settings;"
	configtest.ChartEnvMatches(t, values, heading, configtest.Defaults(table), 15)
	var chart, knobs []string
	for n := range configtest.ChartEnv(t, values, heading) {
		chart = append(chart, n)
	}
	for _, v := range table {
		if strings.HasPrefix(v.Name, "WORKER_") || chartKnobs[v.Name] {
			knobs = append(knobs, v.Name)
		}
	}
	slices.Sort(chart)
	slices.Sort(knobs)
	if !slices.Equal(chart, knobs) {
		t.Errorf("chart worker env %v, settings.go's knobs %v", chart, knobs)
	}
}

// TestSettingsRefuseContradictions: the cross-variable rules.
func TestSettingsRefuseContradictions(t *testing.T) {
	for _, kv := range []map[string]string{
		{"WORKER_ACK_EXTENSION_STEP": "11m"},
		{"WORKER_RETRY_INITIAL": "10s", "WORKER_RETRY_MAX": "5s"},
		{"WORKER_BATCH_MAX_BYTES": "10MiB"},
	} {
		if _, err := settingsWith(kv); err == nil {
			t.Errorf("%v accepted", kv)
		}
	}
}
