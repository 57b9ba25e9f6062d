package main

import (
	"flag"
	"reflect"
	"strconv"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/config/configtest"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
	"github.com/courierhq/courier/services/api-gateway/internal/openapi"
)

// devAuth is the least environment loadSettings accepts.
var devAuth = map[string]string{"AUTH_HS256_SECRET": "docs-test-secret-0123456789"}

func settingsWith(t *testing.T, kv map[string]string) (settings, error) {
	t.Helper()
	m := map[string]string{}
	for k, v := range devAuth {
		m[k] = v
	}
	for k, v := range kv {
		m[k] = v
	}
	return loadSettings(config.FromMap(m))
}

// readVariables returns every variable loadSettings reads.
func readVariables(t *testing.T) map[string]bool {
	return configtest.ReadVariables(t, func(e *config.Env) error { _, err := loadSettings(e); return err }, devAuth)
}

// TestREADMEConfigurationMatchesSettings keeps the configuration tables
// (this README's, and the root README's shared one) true to loadSettings:
// every variable it reads is documented, and every documented default,
// set explicitly, changes nothing (so it is the code's default).
func TestREADMEConfigurationMatchesSettings(t *testing.T) {
	own := configtest.READMERows(t, "README.md", "## Environment")
	shared := configtest.READMERows(t, "../../README.md", "## Configuration")
	read := readVariables(t)
	for v := range read {
		if _, ok := own[v]; !ok {
			if _, ok := shared[v]; !ok {
				t.Errorf("%s is read by loadSettings but documented in neither README's configuration table", v)
			}
		}
	}
	defaults, err := settingsWith(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, table := range []map[string]string{own, shared} {
		for v, def := range table {
			if !read[v] || def == "" {
				continue
			}
			got, err := settingsWith(t, map[string]string{v: def})
			if err != nil {
				t.Errorf("%s=%s (the documented default) is refused: %v", v, def, err)
				continue
			}
			if !reflect.DeepEqual(got, defaults) {
				t.Errorf("%s: the README's default %q is not the code's", v, def)
			}
			checked++
		}
	}
	if checked < 15 {
		t.Errorf("only %d documented defaults checked: is the table still parsed?", checked)
	}
}

var update = flag.Bool("update", false, "rewrite README.md's generated configuration table from settings.go")

// TestREADMEEnvironmentIsGenerated keeps the README's table of the
// gateway's own variables exactly what settings.go's table renders, so a
// default, a bound or a meaning changed in code and not in the README
// fails here (-update writes it). TestREADMEConfigurationMatchesSettings
// then checks, by setting each documented default, that the table's
// defaults are the ones loadSettings applies.
func TestREADMEEnvironmentIsGenerated(t *testing.T) {
	configtest.READMEIsGenerated(t, "README.md", markdownTable(), *update)
}

// TestEveryOwnVariableIsInTheTable: a variable the gateway reads itself
// (not through pkg/topology or pkg/auth, documented in the root README)
// is a row of settings.go's table, so it is in the generated README table.
func TestEveryOwnVariableIsInTheTable(t *testing.T) {
	configtest.EveryVariableIsARow(t, rows(), readVariables(t), "../../README.md")
}

// TestChartEnvMatchesTheTable: every variable the chart's apiGateway.env
// offers is one the gateway reads, and a default the chart's comment
// names is the table's.
func TestChartEnvMatchesTheTable(t *testing.T) {
	configtest.ChartEnvMatches(t, "../../k8s/courier/values.yaml", "Gateway settings;", configtest.Defaults(rows()), 10)
}

// TestOpenAPILimitsMatchSettings keeps docs/openapi.yaml's limits true to
// the settings: `to` allows what MAX_RECIPIENTS can be set to at most, and
// the page size's bound and default are the inbox's.
func TestOpenAPILimitsMatchSettings(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Spec)
	if err != nil {
		t.Fatal(err)
	}
	to := doc.Components.Schemas["SendRequest"].Value.Properties["to"].Value
	if to.MaxItems == nil {
		t.Fatal("SendRequest.to has no maxItems")
	}
	maxItems := int(*to.MaxItems)
	if _, err := settingsWith(t, map[string]string{"MAX_RECIPIENTS": strconv.Itoa(maxItems)}); err != nil {
		t.Errorf("openapi maxItems %d: MAX_RECIPIENTS=%d is refused (%v)", maxItems, maxItems, err)
	}
	if _, err := settingsWith(t, map[string]string{"MAX_RECIPIENTS": strconv.Itoa(maxItems + 1)}); err == nil {
		t.Errorf("openapi maxItems %d, but MAX_RECIPIENTS=%d is accepted: the spec refuses sends a deployment allows", maxItems, maxItems+1)
	}
	if to.MinItems != 1 {
		t.Errorf("SendRequest.to minItems %d, want 1", to.MinItems)
	}
	s, err := settingsWith(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	var limit *openapi3.Schema
	for _, p := range doc.Paths.Find("/v1/messages").Get.Parameters {
		if p.Value.Name == "limit" {
			limit = p.Value.Schema.Value
		}
	}
	if limit == nil || limit.Max == nil {
		t.Fatal("GET /v1/messages has no bounded limit parameter")
	}
	if int(*limit.Max) != s.Limits.MaxPageSize || limit.Default != float64(s.Limits.DefaultPageSize) {
		t.Errorf("openapi limit: maximum %v default %v; the inbox: %d and %d", *limit.Max, limit.Default, s.Limits.MaxPageSize, s.Limits.DefaultPageSize)
	}
}

// TestPackagesDoNotFillIn: settings.go sets every limit, so the messages
// core's zero-value fallbacks (kept for tests' partial configs) never
// apply in the binary: the core keeps exactly what settings gave it.
func TestPackagesDoNotFillIn(t *testing.T) {
	s, err := settingsWith(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := messages.New(nil, nil, s.Limits).Limits(); got != s.Limits {
		t.Errorf("the core changed the configured limits: %+v, settings %+v", got, s.Limits)
	}
}
