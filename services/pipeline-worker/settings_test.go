package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/config/configtest"
)

// settings.go is the one place a default lives; the README's environment
// table and the chart's worker env block follow it. Every variable read
// there has a README row whose default is the one loadSettings gives, and
// every WORKER_ variable (and NOTIFY_ENABLED) is a knob of the chart (empty there: the chart
// leaves the default to the binary; a default its comment names is the
// worker's) and nothing else is. (The worker's settings are not yet rows
// of a pkg/config table like the gateway's and the edge's; the README and
// chart checks are the shared ones, package configtest.)
func TestSettingsTableMatchesTheREADMEAndTheChart(t *testing.T) {
	src, err := os.ReadFile("settings.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`e\.(?:String|Int|Duration|Bool|List)\("([A-Z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		names = append(names, m[1])
	}
	names = append(names, "ADMIN_ADDR") // adminserver.Env
	s, err := loadSettings(config.FromMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{
		"HTTP_ADDR": s.HTTPAddr, "ADMIN_ADDR": s.AdminAddr, "SHUTDOWN_TIMEOUT": s.ShutdownTimeout.String(),
		"WORKER_MAX_OUTSTANDING_MESSAGES": fmt.Sprint(s.MaxOutstandingMessages), "WORKER_MAX_OUTSTANDING_BYTES": fmt.Sprint(s.MaxOutstandingBytes),
		"WORKER_PULL_CONCURRENCY": fmt.Sprint(s.PullConcurrency), "WORKER_PULL_TIMEOUT": s.PullTimeout.String(),
		"WORKER_ACK_EXTENSION_STEP": s.AckExtensionStep.String(), "WORKER_RETRY_INITIAL": s.Retry.Initial.String(),
		"WORKER_RETRY_MAX": s.Retry.Max.String(), "WORKER_RETRY_BUDGET": s.Retry.Budget.String(),
		"WORKER_ATTEMPT_TIMEOUT": s.AttemptTimeout.String(), "WORKER_MAX_ENVELOPE_BYTES": fmt.Sprint(s.Limits.MaxEnvelopeBytes),
		"WORKER_MAX_PAYLOAD_BYTES": fmt.Sprint(s.Limits.MaxPayloadBytes), "WORKER_MAX_RECIPIENTS": fmt.Sprint(s.Limits.MaxRecipients),
		"WORKER_PUBLISH_DELAY": s.PublishDelay.String(), "WORKER_TARGETED_ROUTING": fmt.Sprint(s.TargetedRouting),
		"WORKER_BATCH_MAX_MESSAGES": fmt.Sprint(s.BatchMaxMessages), "WORKER_BATCH_MAX_WRITES": fmt.Sprint(s.BatchMaxWrites),
		"WORKER_BATCH_MAX_BYTES": fmt.Sprint(s.BatchMaxBytes), "WORKER_BATCH_LINGER": s.BatchLinger.String(),
		"WORKER_HEAD_CACHE_SIZE": fmt.Sprint(s.HeadCacheSize),
		"NOTIFY_ENABLED":         fmt.Sprint(s.NotifyEnabled), "NOTIFY_QUEUE": fmt.Sprint(s.NotifyQueue),
	}
	documented := configtest.READMERows(t, "README.md", "## Environment")
	for _, n := range names {
		got, ok := documented[n]
		if !ok {
			t.Errorf("%s is read by settings.go but not in the README's environment table", n)
		}
		if want, ok2 := defaults[n]; ok && ok2 && got != want {
			t.Errorf("README: %s defaults to %q, settings.go to %q", n, got, want)
		}
	}
	// The chart offers only variables the worker reads, with the defaults
	// its comments name, and every WORKER_ knob.
	const values, heading = "../../k8s/courier/values.yaml", "Worker settings;"
	configtest.ChartEnvMatches(t, values, heading, defaults, 15)
	var chart, worker []string
	for n := range configtest.ChartEnv(t, values, heading) {
		chart = append(chart, n)
	}
	for _, n := range names {
		// NOTIFY_ENABLED is the chart's switch for the notify hook
		// (worker.notify.enabled), beside every WORKER_ knob.
		if strings.HasPrefix(n, "WORKER_") || n == "NOTIFY_ENABLED" {
			worker = append(worker, n)
		}
	}
	slices.Sort(chart)
	slices.Sort(worker)
	if !slices.Equal(chart, worker) {
		t.Errorf("chart worker env %v, settings.go %v", chart, worker)
	}
}
