package metricnames

import (
	"strings"
	"testing"
)

const exposition = `# HELP courier_ws_edge_sessions Open WebSocket sessions.
# TYPE courier_ws_edge_sessions gauge
courier_ws_edge_sessions 3
# TYPE courier_ws_edge_delivery_latency_seconds histogram
courier_ws_edge_delivery_latency_seconds_bucket{le="1"} 2
courier_ws_edge_delivery_latency_seconds_bucket{le="+Inf"} 2
courier_ws_edge_delivery_latency_seconds_sum 0.5
courier_ws_edge_delivery_latency_seconds_count 2
# TYPE courier_api_gateway_http_requests_total counter
courier_api_gateway_http_requests_total{code="202",method="POST",route="/v1/messages"} 7
courier_api_gateway_http_requests_total{code="400",method="POST",route="/v1/messages{x=\"a,b\"}"} 1
# TYPE courier_pipeline_worker_messages_dead_lettered_total counter
courier_pipeline_worker_messages_dead_lettered_total{reason="invalid"} 0
`

func families(t *testing.T) Families {
	t.Helper()
	f, err := ParseExposition(strings.NewReader(exposition), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseExposition(t *testing.T) {
	f := families(t)
	if f["courier_ws_edge_delivery_latency_seconds"].Type != "histogram" || !f["courier_ws_edge_delivery_latency_seconds"].Labels["le"] {
		t.Fatalf("histogram not folded: %+v", f["courier_ws_edge_delivery_latency_seconds"])
	}
	if _, ok := f["courier_ws_edge_delivery_latency_seconds_bucket"]; ok {
		t.Fatal("a histogram's _bucket series became a family of its own")
	}
	l := f["courier_api_gateway_http_requests_total"].Labels
	if !l["code"] || !l["method"] || !l["route"] || len(l) != 3 {
		t.Fatalf("labels of a quoted value with commas and braces: %v", l)
	}
}

// TestWrongNamesFail is the proof that the check fails on the mistakes it
// exists for: each bad string must produce an error, each good one none.
func TestWrongNamesFail(t *testing.T) {
	f := families(t)
	bad := []struct{ name, text, want string }{
		{"renamed gauge (the HPA's old name)", "metricName: courier_edge_sessions", "courier_ws_edge_sessions"},
		{"wrong namespace", "`courier_worker_firestore_round_trips_total`", "no binary exports courier_worker_firestore_round_trips_total"},
		{"selector label the metric lacks", "`rate(courier_api_gateway_http_requests_total{status=\"503\"}[5m])`", `no label "status"`},
		{"grouping label nobody has", "`sum by (cause) (rate(courier_pipeline_worker_messages_dead_lettered_total[5m]))`", `grouping by "cause"`},
		{"_bucket of a gauge", "`courier_ws_edge_sessions_bucket`", "has no _bucket series"},
		{"prefix nothing has", "every `courier_ws_edge_gap_*` metric", "no metric starts with courier_ws_edge_gap_"},
		{"template action stripped, label still checked", "expr: sum(courier_ws_edge_sessions{ {{- $ns }},statuz=\"1\"})", `no label "statuz"`},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			errs := Check(ScanMarkdown("doc.md", c.text), f)
			if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), c.want) {
				t.Fatalf("%q: errors %q, want one containing %q", c.text, errs, c.want)
			}
		})
	}
	good := []string{
		"metricName: prometheus.googleapis.com|courier_ws_edge_sessions|gauge",
		"`histogram_quantile(0.99, sum by (le) (rate(courier_ws_edge_delivery_latency_seconds_bucket{le!=\"\"}[5m])))`",
		"`sum by (reason, pod) (increase(courier_pipeline_worker_messages_dead_lettered_total[10m]))`",
		"`sum(rate(courier_api_gateway_http_requests_total{route=\"/v1/messages\",code=~\"5..\"}[5m])) by (job)`",
		"the Pub/Sub attributes `courier_dead_letter_reason`, `courier_route_<pod>` and every `courier_ws_edge_*` metric",
		"`courier:slo_delivery_latency:ratio_rate5m`",
	}
	for _, g := range good {
		if errs := Check(ScanMarkdown("doc.md", g), f); len(errs) > 0 {
			t.Errorf("%q: unexpected errors %q", g, errs)
		}
	}
}

func TestScanYAMLJoinsMultiLineExpressions(t *testing.T) {
	rules := "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: |\n          sum by (reason) (\n            rate(courier_pipeline_worker_messages_dead_lettered_total[5m])\n          ) > 0\n        for: 5m\n      - record: r\n        expr: sum by (nope) (courier_ws_edge_sessions)\n"
	errs := Check(ScanYAML("rules.yaml", rules), families(t))
	if len(errs) != 1 || !strings.Contains(errs[0], `rules.yaml:11: grouping by "nope"`) {
		t.Fatalf("errors %q, want only the grouping by nope at line 11", errs)
	}
}

func TestDashboardExprs(t *testing.T) {
	d := `{"panels":[{"title":"Sessions","targets":[{"expr":"sum(courier_ws_edge_sessions)"}]},
	  {"type":"row","panels":[{"title":"Bad","targets":[{"expr":"sum(courier_ws_edge_session)"}]}]}]}`
	exprs, err := DashboardExprs("d.json", []byte(d))
	if err != nil || len(exprs) != 2 {
		t.Fatalf("exprs %v, err %v", exprs, err)
	}
	errs := Check(ScanExprs(exprs), families(t))
	if len(errs) != 1 || !strings.Contains(errs[0], `"Bad"`) {
		t.Fatalf("errors %q, want one for the panel Bad", errs)
	}
	if _, err := DashboardExprs("x.json", []byte("{")); err == nil {
		t.Fatal("invalid JSON accepted")
	}
}
