package model

// Figure is one number the model scales from, with where it comes from.
type Figure struct {
	Value  float64
	Unit   string
	Source string
}

// PerCore holds every measured figure the model uses: one table, each entry
// with the run and the table of docs/benchmarks.md it was read from. All of
// them were measured on one shared 2-core machine (AMD EPYC) against the
// Pub/Sub and Firestore emulators, with the load generator on the same
// cores: they are what this code does per core there, not on GKE against
// GCP. Update them from a new `make bench` run; nothing else changes.
type PerCore struct {
	// GatewayRequests: POST /v1/messages answered per gateway core-second
	// (authenticate, validate, publish, wait for the confirmation).
	GatewayRequests Figure
	// WorkerDocuments: Firestore documents committed per worker core-second
	// (the message and one inbox entry per recipient, publishing the
	// delivery included). Scaling by documents rather than messages makes a
	// 100-recipient message cost what its 101 writes cost.
	WorkerDocuments Figure
	// RoutingWorkerFactor: the worker's throughput with targeted routing
	// (one presence read per batch) relative to without.
	RoutingWorkerFactor Figure
	// EdgeSparseFrames: frames per edge core-second when every frame is its
	// own socket write (a session gets one frame every 100 ms or less often:
	// chat traffic).
	EdgeSparseFrames Figure
	// EdgeDenseFrames: frames per edge core-second when one delivery goes to
	// 1,000 local sessions at 80 deliveries/s (writes batched). Shown, not
	// used: chat traffic is sparse.
	EdgeDenseFrames Figure
	// EdgeOneToOne: deliveries per edge core-second when each delivery is for
	// one local session (receive, decode, route, write one frame, ack to
	// Pub/Sub), marginal cost between two rungs.
	EdgeOneToOne Figure
	// EdgeBaseCores: an edge pod's CPU with its subscription and 1,000 idle
	// sessions but no traffic (heartbeats, metrics, GC).
	EdgeBaseCores Figure
	// EdgeSessionRSS: resident memory per idle session at 10,000 sessions.
	EdgeSessionRSS Figure
	// EdgeBaseRSS: resident memory of an edge with no session.
	EdgeBaseRSS Figure
}

// Measured is the table the model uses (run of 2026-12-02 06:39 UTC, commit
// b972f49, `BENCH_BASELINE=6adb932 BENCH_PEER=1 make bench`, docs/benchmarks.md).
var Measured = PerCore{
	GatewayRequests: Figure{3636, "requests/s per core",
		"docs/benchmarks.md §2 end to end, new build, rung 1,600 msg/s: gateway 0.44 cores (1,600 ÷ 0.44)"},
	WorkerDocuments: Figure{16552, "documents/s per core",
		"docs/benchmarks.md §2 end to end, rung 1,600 msg/s of 2 recipients (3 documents each): worker 0.29 cores (4,800 ÷ 0.29)"},
	RoutingWorkerFactor: Figure{0.92, "× throughput",
		"docs/benchmarks.md, earlier measurements: BenchmarkPipeline routing=false vs routing=true, seven alternating rounds"},
	EdgeSparseFrames: Figure{52632, "frames/s per core",
		"docs/benchmarks.md §4 group fan-out, rung 10 deliveries/s to 1,000 sessions: 10,000 frames/s at 0.19 cores"},
	EdgeDenseFrames: Figure{116959, "frames/s per core",
		"docs/benchmarks.md §4 group fan-out, rung 80 deliveries/s to 1,000 sessions: 79,146 frames/s at 0.68 cores"},
	EdgeOneToOne: Figure{14286, "deliveries/s per core",
		"docs/benchmarks.md §4 one-to-one, rungs 1,000 → 2,000 deliveries/s: 0.10 → 0.17 cores (1,000 ÷ 0.07)"},
	EdgeBaseCores: Figure{0.036, "cores per pod",
		"docs/benchmarks.md §4 one-to-one, rung 200 deliveries/s: 0.05 cores, less 200 ÷ 14,286 for the deliveries"},
	EdgeSessionRSS: Figure{28.2, "KiB per session",
		"docs/benchmarks.md §4 idle sessions, 10,000 sessions: RSS per session (Go heap+stacks 19.3 KiB)"},
	EdgeBaseRSS: Figure{26.6, "MiB per pod",
		"docs/benchmarks.md §4 idle sessions, 10,000 sessions: RSS 302 MiB less 10,000 × 28.2 KiB"},
}

// Rows lists the table for printing, in a fixed order.
func (p PerCore) Rows() []NamedFigure {
	return []NamedFigure{
		{"gateway requests", p.GatewayRequests},
		{"worker documents", p.WorkerDocuments},
		{"worker with targeted routing", p.RoutingWorkerFactor},
		{"edge frames, sparse", p.EdgeSparseFrames},
		{"edge frames, dense (not used)", p.EdgeDenseFrames},
		{"edge one-to-one deliveries", p.EdgeOneToOne},
		{"edge idle pod", p.EdgeBaseCores},
		{"edge memory per idle session", p.EdgeSessionRSS},
		{"edge memory per pod", p.EdgeBaseRSS},
	}
}

// NamedFigure is a row of a printed table.
type NamedFigure struct {
	Name string
	Figure
}

// frameCoreSeconds is the CPU one sparse frame costs an edge.
func (p PerCore) frameCoreSeconds() float64 { return 1 / p.EdgeSparseFrames.Value }

// deliveryCoreSeconds is the CPU one received delivery costs an edge apart
// from its frames: the one-to-one cost less the one frame it wrote. A
// delivery a pod drops (no local recipient) is charged the same: receiving,
// decoding the attributes and acking it to Pub/Sub is most of that work.
func (p PerCore) deliveryCoreSeconds() float64 {
	return 1/p.EdgeOneToOne.Value - p.frameCoreSeconds()
}
