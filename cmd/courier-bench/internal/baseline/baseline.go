// Package baseline builds Courier's services from another git revision, so
// one benchmark run can measure that build and this tree side by side: a
// temporary git worktree of the revision under the run directory, go build
// of the three services, and the worktree removed again. The binaries are
// kept per commit and reused by later runs.
package baseline

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/courierhq/courier/cmd/courier-bench/internal/stack"
)

// Build returns the services of rev (any git revision of repo), building
// them into cacheDir/<commit>/bin unless they are there already.
func Build(ctx context.Context, repo, rev, cacheDir string, log io.Writer) (stack.Build, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--verify", rev+"^{commit}").Output()
	if err != nil {
		return stack.Build{}, fmt.Errorf("BENCH_BASELINE %q is not a commit of this repository: %w", rev, err)
	}
	commit := strings.TrimSpace(string(out))
	dir := filepath.Join(cacheDir, commit[:12])
	bin := filepath.Join(dir, "bin")
	b := stack.Build{Label: "old", Rev: commit[:12],
		Gateway: filepath.Join(bin, "api-gateway"), Worker: filepath.Join(bin, "pipeline-worker"), Edge: filepath.Join(bin, "ws-edge")}
	if exists(b.Gateway) && exists(b.Worker) && exists(b.Edge) {
		return b, nil
	}
	src := filepath.Join(dir, "src")
	run := func(dir string, name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = log, log
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return nil
	}
	// --force below also re-adds a path a killed run left registered;
	// no prune: it would touch other worktrees' records.
	_ = os.RemoveAll(src)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return b, err
	}
	if err := run(repo, "git", "worktree", "add", "--detach", "--force", src, commit); err != nil {
		return b, fmt.Errorf("check out the baseline: %w", err)
	}
	defer func() { _ = run(repo, "git", "worktree", "remove", "--force", src) }()
	if err := run(src, "go", "build", "-o", bin+string(os.PathSeparator),
		"./services/api-gateway", "./services/pipeline-worker", "./services/ws-edge"); err != nil {
		return b, fmt.Errorf("build the baseline %s: %w", commit[:12], err)
	}
	return b, nil
}

func exists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
