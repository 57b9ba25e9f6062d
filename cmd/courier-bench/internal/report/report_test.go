package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/courierhq/courier/cmd/courier-bench/internal/e2e"
	"github.com/courierhq/courier/cmd/courier-bench/internal/rawlimits"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stats"
)

func sample() *Results {
	r := &Results{Raw: Raw{
		PubSub: []rawlimits.PubSubResult{
			{Settings: "defaults", Throughput: 2000, Latency: stats.Percentiles{P99: 60}},
			{Settings: "courier", Throughput: 3000, Latency: stats.Percentiles{P99: 50}},
		},
		Firestore: &rawlimits.FirestoreResult{Writers: 100, PerMessage: 1000, Batched: 1500, PerMessageLatency: stats.Percentiles{P99: 100}},
	}}
	r.Builds = []Build{
		{Label: "new", E2E: &e2e.Result{Sustained: 400, SteadyRate: 200, SteadyP99: 600}},
		{Label: "old", E2E: &e2e.Result{Sustained: 200, SteadyRate: 200, SteadyP99: 1200}},
	}
	return r
}

func TestRatios(t *testing.T) {
	r := sample()
	r.Compute()
	if s := r.Raw.Slowest(); s.MsgS != 1000 || !strings.HasPrefix(s.Name, "Firestore 1 commit/msg") {
		t.Fatalf("slowest raw limit %+v, want the per-message commit at 1000", s)
	}
	if h := r.Raw.HopsP99(); h != 200 { // 2 × 50 (Courier's Pub/Sub settings) + 100
		t.Fatalf("hops p99 %v, want 200", h)
	}
	n := r.Build("new").Ratios
	if n.SustainedOverSlowest != 0.4 || n.P99OverHops != 3 {
		t.Fatalf("new ratios %+v, want 0.4 and 3", n)
	}
}

func TestSummaryComparesBuilds(t *testing.T) {
	r := sample()
	r.Compute()
	var b bytes.Buffer
	r.Summary(&b)
	out := b.String()
	for _, want := range []string{"new/old", "highest pairs rung held", "2.00×", "0.50×"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	var md bytes.Buffer
	r.Markdown(&md, []string{"latency.png"})
	for _, want := range []string{"## 1. Raw limits", "## 2. End to end", "![latency](latency.png)", "Highest pairs rung held: 400 msg/s"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

// The comparison of matched rungs: medians over rounds with their spread,
// ratios of medians, saturated steps counted, every rung listed.
func TestComparisonsMedianSpreadAndSaturation(t *testing.T) {
	r := &Results{}
	step := func(rate, got, p99 float64, sat bool) e2e.StepResult {
		s := e2e.StepResult{Mode: "pairs", Rate: rate, Achieved: got}
		s.Latency.P99 = p99
		s.Usage.Saturated = sat
		return s
	}
	for round, v := range []struct{ n, o float64 }{{400, 200}, {380, 220}, {420, 180}} {
		r.Builds = append(r.Builds,
			Build{Label: "new", Repeat: round, E2E: &e2e.Result{Steps: []e2e.StepResult{step(400, v.n, 100, round == 2), step(800, 700, 300, false)}}},
			Build{Label: "old", Repeat: round, E2E: &e2e.Result{Steps: []e2e.StepResult{step(400, v.o, 200, false)}}})
	}
	var b bytes.Buffer
	r.Comparisons(&b)
	out := b.String()
	for _, want := range []string{"3 round(s)", "| pairs | off | 400 | 400 (380–420) | 100 (100–100) | 3/3 | 200 (180–220) |", "2.00×", "0.50×", "**1/6**",
		"| pairs | off | 800 | 700 (700–700) |"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparisons lack %q:\n%s", want, out)
		}
	}
}
