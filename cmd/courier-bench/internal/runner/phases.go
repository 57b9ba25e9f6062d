package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/edge"
	"github.com/courierhq/courier/cmd/courier-bench/internal/gobench"
	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/cmd/courier-bench/internal/report"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stack"
	"github.com/courierhq/courier/cmd/courier-bench/internal/worker"
)

// phase is one row of the bench: the word -phases selects it by, the line
// the run announces it with, and what it does. Phases run in table order;
// a failed phase is recorded (run.fail) and the next one runs.
type phase struct {
	name, title string
	run         func(*run)
}

// phases is the bench, in order: the raw emulator limits first (what the
// others are divided by), then each service measured on every build, the
// Go benchmarks last.
var phases = []phase{
	{"raw", "raw limits: Pub/Sub emulator publish → receive, Firestore emulator commits", (*run).raw},
	{"e2e", "end to end: open-loop ladders (pairs, group; acks off and on) and burst through gateway → worker → 2 edges, beside the null pipeline", (*run).endToEnd},
	{"worker", "worker alone: envelopes straight to the ingress topic, Firestore RPCs counted by a proxy", (*run).workerAlone},
	{"edge", "ws-edge alone (and the peer): idle sessions, group fan-out, one-to-one", (*run).edgeAlone},
	{"go", "Go benchmarks of the hot paths (medians)", (*run).goBenchmarks},
}

// PhaseNames are the words -phases takes, in the order the phases run.
func PhaseNames() []string {
	names := make([]string, len(phases))
	for i, p := range phases {
		names[i] = p.name
	}
	return names
}

// run is one bench run's state, shared by its phases.
type run struct {
	ctx    context.Context
	o      Options
	plan   Plan
	emu    *procs.Emulators
	res    *report.Results
	builds []stack.Build
	logs   string // the run's logs directory
	dir    string // the run's directory
	say    func(format string, args ...any)
}

// enabled reports whether p runs: selected by -phases, and for the Go
// benchmarks also asked for.
func (r *run) enabled(p phase) bool {
	return r.o.want(p.name) && (p.name != "go" || r.o.GoBench)
}

// fail records a failed phase; the run goes on.
func (r *run) fail(phase string, err error) {
	msg := fmt.Sprintf("%s: %v", phase, err)
	r.res.Errors = append(r.res.Errors, msg)
	r.say("   FAILED %s", msg)
}

func (r *run) progress(s string) { r.say("   %s", s) }

// entry is build i's results of repeat rep (created on first use).
func (r *run) entry(i, rep int) *report.Build {
	res := r.res
	for k := range res.Builds {
		if res.Builds[k].Label == r.builds[i].Label && res.Builds[k].Repeat == rep {
			return &res.Builds[k]
		}
	}
	res.Builds = append(res.Builds, report.Build{Label: r.builds[i].Label, Rev: r.builds[i].Rev, Repeat: rep})
	return &res.Builds[len(res.Builds)-1]
}

// eachBuild runs one phase on every build, reps times, taking turns
// (alternating which build goes first from one round to the next, see
// order), so every comparison is repeated on the same machine state; a
// failure is recorded and the run goes on.
func (r *run) eachBuild(k, reps int, name string, do func(i, rep int, b stack.Build) error) {
	for rep := range reps {
		// Every round starts on a fresh Firestore emulator, warmed: each
		// measurement's documents are deleted when it ends (Cleared), but
		// the emulator still keeps memory per deleted document
		// (procs.RenewFirestore), and a long run would exhaust its heap.
		renewStart := time.Now()
		if err := r.emu.RenewFirestore(r.ctx, func(ctx context.Context, project string) error { return warmFirestore(ctx, r.emu, project) }); err != nil {
			r.fail(fmt.Sprintf("%s (round %d)", name, rep+1), err)
			continue
		}
		r.say("   -- Firestore emulator restarted and warmed for round %d/%d (%s)", rep+1, reps, time.Since(renewStart).Round(100*time.Millisecond))
		for _, i := range order(len(r.builds), k+rep) {
			b := r.builds[i]
			r.say("   -- %s build (%s), round %d/%d", b.Label, b.Rev, rep+1, reps)
			if err := do(i, rep, b); err != nil {
				r.fail(fmt.Sprintf("%s (%s, round %d)", name, b.Label, rep+1), err)
			}
		}
	}
}

func (r *run) repeats() int { return max(r.plan.Repeats, 1) }

func (r *run) raw() {
	if err := rawPhase(r.ctx, r.emu, r.res, r.plan, r.progress); err != nil {
		r.fail("raw limits", err)
	}
}

func (r *run) endToEnd() {
	r.eachBuild(0, r.repeats(), "end to end", func(i, rep int, b stack.Build) error {
		// The null pipeline takes its turn in the same round: first in odd
		// rounds, last in even ones.
		ord := order(len(r.builds), rep)
		if rep%2 == 1 && i == ord[0] {
			nullRound(r.ctx, r.emu, r.plan, rep, r.res, r.say, r.progress, r.fail)
		}
		er, err := e2ePhase(r.ctx, b, r.emu, r.logs, r.plan.E2E, r.progress)
		r.entry(i, rep).E2E = er
		if rep%2 == 0 && i == ord[len(ord)-1] {
			nullRound(r.ctx, r.emu, r.plan, rep, r.res, r.say, r.progress, r.fail)
		}
		return err
	})
}

func (r *run) workerAlone() {
	r.eachBuild(1, 1, "worker alone", func(i, rep int, b stack.Build) error {
		wr, err := worker.Run(r.ctx, b, r.emu, secret, r.logs, r.plan.Worker, r.progress)
		r.entry(i, rep).Worker = wr
		return err
	})
}

func (r *run) edgeAlone() {
	repeats := r.repeats()
	r.eachBuild(2, repeats, "edge alone", func(i, rep int, b stack.Build) error {
		er, err := edge.Run(r.ctx, b, r.emu, secret, r.logs, r.plan.Edge, r.progress)
		r.entry(i, rep).Edge = &er
		if ord := order(len(r.builds), 2+rep); r.o.Peer == "" || i != ord[len(ord)-1] {
			return err
		}
		// The peer runs in the same round, after the last build, both ways
		// (without and with history), alternating which first.
		for _, history := range []bool{rep%2 == 1, rep%2 == 0} {
			r.say("   -- peer centrifugo, history %s, round %d/%d", map[bool]string{true: "on", false: "off"}[history], rep+1, repeats)
			steps, perr := edge.RunPeer(r.ctx, r.o.Peer, r.emu, r.logs, r.plan.Edge, history, r.progress)
			pr := report.PeerResult{Name: "centrifugo " + peerVersion(r.o.Repo), Group: steps, History: history, Repeat: rep,
				Status: fmt.Sprintf("%d WebSocket clients subscribed to one channel; each delivery is one Pub/Sub message whose data (the same 200-byte payload) centrifugo's Google Pub/Sub consumer publishes to that channel (publication data mode).", r.plan.Edge.Sessions)}
			if history {
				pr.Status += " History and recovery on (history_size 100,000, history_ttl 600 s, force_recovery): every publication carries its offset."
			}
			if perr != nil {
				pr.Status += " Failed: " + perr.Error()
				r.fail(fmt.Sprintf("peer (history %v, round %d)", history, rep+1), perr)
			}
			r.res.Peers = append(r.res.Peers, pr)
		}
		return err
	})
}

func (r *run) goBenchmarks() {
	goLog := logFile(r.dir, "go-bench.txt")
	results, err := gobench.Run(r.ctx, r.o.Repo, modules(r.o.Repo), r.plan.Go,
		append(r.emu.Env(), "COURIER_REQUIRE_EMULATORS=1", "GOOGLE_CLOUD_PROJECT=bench-go"), goLog)
	r.res.Go = results
	for _, g := range results {
		r.progress(fmt.Sprintf("%s %s: %s ns/op, %s B/op, %s allocs/op", shortPkg(g.Package), g.Name,
			fmtF(g.Medians["ns/op"]), fmtF(g.Medians["B/op"]), fmtF(g.Medians["allocs/op"])))
	}
	if err != nil {
		r.fail("Go benchmarks", err)
	}
}
