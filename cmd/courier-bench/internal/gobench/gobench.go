// Package gobench runs the Go benchmarks of every module (the packages that
// declare Benchmark functions, so nothing else is compiled) with -benchmem
// and several counts, and reduces each benchmark to the median of its runs.
package gobench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/courierhq/courier/cmd/courier-bench/internal/stats"
)

// Result is one benchmark's medians; Units holds every unit it reported
// (ns/op, B/op, allocs/op, and custom ones such as msg/s).
type Result struct {
	Module  string             `json:"module"`
	Package string             `json:"package"`
	Name    string             `json:"name"`
	Runs    int                `json:"runs"`
	Medians map[string]float64 `json:"medians"`
}

var benchDecl = regexp.MustCompile(`(?m)^func Benchmark\w*\(`)

// Packages returns the package directories (relative to module) whose
// tests declare a benchmark, split by whether their tests use the
// emulators (they import pkg/testenv): those run whole systems per
// iteration, so they get -benchtime 1x and fewer counts.
func Packages(module string) (micro, emulator []string, err error) {
	var dirs []string
	emu := map[string]bool{}
	err = filepath.WalkDir(module, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != module {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(module, filepath.Dir(path))
		dir := "./" + filepath.ToSlash(rel)
		if benchDecl.Match(b) && !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
		if strings.Contains(string(b), `"github.com/courierhq/courier/pkg/testenv"`) {
			emu[dir] = true
		}
		return nil
	})
	slices.Sort(dirs)
	for _, d := range dirs {
		if emu[d] {
			emulator = append(emulator, d)
		} else {
			micro = append(micro, d)
		}
	}
	return micro, emulator, err
}

// Options of a run.
type Options struct {
	Count     int    // runs of each micro-benchmark
	Benchtime string // for micro-benchmarks ("" = go test's default)
	// EmulatorCount runs of each emulator-backed benchmark, one iteration
	// each.
	EmulatorCount int
}

// Run benchmarks every module under repo (paths relative to it); env is
// added to go test's environment (the emulator-backed benchmarks need it);
// log receives go test's output.
func Run(ctx context.Context, repo string, modules []string, o Options, env []string, log io.Writer) ([]Result, error) {
	var out []Result
	for _, m := range modules {
		micro, emu, err := Packages(filepath.Join(repo, m))
		if err != nil {
			return out, fmt.Errorf("find benchmarks in %s: %w", m, err)
		}
		if len(micro) > 0 {
			res, err := runGo(ctx, repo, m, micro, o.Count, o.Benchtime, env, log)
			out = append(out, res...)
			if err != nil {
				return out, err
			}
		}
		if len(emu) > 0 {
			res, err := runGo(ctx, repo, m, emu, o.EmulatorCount, "1x", env, log)
			out = append(out, res...)
			if err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func runGo(ctx context.Context, repo, m string, pkgs []string, count int, benchtime string, env []string, log io.Writer) ([]Result, error) {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(count)}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkgs...)...)
	cmd.Dir = filepath.Join(repo, m)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("go test in %s: %w", m, err)
	}
	parsed := make(chan []Result, 1)
	go func() { parsed <- Parse(m, io.TeeReader(pr, log)) }()
	err := cmd.Wait()
	pw.Close()
	res := <-parsed
	if err != nil {
		return res, fmt.Errorf("go test -bench in %s: %w (output in the run's go-bench.txt)", m, err)
	}
	return res, nil
}

// Parse reads go test -bench output and returns each benchmark's medians,
// in the order first seen.
func Parse(module string, r io.Reader) []Result {
	type key struct{ pkg, name string }
	samples := map[key]map[string][]float64{}
	runs := map[key]int{}
	var order []key
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		k := key{pkg, trimProcs(f[0])}
		if _, ok := samples[k]; !ok {
			samples[k] = map[string][]float64{}
			order = append(order, k)
		}
		runs[k]++
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			samples[k][f[i+1]] = append(samples[k][f[i+1]], v)
		}
	}
	out := make([]Result, 0, len(order))
	for _, k := range order {
		r := Result{Module: module, Package: k.pkg, Name: k.name, Runs: runs[k], Medians: map[string]float64{}}
		for unit, vs := range samples[k] {
			r.Medians[unit] = stats.Median(vs)
		}
		out = append(out, r)
	}
	return out
}

// trimProcs drops the -GOMAXPROCS suffix of a benchmark name.
func trimProcs(name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i]
		}
	}
	return name
}
