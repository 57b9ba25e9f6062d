package runner

import (
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/e2e"
	"github.com/courierhq/courier/cmd/courier-bench/internal/edge"
	"github.com/courierhq/courier/cmd/courier-bench/internal/gobench"
	"github.com/courierhq/courier/cmd/courier-bench/internal/nullpipe"
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
	// Null is the null pipeline (its ladder is the end-to-end pairs').
	Null nullpipe.Config
	// Repeats is how many rounds each comparison runs (builds alternating).
	Repeats int
}

// payload is the message shape of every phase: a 200-byte JSON payload.
const payload = 200

// Full is `make bench`: 30-second steps (what "sustained" means here),
// every comparison three rounds, ladders extended past their last rung
// until a rung breaks. With a baseline and the peer that is over an hour
// on a 2-core machine; Tune shortens it (docs/benchmarks.md says how the
// published run was shortened).
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
			Ladder: []float64{100, 200, 400, 800, 1200}, GroupLadder: []float64{25, 50, 100}, Extend: 2, StepFor: 30 * time.Second,
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
			GroupLadder: []float64{10, 20, 40, 60}, OneLadder: []float64{500, 1000, 2000}, Extend: 2,
			StepFor: 30 * time.Second, Drain: 10 * time.Second, P99Bound: p99Bound, PayloadSize: payload,
			DialParallel: 32, MaxInFlight: 4000, DeliverySenders: 200,
		},
		Null: nullpipe.Config{StepFor: 30 * time.Second, Drain: 15 * time.Second, PayloadSize: payload, Users: 40,
			BatchMax: 166, Linger: 2 * time.Millisecond, MaxInFlight: 4000, P99Bound: p99Bound},
		Go:      gobench.Options{Count: 5, EmulatorCount: 2},
		Repeats: 3,
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
			Ladder: []float64{20, 50}, GroupLadder: []float64{10}, StepFor: 2 * time.Second,
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
		Null: nullpipe.Config{StepFor: 2 * time.Second, Drain: 20 * time.Second, PayloadSize: payload, Users: 10,
			BatchMax: 166, Linger: 2 * time.Millisecond, MaxInFlight: 1000, P99Bound: p99Bound},
		Go:      gobench.Options{Count: 1, Benchtime: "1x", EmulatorCount: 1},
		Repeats: 1,
	}
}

// Estimate is a generous guess of the run's length with builds builds
// measured in phases 2–4 (each ladder assumed to run to its configured end,
// extension rungs not counted), and the peer when peer is set.
func (p Plan) Estimate(builds int, goBench, peer bool) time.Duration {
	sec := func(d time.Duration) float64 { return d.Seconds() }
	reps := float64(max(p.Repeats, 1))
	burst := float64(p.PubSub.Burst) / 1500
	raw := 2*(sec(p.PubSub.SteadyFor)+burst+4) + 1 + burst + 3*sec(p.Firestore.For) + 8
	// Every end-to-end rung runs twice (acks off and on).
	e := 15 + sec(p.E2E.Warmup.For) + 2 + 2*float64(len(p.E2E.Ladder)+len(p.E2E.GroupLadder))*(sec(p.E2E.StepFor)+2) + float64(p.E2E.Burst)/150 + 5
	null := 5 + float64(len(p.E2E.Ladder))*(sec(p.Null.StepFor)+2)
	w := 0.0
	for _, s := range p.Worker.Scenarios {
		w += min(sec(p.Worker.Cap), float64(s.Messages*s.Recipients)/200) + 4
	}
	maxIdle := 0
	for _, n := range p.Edge.Idle {
		maxIdle = max(maxIdle, n)
	}
	ed := 15 + float64(maxIdle)/600 + float64(len(p.Edge.GroupLadder)+len(p.Edge.OneLadder))*(sec(p.Edge.StepFor)+2)
	total := 15 + raw + reps*(float64(builds)*(e+ed)+null) + float64(builds)*w
	if peer {
		total += reps * 2 * (10 + float64(len(p.Edge.GroupLadder))*(sec(p.Edge.StepFor)+2))
	}
	if goBench {
		total += 10 + 8*float64(p.Go.Count) + 12*float64(p.Go.EmulatorCount)
	}
	return time.Duration(total) * time.Second
}

// Tune overrides parts of a plan (zero values keep the plan's): how the
// published run is shortened to fit the time it had.
type Tune struct {
	Repeats   int
	StepFor   time.Duration
	Extend    int  // -1 = none
	NoBurst   bool // skip the end-to-end burst
	E2ELadder []float64
	E2EGroup  []float64
	EdgeGroup []float64
	EdgeOne   []float64
	Idle      []int
}

// Apply returns p with t's overrides.
func (t Tune) Apply(p Plan) Plan {
	if t.Repeats > 0 {
		p.Repeats = t.Repeats
	}
	if t.StepFor > 0 {
		p.E2E.StepFor, p.Edge.StepFor, p.Null.StepFor = t.StepFor, t.StepFor, t.StepFor
	}
	if t.Extend != 0 {
		p.E2E.Extend, p.Edge.Extend = max(t.Extend, 0), max(t.Extend, 0)
	}
	if t.NoBurst {
		p.E2E.Burst = 0
	}
	if t.E2ELadder != nil {
		p.E2E.Ladder = t.E2ELadder
	}
	if t.E2EGroup != nil {
		p.E2E.GroupLadder = t.E2EGroup
	}
	if t.EdgeGroup != nil {
		p.Edge.GroupLadder = t.EdgeGroup
	}
	if t.EdgeOne != nil {
		p.Edge.OneLadder = t.EdgeOne
	}
	if t.Idle != nil {
		p.Edge.Idle = t.Idle
	}
	return p
}
