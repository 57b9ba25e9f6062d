// Package procs starts and watches the processes a benchmark measures: the
// Courier binaries (with their logs in the run directory), and it reads what
// the kernel and the processes themselves say about them: CPU time and RSS
// from /proc, Go memory from the debug listener (pkg/debugserver) or, for
// builds that predate it, from the Prometheus Go collector.
package procs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/promtext"
	"github.com/courierhq/courier/pkg/harness/ports"
	"github.com/courierhq/courier/pkg/harness/process"
)

// FreePort returns a free loopback port (pkg/harness/ports: never one
// handed out before in this process).
func FreePort() (int, error) { return ports.Free() }

// FreeAddr is FreePort as "127.0.0.1:port".
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// Proc is one started process (pkg/harness/process, shared with the
// end-to-end tests).
type Proc = process.Proc

// Start runs bin in its own process group, its output appended to logPath.
var Start = process.Start

var clockTicks = 100.0 // USER_HZ; 100 on every Linux this runs on

// CPUSeconds is the user+system CPU time the process has used.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of /proc/<pid>/stat;
// the command name (field 2) may hold spaces, so fields count from its ")".
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc stat: %w", err)
	}
	return (ut + st) / clockTicks, nil
}

// RSSBytes is the process's resident set size (VmRSS).
func RSSBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", v, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// GoMem is what a Go process says about its memory.
type GoMem struct {
	HeapAlloc  float64 `json:"heap_alloc_bytes"`
	StackInuse float64 `json:"stack_inuse_bytes"`
	Goroutines float64 `json:"goroutines"`
	// Source is "debug" (pkg/debugserver, after a forced GC) or "metrics"
	// (the Prometheus Go collector: no forced GC, so the heap includes
	// garbage not yet collected).
	Source string `json:"source"`
}

// ReadGoMem asks the debug listener at debugAddr (forcing a GC); when that
// fails (an older build without DEBUG_ADDR) it reads /metrics at metricsURL.
func ReadGoMem(ctx context.Context, debugAddr, metricsURL string) (GoMem, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	if debugAddr != "" {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+debugAddr+"/debug/memstats", nil)
		if resp, err := client.Do(req); err == nil {
			defer resp.Body.Close()
			var st struct {
				Goroutines int `json:"goroutines"`
				MemStats   struct {
					HeapAlloc  uint64
					StackInuse uint64
				} `json:"memstats"`
			}
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil {
				return GoMem{HeapAlloc: float64(st.MemStats.HeapAlloc), StackInuse: float64(st.MemStats.StackInuse),
					Goroutines: float64(st.Goroutines), Source: "debug"}, nil
			}
		}
	}
	m, err := ScrapeMetrics(ctx, metricsURL)
	if err != nil {
		return GoMem{}, err
	}
	g := GoMem{HeapAlloc: m["go_memstats_heap_alloc_bytes"], StackInuse: m["go_memstats_stack_inuse_bytes"],
		Goroutines: m["go_goroutines"], Source: "metrics"}
	if g.HeapAlloc == 0 || g.Goroutines == 0 {
		return GoMem{}, fmt.Errorf("no Go memory at %s (debug listener absent, no Go collector)", metricsURL)
	}
	return g, nil
}

// ScrapeMetrics reads a Prometheus text endpoint and returns each metric's
// sum over its label sets.
func ScrapeMetrics(ctx context.Context, url string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	return ParseMetrics(resp.Body)
}

// Scrape reads a Prometheus text endpoint into a snapshot (sums and
// histogram buckets).
func Scrape(ctx context.Context, url string) (promtext.Snapshot, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return promtext.Snapshot{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return promtext.Snapshot{}, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	return promtext.Parse(resp.Body)
}

// ParseMetrics sums each metric of a Prometheus text exposition over its
// label sets.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		rest := line[len(name):]
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}
