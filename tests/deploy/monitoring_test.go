package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// ruleGroup is one Prometheus rule group, as PrometheusRule and GMP Rules
// both carry them in spec.groups.
type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// flavours returns the rule groups of each Prometheus flavour a rendered
// set holds: "prometheus-operator" (PrometheusRule) and "gmp" (Rules and
// GlobalRules).
func flavours(t *testing.T, s Set) map[string][]ruleGroup {
	t.Helper()
	out := map[string][]ruleGroup{}
	for kind, flavour := range map[string]string{"PrometheusRule": "prometheus-operator", "Rules": "gmp", "GlobalRules": "gmp"} {
		for _, o := range s.OfKind(kind) {
			// Strictly: kubectl-validate has no schema for these CRDs offline, so
			// a misspelt field (a rule's "expression") would pass unseen.
			var spec struct {
				Groups []ruleGroup `json:"groups"`
			}
			b, err := json.Marshal(o.Raw["spec"])
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&spec); err != nil {
				t.Fatalf("%s: spec is not a list of Prometheus rule groups: %v", o, err)
			}
			if len(spec.Groups) == 0 {
				t.Fatalf("%s: no rule groups", o)
			}
			out[flavour] = append(out[flavour], spec.Groups...)
		}
	}
	return out
}

func alerts(groups []ruleGroup) map[string]rule {
	out := map[string]rule{}
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out[r.Alert] = r
			}
		}
	}
	return out
}

func renderedSets(t *testing.T) map[string]Set {
	t.Helper()
	dir := renderedDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rendered scenarios in %s (%v)", dir, err)
	}
	sets := map[string]Set{}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		sets[strings.TrimSuffix(filepath.Base(f), ".yaml")] = s
	}
	return sets
}

// requireMonitoring: scripts/helm-lint.sh renders a scenario with every
// monitoring object on and sets COURIER_REQUIRE_MONITORING=1, so these
// tests cannot pass by finding nothing.
func requireMonitoring(t *testing.T, found bool, what string) {
	t.Helper()
	if !found && os.Getenv("COURIER_REQUIRE_MONITORING") == "1" {
		t.Fatalf("no rendered scenario has %s (COURIER_REQUIRE_MONITORING=1)", what)
	}
}

// TestAlertsHaveRunbooks: every alert of both flavours has a severity, a
// summary and a runbook_url naming docs/runbooks/<alert>.md, which exists
// and says what a runbook must; both flavours have the same alerts; and
// every runbook belongs to an alert.
func TestAlertsHaveRunbooks(t *testing.T) {
	root := repoRoot()
	seen := map[string]bool{}
	for scenario, s := range renderedSets(t) {
		fl := flavours(t, s)
		if len(fl) == 2 {
			a, b := names(alerts(fl["prometheus-operator"])), names(alerts(fl["gmp"]))
			if strings.Join(a, ",") != strings.Join(b, ",") {
				t.Errorf("%s: the flavours differ:\n prometheus-operator %v\n gmp %v", scenario, a, b)
			}
		}
		for flavour, groups := range fl {
			for name, r := range alerts(groups) {
				seen[name] = true
				for _, msg := range checkAlert(root, name, r) {
					t.Errorf("%s %s: %s", scenario, flavour, msg)
				}
			}
		}
	}
	requireMonitoring(t, len(seen) > 0, "alerts")
	if len(seen) == 0 {
		return
	}
	books, _ := filepath.Glob(filepath.Join(root, "docs/runbooks/*.md"))
	for _, b := range books {
		if name := strings.TrimSuffix(filepath.Base(b), ".md"); name != "README" && !seen[name] {
			t.Errorf("docs/runbooks/%s.md belongs to no alert", name)
		}
	}
}

func names(m map[string]rule) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// checkAlert returns what an alert lacks.
func checkAlert(root, name string, r rule) []string {
	var errs []string
	if sev := r.Labels["severity"]; sev != "page" && sev != "ticket" {
		errs = append(errs, fmt.Sprintf("%s: severity %q, want page or ticket", name, sev))
	}
	if r.Annotations["summary"] == "" {
		errs = append(errs, name+": no summary annotation")
	}
	u, err := url.Parse(r.Annotations["runbook_url"])
	if err != nil || u.Scheme == "" || path.Base(u.Path) != name+".md" || path.Base(path.Dir(u.Path)) != "runbooks" {
		return append(errs, fmt.Sprintf("%s: runbook_url %q does not point to runbooks/%s.md", name, r.Annotations["runbook_url"], name))
	}
	book, err := os.ReadFile(filepath.Join(root, "docs/runbooks", name+".md"))
	if err != nil {
		return append(errs, fmt.Sprintf("%s: no runbook: %v", name, err))
	}
	for _, section := range []string{"## What it means", "## First three things to look at", "## Commands", "## Escalate"} {
		if !strings.Contains(string(book), section) {
			errs = append(errs, fmt.Sprintf("docs/runbooks/%s.md has no %q section", name, section))
		}
	}
	return errs
}

// TestDashboardConfigMaps: each dashboard ConfigMap carries the Grafana
// sidecar's label and holds one valid dashboard with a unique uid.
// (tests/e2e TestMetricNamesExist checks the metric names of its queries.)
func TestDashboardConfigMaps(t *testing.T) {
	found := false
	for scenario, s := range renderedSets(t) {
		uids := map[string]string{}
		for _, o := range s.OfKind("ConfigMap") {
			if o.Labels["app.kubernetes.io/component"] != "dashboards" {
				continue
			}
			found = true
			if o.Labels["grafana_dashboard"] != "1" {
				t.Errorf("%s %s: label grafana_dashboard=%q, want \"1\"", scenario, o, o.Labels["grafana_dashboard"])
			}
			data, _ := o.Raw["data"].(map[string]any)
			if len(data) != 1 {
				t.Errorf("%s %s: %d data keys, want one dashboard", scenario, o, len(data))
			}
			for key, v := range data {
				var d struct {
					UID    string `json:"uid"`
					Title  string `json:"title"`
					Panels []any  `json:"panels"`
				}
				if err := json.Unmarshal([]byte(fmt.Sprint(v)), &d); err != nil {
					t.Errorf("%s %s %s: not JSON: %v", scenario, o, key, err)
					continue
				}
				if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
					t.Errorf("%s %s %s: uid %q, title %q, %d panels", scenario, o, key, d.UID, d.Title, len(d.Panels))
				}
				if other, dup := uids[d.UID]; dup {
					t.Errorf("%s: uid %q in %s and %s", scenario, d.UID, other, o)
				}
				uids[d.UID] = o.Name
				if strings.Contains(fmt.Sprint(v), "COURIER_TRACE_SEARCH_URL") {
					t.Errorf("%s %s: the trace search URL placeholder was not replaced", scenario, o)
				}
			}
		}
	}
	requireMonitoring(t, found, "dashboard ConfigMaps")
}

// TestPromtoolRules runs `promtool check rules` and the promtool unit
// tests (testdata/promtool/rules.test.yaml) on the rules each flavour
// renders, and proves the tests bite: a broken threshold must fail them.
// COURIER_PROMTOOL names the binary (scripts/helm-lint.sh builds it).
func TestPromtoolRules(t *testing.T) {
	promtool := os.Getenv("COURIER_PROMTOOL")
	if promtool == "" {
		if os.Getenv("COURIER_REQUIRE_MONITORING") == "1" {
			t.Fatal("COURIER_PROMTOOL is not set: scripts/helm-lint.sh builds promtool and sets it")
		}
		t.Skip("COURIER_PROMTOOL is not set: scripts/helm-lint.sh builds promtool and runs this test")
	}
	tests, err := os.ReadFile("testdata/promtool/rules.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for scenario, s := range renderedSets(t) {
		for flavour, groups := range flavours(t, s) {
			found = true
			t.Run(scenario+"/"+flavour, func(t *testing.T) {
				checkCoverage(t, groups, tests)
				dir := t.TempDir()
				writeRules(t, dir, groups)
				if err := os.WriteFile(filepath.Join(dir, "rules.test.yaml"), tests, 0o644); err != nil {
					t.Fatal(err)
				}
				runPromtool(t, promtool, dir, "check", "rules", "rules.yaml")
				runPromtool(t, promtool, dir, "test", "rules", "rules.test.yaml")
				// A dead-letter alert that needs 1,000 dead letters is broken: the tests must say so.
				broken := mutate(groups, "CourierDeadLettersArriving", "> 0", "> 1000")
				writeRules(t, dir, broken)
				out, err := exec.Command(promtool, "test", "rules", "--run", "dead letters arriving", filepath.Join(dir, "rules.test.yaml")).CombinedOutput()
				if err == nil || !strings.Contains(string(out), "CourierDeadLettersArriving") {
					t.Errorf("promtool tests pass with a broken alert (err %v):\n%s", err, out)
				}
			})
		}
	}
	requireMonitoring(t, found, "rules")
}

// checkCoverage: every alert has a unit test where it fires and one where
// it stays quiet.
func checkCoverage(t *testing.T, groups []ruleGroup, tests []byte) {
	t.Helper()
	var file struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &file); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range file.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for name := range alerts(groups) {
		if !fires[name] || !quiet[name] {
			t.Errorf("%s: promtool tests where it fires: %v, where it stays quiet: %v (want both)", name, fires[name], quiet[name])
		}
	}
}

// writeRules writes groups as a rule file, without annotations: their
// text is not under test here (TestAlertsHaveRunbooks checks them), and
// promtool would otherwise compare every one.
func writeRules(t *testing.T, dir string, groups []ruleGroup) {
	t.Helper()
	var bare []ruleGroup
	for _, g := range groups {
		c := g
		c.Rules = nil
		for _, r := range g.Rules {
			r.Annotations = nil
			c.Rules = append(c.Rules, r)
		}
		bare = append(bare, c)
	}
	b, err := yaml.Marshal(map[string]any{"groups": bare})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mutate(groups []ruleGroup, alert, from, to string) []ruleGroup {
	var out []ruleGroup
	for _, g := range groups {
		c := g
		c.Rules = append([]rule(nil), g.Rules...)
		for i, r := range c.Rules {
			if r.Alert == alert {
				c.Rules[i].Expr = strings.Replace(r.Expr, from, to, 1)
			}
		}
		out = append(out, c)
	}
	return out
}

func runPromtool(t *testing.T, promtool, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
