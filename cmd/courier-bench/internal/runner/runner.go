// Package runner runs one benchmark: it starts private emulators, measures
// the raw limits, then the end-to-end system, the worker alone and the edge
// alone for each build (this tree's, and a baseline revision's when asked,
// interleaved phase by phase so both see the same machine), then the Go
// benchmarks, and writes results.json, report.md and the charts.
package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/baseline"
	"github.com/courierhq/courier/cmd/courier-bench/internal/charts"
	"github.com/courierhq/courier/cmd/courier-bench/internal/e2e"
	"github.com/courierhq/courier/cmd/courier-bench/internal/nullpipe"
	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/cmd/courier-bench/internal/rawlimits"
	"github.com/courierhq/courier/cmd/courier-bench/internal/report"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stack"
)

// Options of one run.
type Options struct {
	Repo     string // repository root
	BinDir   string // this tree's service binaries (make build)
	OutDir   string // .run/bench
	Quick    bool
	Baseline string // git revision measured side by side ("" = none)
	GoBench  bool
	// Peer is a centrifugo binary: when set, the group fan-out ladder also
	// runs on it (the well-known peer).
	Peer string
	// Tune shortens (or otherwise overrides) the plan.
	Tune     Tune
	Phases   map[string]bool // nil = all; keys: raw, e2e, worker, edge, go
	P99Bound time.Duration
	// Emulator ports; 0 picks free ones.
	PubSubPort, FirestorePort int
	Command                   string // as typed, for the report
	Out                       io.Writer
}

const secret = "bench-secret-0123456789abcdef"

func (o Options) want(phase string) bool { return o.Phases == nil || o.Phases[phase] }

// Run runs the benchmark and returns the run directory. The error is
// non-nil when any phase failed (its data is still written).
func Run(ctx context.Context, o Options) (string, error) {
	started := time.Now()
	dir := filepath.Join(o.OutDir, started.UTC().Format("20060102-150405"))
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return "", err
	}
	plan := Full(o.P99Bound)
	if o.Quick {
		plan = Quick(o.P99Bound)
	}
	plan = o.Tune.Apply(plan)
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }
	res := &report.Results{Started: started, Quick: o.Quick, Machine: machine(), Commit: gitHead(o.Repo)}
	res.Machine.LoadStart = loadAvg()
	if res.Machine.LoadStart > float64(res.Machine.CPUs) {
		say("== warning: load average %.1f on %d CPUs before the run: other work will share these numbers", res.Machine.LoadStart, res.Machine.CPUs)
	}

	builds := []stack.Build{{Label: "new", Rev: res.Commit,
		Gateway: filepath.Join(o.BinDir, "api-gateway"), Worker: filepath.Join(o.BinDir, "pipeline-worker"), Edge: filepath.Join(o.BinDir, "ws-edge")}}
	if o.Baseline != "" {
		say("== building the baseline %s (git worktree under %s)", o.Baseline, filepath.Join(o.OutDir, "baseline"))
		bl, err := baseline.Build(ctx, o.Repo, o.Baseline, filepath.Join(o.OutDir, "baseline"), logFile(logs, "baseline-build.log"))
		if err != nil {
			return dir, err
		}
		res.Baseline = o.Baseline + " (" + bl.Rev + ")"
		builds = append(builds, bl)
	}
	say("== courier-bench: %s mode, builds: %s; estimated total ≤ %s; results in %s", mode(o.Quick), labels(builds),
		plan.Estimate(len(builds), o.GoBench && o.want("go"), o.Peer != "" && o.want("edge")).Round(time.Minute), dir)

	say("== starting private emulators")
	emu, err := procs.StartEmulators(o.Repo, filepath.Join(dir, "emulators"), o.PubSubPort, o.FirestorePort)
	if err != nil {
		return dir, err
	}
	defer func() {
		if err := emu.Stop(); err != nil {
			say("stopping the emulators: %v", err)
		}
	}()
	// This process's clients are built from emu's addresses (emu.PubSub,
	// emu.Firestore) and child processes get emu.Env(): the process
	// environment is never changed.
	res.Machine.Emulators = emulatorVersions()

	r := &run{ctx: ctx, o: o, plan: plan, emu: emu, res: res, builds: builds, logs: logs, dir: dir, say: say}
	// Every build has a result entry, in build order, before any phase.
	for i := range builds {
		r.entry(i, 0)
	}
	var steps int
	for _, p := range phases {
		if r.enabled(p) {
			steps++
		}
	}
	step := 0
	for _, p := range phases {
		if !r.enabled(p) {
			continue
		}
		step++
		say("== [%d/%d] %s (%s elapsed)", step, steps, p.title, time.Since(started).Round(time.Second))
		p.run(r)
	}
	if o.Quick {
		smokeCheck(res, o, r.fail)
	}

	res.Seconds = time.Since(started).Seconds()
	res.Command = o.Command
	res.Machine.LoadEnd = loadAvg()
	if err := write(res, dir); err != nil {
		r.fail("report", err)
	}
	say("\n== summary (%s, %.0f s)", dir, res.Seconds)
	res.Summary(o.Out)
	if len(res.Errors) > 0 {
		return dir, fmt.Errorf("%d phase(s) failed: %s", len(res.Errors), strings.Join(res.Errors, "; "))
	}
	return dir, nil
}

// order is the order builds take turns in phase k: alternated from phase
// to phase, so neither build always runs on the emulators' warmer or
// colder side.
func order(n, k int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if k%2 == 1 {
		slices.Reverse(idx)
	}
	return idx
}

// write computes the ratios and writes results.json, the charts and
// report.md into dir.
func write(res *report.Results, dir string) error {
	res.Compute()
	names, err := charts.Write(res, dir)
	if err != nil {
		res.Errors = append(res.Errors, "charts: "+err.Error())
	}
	if err := res.WriteJSON(filepath.Join(dir, "results.json")); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		return err
	}
	defer f.Close()
	res.Markdown(f, names)
	return nil
}

// Render redraws report.md and the charts of a finished run from its
// results.json (after a change to the report's layout).
func Render(dir string, out io.Writer) error {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var res report.Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("decode %s/results.json: %w", dir, err)
	}
	if err := write(&res, dir); err != nil {
		return err
	}
	res.Summary(out)
	return nil
}

// smokeCheck fails the run when a phase that should have run left no data.
func smokeCheck(res *report.Results, o Options, fail func(string, error)) {
	if o.want("raw") && (len(res.Raw.PubSub) != 2 || res.Raw.Firestore == nil) {
		fail("smoke", fmt.Errorf("raw limits incomplete"))
	}
	for _, b := range res.Builds {
		if o.want("e2e") && (b.E2E == nil || len(b.E2E.Steps) < 2) {
			fail("smoke", fmt.Errorf("%s: end-to-end phase produced no ladder", b.Label))
		}
		if o.want("worker") && len(b.Worker) == 0 {
			fail("smoke", fmt.Errorf("%s: worker phase produced no scenario", b.Label))
		}
		if o.want("edge") && (b.Edge == nil || len(b.Edge.Idle) == 0 || len(b.Edge.Group) == 0 || len(b.Edge.OneToOne) == 0) {
			fail("smoke", fmt.Errorf("%s: edge phase incomplete", b.Label))
		}
	}
	if o.want("go") && o.GoBench && len(res.Go) == 0 {
		fail("smoke", fmt.Errorf("no Go benchmark ran"))
	}
}

func rawPhase(ctx context.Context, emu *procs.Emulators, res *report.Results, plan Plan, progress func(string)) error {
	project := fmt.Sprintf("bench-raw-%d", time.Now().UnixNano())
	ps, err := emu.PubSub(ctx, project)
	if err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	defer ps.Close()
	// Tens of thousands of documents left in the emulator slow down the
	// phase that follows (and so the build that happens to run first).
	defer emu.Cleared(project, progress)
	// Warm-up, not reported: the emulator's JVM is slow at first.
	warm := plan.PubSub
	warm.Burst, warm.SteadyFor = min(warm.Burst, 1000), time.Second
	if _, err := rawlimits.PubSub(ctx, ps, project, "warm-up", warm); err != nil {
		return err
	}
	for _, v := range []string{"defaults", "courier"} {
		r, err := rawlimits.PubSub(ctx, ps, project, v, plan.PubSub)
		if err != nil {
			return err
		}
		res.Raw.PubSub = append(res.Raw.PubSub, r)
		// Lost messages are accounted for (and shown), not a failure: the
		// emulator's own losses are part of its limits.
		progress(fmt.Sprintf("Pub/Sub %s: %.0f msg/s burst; one hop at %.0f msg/s p50 %.1f ms, p99 %.1f ms; lost %d",
			v, r.Throughput, r.SteadyRate, r.Latency.P50, r.Latency.P99, r.Lost))
		if r.Sent != r.Received+r.Lost {
			return fmt.Errorf("Pub/Sub %s: sent %d != received %d + lost %d", v, r.Sent, r.Received, r.Lost)
		}
	}
	fs, err := emu.Firestore(ctx, project)
	if err != nil {
		return fmt.Errorf("firestore client: %w", err)
	}
	defer fs.Close()
	f, err := rawlimits.Firestore(ctx, fs, plan.Firestore)
	res.Raw.Firestore = &f
	progress(fmt.Sprintf("Firestore: %.0f msg/s one commit each (%d writers), p99 %.1f ms at %.0f msg/s; %.0f msg/s batched (%d docs/commit)",
		f.PerMessage, f.Writers, f.PerMessageLatency.P99, f.SteadyRate, f.Batched, f.BatchDocs))
	return err // failed commits are counted in the report, not a failure
}

func e2ePhase(ctx context.Context, b stack.Build, emu *procs.Emulators, logs string, c e2e.Config, progress func(string)) (*e2e.Result, error) {
	project := fmt.Sprintf("bench-e2e-%s-%d", b.Label, time.Now().UnixNano())
	ps, err := emu.PubSub(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	defer ps.Close()
	if err := stack.Provision(ctx, ps, project); err != nil {
		return nil, err
	}
	defer emu.Cleared(project, progress)
	env := stack.Env{Emulators: emu, Project: project, Secret: secret, LogDir: logs}
	var started []*stack.Service
	defer func() {
		for i := len(started) - 1; i >= 0; i-- {
			started[i].Stop(20 * time.Second)
		}
	}()
	gw, err := stack.StartGateway(ctx, b, env)
	if err != nil {
		return nil, err
	}
	started = append(started, gw)
	wk, err := stack.StartWorker(ctx, b, env, "worker")
	if err != nil {
		return nil, err
	}
	started = append(started, wk)
	tg := e2e.Target{Gateway: gw.HTTP, Secret: secret, Pids: map[string]int{"gateway": gw.Pid(), "worker": wk.Pid()}, Meter: emu.Meter,
		ScrapeWorker: wk.Scrape}
	for i := range 2 {
		pod := fmt.Sprintf("bench-%d", i+1)
		ed, err := stack.StartEdge(ctx, b, env, pod, 1000)
		if err != nil {
			return nil, err
		}
		started = append(started, ed)
		tg.Edges = append(tg.Edges, ed.HTTP)
		tg.Scrape = append(tg.Scrape, ed.Scrape)
		tg.Pids["edge-"+fmt.Sprint(i+1)] = ed.Pid()
	}
	r, err := e2e.Run(ctx, tg, c, progress)
	return &r, err
}

// nullRound runs the null pipeline (the end-to-end ceiling without
// Courier's code) on the end-to-end ladder's rates, as round r.
func nullRound(ctx context.Context, emu *procs.Emulators, plan Plan, r int, res *report.Results, say func(string, ...any), progress func(string), fail func(string, error)) {
	say("   -- null pipeline (no Courier code), round %d", r+1)
	project := fmt.Sprintf("bench-null-%d", time.Now().UnixNano())
	defer emu.Cleared(project, progress)
	ps, err := emu.PubSub(ctx, project)
	if err != nil {
		fail("null pipeline", fmt.Errorf("pubsub client: %w", err))
		return
	}
	defer ps.Close()
	fs, err := emu.Firestore(ctx, project)
	if err != nil {
		fail("null pipeline", fmt.Errorf("firestore client: %w", err))
		return
	}
	defer fs.Close()
	c := plan.Null
	rates := slices.Clone(plan.E2E.Ladder)
	for k := 0; k < plan.E2E.Extend && len(rates) > 0; k++ {
		rates = append(rates, math.Round(rates[len(rates)-1]*1.5))
	}
	c.Ladder = rates
	nr, err := nullpipe.Run(ctx, ps, fs, project, emu.Meter, c, progress)
	res.Null = append(res.Null, report.NullRound{Repeat: r, Result: nr})
	if err != nil {
		fail(fmt.Sprintf("null pipeline (round %d)", r+1), err)
	}
}

// warmFirestore writes a few thousand small documents to project, so that
// a restarted emulator's JVM has loaded and compiled its write path before
// a measurement (the first writes after a start are slow).
func warmFirestore(ctx context.Context, emu *procs.Emulators, project string) error {
	fs, err := emu.Firestore(ctx, project)
	if err != nil {
		return fmt.Errorf("firestore client: %w", err)
	}
	defer fs.Close()
	bw := fs.BulkWriter(ctx)
	for i := range 3000 {
		ref := fs.Collection("warm").Doc(fmt.Sprintf("u%02d", i%50)).Collection("entries").Doc(fmt.Sprint(i))
		if _, err := bw.Set(ref, map[string]any{"seq": i, "payload": "warm"}); err != nil {
			return fmt.Errorf("warm-up write: %w", err)
		}
	}
	bw.End()
	_, err = fs.Collection("warm").Doc("u00").Collection("entries").Doc("0").Get(ctx)
	return err
}

func logFile(dir, name string) io.Writer {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return io.Discard
	}
	return f
}

func mode(quick bool) string {
	if quick {
		return "quick"
	}
	return "full"
}

func labels(bs []stack.Build) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.Label+"="+b.Rev)
	}
	return strings.Join(s, ", ")
}

func gitHead(repo string) string {
	out, err := exec.Command("git", "-C", repo, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	head := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		head += "-dirty"
	}
	return head
}

func modules(repo string) []string {
	out, err := exec.Command(filepath.Join(repo, "scripts/modules.sh")).Output()
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}

func machine() report.Machine {
	m := report.Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%d", &kb)
		m.MemoryGiB = (kb + (1 << 19)) >> 20
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return m
}

// emulatorVersions asks the Cloud SDK which emulator components it has.
func emulatorVersions() string {
	out, err := exec.Command("gcloud", "version").Output()
	if err != nil {
		return "emulator versions unknown"
	}
	var parts []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && (f[0] == "pubsub-emulator" || f[0] == "cloud-firestore-emulator") {
			parts = append(parts, f[0]+" "+f[1])
		}
	}
	if len(parts) == 0 {
		return "emulator versions unknown"
	}
	return strings.Join(parts, ", ")
}

// peerVersion is the centrifugo version tools/centrifugo pins (the binary
// built with go build does not know its own).
func peerVersion(repo string) string {
	b, err := os.ReadFile(filepath.Join(repo, "tools/centrifugo/go.mod"))
	if err != nil {
		return "(version unknown)"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "github.com/centrifugal/centrifugo/v6" {
			return f[1]
		}
	}
	return "(version unknown)"
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var v float64
	fmt.Sscanf(string(b), "%f", &v)
	return v
}

func shortPkg(p string) string {
	return strings.TrimPrefix(p, "github.com/courierhq/courier/")
}

func fmtF(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
