// Package report holds the results of one benchmark run and renders them:
// results.json (everything), report.md (the tables, the ratios, the
// charts), and the summary printed at the end of a run.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/e2e"
	"github.com/courierhq/courier/cmd/courier-bench/internal/edge"
	"github.com/courierhq/courier/cmd/courier-bench/internal/gobench"
	"github.com/courierhq/courier/cmd/courier-bench/internal/nullpipe"
	"github.com/courierhq/courier/cmd/courier-bench/internal/rawlimits"
	"github.com/courierhq/courier/cmd/courier-bench/internal/worker"
)

// Results is one run.
type Results struct {
	Started  time.Time        `json:"started"`
	Seconds  float64          `json:"seconds"`
	Quick    bool             `json:"quick"`
	Command  string           `json:"command"`
	Machine  Machine          `json:"machine"`
	Commit   string           `json:"commit"`
	Baseline string           `json:"baseline,omitempty"`
	Raw      Raw              `json:"raw_limits"`
	Builds   []Build          `json:"builds"`
	Go       []gobench.Result `json:"go_benchmarks"`
	// Null is the null pipeline (the end-to-end ceiling), per round.
	Null []NullRound `json:"null_pipeline,omitempty"`
	// Peers is the well-known peer, per round, without and with history.
	Peers []PeerResult `json:"peers,omitempty"`
	// Errors are phases that failed (the run goes on with the others).
	Errors []string `json:"errors,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	MemoryGiB int    `json:"memory_gib"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	CPUModel  string `json:"cpu_model"`
	Emulators string `json:"emulators"`
	// Load averages (1 min) when the run started and ended: other work on
	// the machine shows here.
	LoadStart float64 `json:"load_start"`
	LoadEnd   float64 `json:"load_end"`
}

// Raw is phase 1.
type Raw struct {
	PubSub    []rawlimits.PubSubResult   `json:"pubsub"`
	Firestore *rawlimits.FirestoreResult `json:"firestore,omitempty"`
}

// Limit is one raw limit in msg/s.
type Limit struct {
	Name string
	MsgS float64
}

// Limits lists the raw throughput limits, for the ratio and the chart.
func (r Raw) Limits() []Limit {
	var out []Limit
	for _, p := range r.PubSub {
		out = append(out, Limit{"Pub/Sub " + p.Settings, p.Throughput})
	}
	if f := r.Firestore; f != nil {
		out = append(out, Limit{fmt.Sprintf("Firestore 1 commit/msg, %d writers", f.Writers), f.PerMessage})
		out = append(out, Limit{fmt.Sprintf("Firestore batched (%d docs/commit)", f.BatchDocs), f.Batched})
	}
	return out
}

// Slowest is the lowest raw limit (zero when none was measured).
func (r Raw) Slowest() Limit {
	var s Limit
	for _, l := range r.Limits() {
		if l.MsgS > 0 && (s.MsgS == 0 || l.MsgS < s.MsgS) {
			s = l
		}
	}
	return s
}

// HopsP99 is 2 Pub/Sub hops (Courier's settings) + 1 commit, at p99: the
// floor of the end-to-end p99.
func (r Raw) HopsP99() float64 {
	var ps float64
	for _, p := range r.PubSub {
		if p.Settings == "courier" {
			ps = p.Latency.P99
		}
	}
	if r.Firestore == nil || ps == 0 {
		return 0
	}
	return 2*ps + r.Firestore.PerMessageLatency.P99
}

// Build is phases 2–4 on one build.
type Build struct {
	Label string `json:"label"` // "new" or "old"
	Rev   string `json:"rev"`
	// Repeat is the round (0-based): each comparison runs several rounds,
	// alternating the builds' order.
	Repeat int                     `json:"repeat"`
	E2E    *e2e.Result             `json:"end_to_end,omitempty"`
	Worker []worker.ScenarioResult `json:"worker,omitempty"`
	Edge   *edge.Result            `json:"edge,omitempty"`
	Ratios Ratios                  `json:"ratios"`
}

// Ratios are the two the issue asks for.
type Ratios struct {
	// SustainedOverSlowest is the sustained end-to-end rate ÷ the slowest
	// raw limit.
	SustainedOverSlowest float64 `json:"sustained_over_slowest_raw_limit"`
	SlowestLimit         string  `json:"slowest_raw_limit"`
	// P99OverHops is the end-to-end p99 at the steady rate ÷ (2 raw Pub/Sub
	// hops + 1 raw commit) p99.
	P99OverHops float64 `json:"steady_p99_over_raw_hops_p99"`
}

// NullRound is one round of the null pipeline.
type NullRound struct {
	Repeat int `json:"repeat"`
	nullpipe.Result
}

// PeerResult is the optional well-known peer (see the peer phase).
type PeerResult struct {
	Name    string      `json:"name"`
	History bool        `json:"history"`
	Repeat  int         `json:"repeat"`
	Status  string      `json:"status"`
	Group   []edge.Step `json:"group,omitempty"`
}

// Compute fills the ratios of every build.
func (r *Results) Compute() {
	slow := r.Raw.Slowest()
	hops := r.Raw.HopsP99()
	for i := range r.Builds {
		b := &r.Builds[i]
		if b.E2E == nil {
			continue
		}
		b.Ratios.SlowestLimit = slow.Name
		if slow.MsgS > 0 {
			b.Ratios.SustainedOverSlowest = b.E2E.Sustained / slow.MsgS
		}
		if hops > 0 && b.E2E.SteadyP99 > 0 {
			b.Ratios.P99OverHops = b.E2E.SteadyP99 / hops
		}
	}
}

// Peer is the peer's first round without history (nil when none ran).
func (r *Results) Peer() *PeerResult {
	for i := range r.Peers {
		if !r.Peers[i].History && r.Peers[i].Repeat == 0 {
			return &r.Peers[i]
		}
	}
	return nil
}

// Build returns the build labelled label (its first round), or nil.
func (r *Results) Build(label string) *Build {
	for i := range r.Builds {
		if r.Builds[i].Label == label {
			return &r.Builds[i]
		}
	}
	return nil
}

// WriteJSON writes results.json.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
