// Command courier-bench is Courier's benchmark: the emulators' raw limits,
// the whole system end to end (open loop), the worker alone and the edge
// alone, optionally side by side with a baseline revision, then the Go
// benchmarks; one report with charts per run. `make bench` (scripts/bench.sh)
// builds the services and runs it; docs/benchmarks.md explains every number.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/runner"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "courier-bench:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func run() error {
	fs := flag.NewFlagSet("courier-bench", flag.ContinueOnError)
	quick := fs.Bool("quick", envOr("BENCH_QUICK", "") != "" && envOr("BENCH_QUICK", "0") != "0", "every phase small (under two minutes): a smoke run (env BENCH_QUICK=1)")
	base := fs.String("baseline", envOr("BENCH_BASELINE", ""), "git revision to build and measure side by side (env BENCH_BASELINE)")
	repo := fs.String("repo", ".", "repository root")
	bin := fs.String("bin", ".run/bin", "directory of this tree's service binaries (make build)")
	out := fs.String("out", ".run/bench", "where run directories are written")
	goBench := fs.Bool("go", envOr("BENCH_GO", "1") != "0", "run the Go benchmarks (env BENCH_GO=0 skips them)")
	phases := fs.String("phases", envOr("BENCH_PHASES", ""), "comma-separated subset of "+strings.Join(runner.PhaseNames(), ",")+" (env BENCH_PHASES; default all)")
	render := fs.String("render", "", "only redraw report.md and the charts of the run directory given, from its results.json")
	peer := fs.String("peer", envOr("BENCH_PEER_BIN", ""), "centrifugo binary: also run the group fan-out on it (scripts/bench.sh builds it with BENCH_PEER=1)")
	bound := fs.Duration("p99-bound", time.Second, "end-to-end p99 a sustained rate must stay under")
	psPort := fs.Int("pubsub-port", atoi(envOr("BENCH_PUBSUB_PORT", "0")), "Pub/Sub emulator port (0 = a free one; env BENCH_PUBSUB_PORT)")
	fsPort := fs.Int("firestore-port", atoi(envOr("BENCH_FIRESTORE_PORT", "0")), "Firestore emulator port (0 = a free one; env BENCH_FIRESTORE_PORT)")
	var tune runner.Tune
	fs.IntVar(&tune.Repeats, "repeats", atoi(envOr("BENCH_REPEATS", "0")), "rounds of every comparison, builds alternating (env BENCH_REPEATS; 0 = the plan's: 3 full, 1 quick)")
	fs.DurationVar(&tune.StepFor, "step", dur(envOr("BENCH_STEP", "0")), "length of every ladder step (env BENCH_STEP; 0 = the plan's: 30s full); under 30s no rate is called sustained in docs/benchmarks.md")
	fs.IntVar(&tune.Extend, "extend", atoi(envOr("BENCH_EXTEND", "0")), "rungs added past each ladder's last while it holds (env BENCH_EXTEND; 0 = the plan's, -1 = none)")
	fs.BoolVar(&tune.NoBurst, "no-burst", envOr("BENCH_NO_BURST", "0") != "0", "skip the end-to-end burst (env BENCH_NO_BURST=1)")
	ladders := map[string]*[]float64{"e2e-ladder": &tune.E2ELadder, "e2e-group-ladder": &tune.E2EGroup, "edge-group-ladder": &tune.EdgeGroup, "edge-one-ladder": &tune.EdgeOne}
	lstr := map[string]*string{}
	for name := range ladders {
		env := "BENCH_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		lstr[name] = fs.String(name, envOr(env, ""), "comma-separated rates replacing the plan's (env "+env+")")
	}
	idle := fs.String("idle", envOr("BENCH_IDLE", ""), "comma-separated idle session counts replacing the plan's (env BENCH_IDLE)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	for name, p := range ladders {
		v, err := floats(*lstr[name])
		if err != nil {
			return fmt.Errorf("-%s: %w", name, err)
		}
		*p = v
	}
	if v, err := floats(*idle); err != nil {
		return fmt.Errorf("-idle: %w", err)
	} else if v != nil {
		for _, f := range v {
			tune.Idle = append(tune.Idle, int(f))
		}
	}
	root, err := filepath.Abs(*repo)
	if err != nil {
		return err
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	var only map[string]bool
	if *phases != "" {
		only = map[string]bool{}
		for _, p := range strings.Split(*phases, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(runner.PhaseNames(), p) {
				return fmt.Errorf("-phases: unknown phase %q (want %s)", p, strings.Join(runner.PhaseNames(), ", "))
			}
			only[p] = true
		}
	}
	if *render != "" {
		return runner.Render(*render, os.Stdout)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := runner.Run(ctx, runner.Options{
		Repo: root, BinDir: abs(*bin), OutDir: abs(*out), Quick: *quick, Baseline: *base, GoBench: *goBench, Peer: *peer,
		Phases: only, P99Bound: *bound, Tune: tune, PubSubPort: *psPort, FirestorePort: *fsPort,
		Command: "courier-bench " + strings.Join(os.Args[1:], " "), Out: os.Stdout,
	})
	if dir != "" {
		fmt.Println("report:", filepath.Join(dir, "report.md"))
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return err
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func dur(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// floats parses "1,2.5,3" (nil for "").
func floats(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad rate %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}
