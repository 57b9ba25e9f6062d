package runner

import (
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/e2e"
	"github.com/courierhq/courier/cmd/courier-bench/internal/edge"
	"github.com/courierhq/courier/cmd/courier-bench/internal/gobench"
	"github.com/courierhq/courier/cmd/courier-bench/internal/rawlimits"
	"github.com/courierhq/courier/cmd/courier-bench/internal/worker"
)

// Plan sizes every phase.
type Plan struct {
	PubSub    rawlimits.PubSubConfig
	Firestore rawlimits.FirestoreConfig
	E2E       e2e.Config
	Worker    worker.Config
	Edge      edge.Config
	Go        gobench.Options
}

// payload is the message shape of every phase: a 200-byte JSON payload.
const payload = 200

// Full is `make bench`: chosen so that a run with a baseline (phases 2–4
// twice) stays under 15 minutes on a 2-core machine.
func Full(p99Bound time.Duration) Plan {
	return Plan{
		PubSub: rawlimits.PubSubConfig{Burst: 5000, SteadyRate: 200, SteadyFor: 5 * time.Second, Drain: 15 * time.Second, PayloadSize: payload},
		Firestore: rawlimits.FirestoreConfig{
			// The worker holds WORKER_MAX_OUTSTANDING_MESSAGES (100) at once.
			Writers: 100, For: 4 * time.Second, SteadyRate: 200, BatchDocs: 300, BatchWriters: 2, PayloadSize: payload, Users: 1000,
		},
		E2E: e2e.Config{
			Senders: 200, Recipients: 40, PayloadSize: payload,
			// Long enough for a fresh stack's first commits and the JVMs'
			// collections after the previous phase.
			Warmup: e2e.Step{Rate: 50, For: 8 * time.Second},
			Ladder: []float64{25, 50, 100, 200, 300, 400, 600, 800, 1200, 1600}, StepFor: 8 * time.Second,
			Drain: 15 * time.Second, BurstDrain: 60 * time.Second, P99Bound: p99Bound, Steady: 200,
			Burst: 2000, BurstSenders: 200, BurstClients: 32, MaxInFlight: 4000,
		},
		Worker: worker.Config{
			Scenarios: []worker.Scenario{
				{Name: "spread", Messages: 2000, Senders: 200, Recipients: 2, Users: 1000},
				{Name: "hot recipient", Messages: 600, Senders: 200, Recipients: 1, Users: 1},
				{Name: "wide", Messages: 200, Senders: 200, Recipients: 100, Users: 1000},
			},
			PayloadSize: payload, Cap: 20 * time.Second,
		},
		Edge: edge.Config{
			Idle: []int{1000, 10000}, Sessions: 1000,
			GroupLadder: []float64{5, 10, 20, 40, 60, 80}, OneLadder: []float64{200, 500, 1000, 2000},
			StepFor: 5 * time.Second, Drain: 5 * time.Second, P99Bound: p99Bound, PayloadSize: payload,
			DialParallel: 32, MaxInFlight: 4000, DeliverySenders: 200,
		},
		Go: gobench.Options{Count: 5, EmulatorCount: 2},
	}
}

// Quick is `make bench BENCH_QUICK=1` and the smoke run of `make test`:
// every phase, small. Its numbers only show that each phase runs and that
// every message is accounted for.
func Quick(p99Bound time.Duration) Plan {
	return Plan{
		PubSub:    rawlimits.PubSubConfig{Burst: 300, SteadyRate: 100, SteadyFor: time.Second, Drain: 20 * time.Second, PayloadSize: payload},
		Firestore: rawlimits.FirestoreConfig{Writers: 20, For: time.Second, SteadyRate: 50, BatchDocs: 300, BatchWriters: 1, PayloadSize: payload, Users: 100},
		E2E: e2e.Config{
			Senders: 20, Recipients: 10, PayloadSize: payload,
			Warmup: e2e.Step{Rate: 20, For: time.Second},
			Ladder: []float64{20, 50}, StepFor: 2 * time.Second,
			Drain: 30 * time.Second, BurstDrain: 30 * time.Second, P99Bound: p99Bound, Steady: 50,
			Burst: 100, BurstSenders: 20, BurstClients: 8, MaxInFlight: 1000,
		},
		Worker: worker.Config{
			Scenarios: []worker.Scenario{
				{Name: "spread", Messages: 60, Senders: 20, Recipients: 2, Users: 100},
				{Name: "hot recipient", Messages: 20, Senders: 10, Recipients: 1, Users: 1},
				{Name: "wide", Messages: 10, Senders: 5, Recipients: 10, Users: 100},
			},
			PayloadSize: payload, Cap: 60 * time.Second,
		},
		Edge: edge.Config{
			Idle: []int{50, 200}, Sessions: 50,
			GroupLadder: []float64{5, 10}, OneLadder: []float64{50, 100},
			StepFor: 2 * time.Second, Drain: 20 * time.Second, P99Bound: p99Bound, PayloadSize: payload,
			DialParallel: 16, MaxInFlight: 1000, DeliverySenders: 20,
		},
		Go: gobench.Options{Count: 1, Benchtime: "1x", EmulatorCount: 1},
	}
}

// Estimate is a generous guess of the run's length with builds builds
// measured in phases 2–4 (each ladder assumed to run to its end).
func (p Plan) Estimate(builds int, goBench bool) time.Duration {
	sec := func(d time.Duration) float64 { return d.Seconds() }
	burst := float64(p.PubSub.Burst) / 1500
	raw := 2*(sec(p.PubSub.SteadyFor)+burst+4) + 1 + burst + 3*sec(p.Firestore.For) + 8
	e := 10 + sec(p.E2E.Warmup.For) + 2 + float64(len(p.E2E.Ladder))*(sec(p.E2E.StepFor)+2) + float64(p.E2E.Burst)/150 + 5
	w := 0.0
	for _, s := range p.Worker.Scenarios {
		w += min(sec(p.Worker.Cap), float64(s.Messages*s.Recipients)/200) + 4
	}
	maxIdle := 0
	for _, n := range p.Edge.Idle {
		maxIdle = max(maxIdle, n)
	}
	ed := 15 + float64(maxIdle)/600 + float64(len(p.Edge.GroupLadder)+len(p.Edge.OneLadder))*(sec(p.Edge.StepFor)+2)
	total := 15 + raw + float64(builds)*(e+w+ed)
	if goBench {
		total += 10 + 8*float64(p.Go.Count) + 12*float64(p.Go.EmulatorCount)
	}
	return time.Duration(total) * time.Second
}
