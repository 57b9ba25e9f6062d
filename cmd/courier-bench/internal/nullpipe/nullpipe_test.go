package nullpipe

import (
	"testing"
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/pkg/testenv"
)

// The null pipeline on the emulators: every published message is stored in
// batched commits and reaches both "edges", with its latency measured and
// nothing lost.
func TestNullPipelineDeliversEverythingToBothEdges(t *testing.T) {
	project := testenv.Project(t)
	ps, fs := testenv.PubSub(t, project), testenv.Firestore(t, project)
	ctx := testenv.Context(t, 2*time.Minute)
	res, err := Run(ctx, ps, fs, project, procs.Meter{}, Config{
		Ladder: []float64{20, 40}, StepFor: time.Second, Drain: 30 * time.Second, PayloadSize: 200, Users: 10,
		BatchMax: 166, Linger: 2 * time.Millisecond, MaxInFlight: 100, P99Bound: 10 * time.Second,
	}, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 2 {
		t.Fatalf("%d steps, want 2", len(res.Steps))
	}
	for _, s := range res.Steps {
		n := int(s.Rate * s.Seconds)
		if s.Published != n || s.Delivered != n || s.Lost != 0 || s.Commits == 0 || s.Commits > n || s.Latency.P99 <= 0 {
			t.Errorf("step %+v: want %d published and delivered to both, in batched commits", s, n)
		}
	}
}
