package edge_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

// Environment of the idle clients' process (TestIdleClients).
const (
	idleURLEnv   = "EDGE_IDLE_CLIENTS_URL"
	idleCountEnv = "EDGE_IDLE_CLIENTS"
)

// idleCost is the edge's Go memory (heap in use by objects + goroutine
// stacks) and goroutines, after a GC.
type idleCost struct {
	bytes      float64
	goroutines int
}

func measureIdle() idleCost {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return idleCost{bytes: float64(ms.HeapAlloc + ms.StackInuse), goroutines: runtime.NumGoroutine()}
}

// TestIdleSessionCost measures what an idle session costs an edge: 1,000
// sessions held by a child process (so the clients' own memory is not
// counted), measured once they are all synced and again after several
// keepalive pings, as issue 20 asks (the cost used to grow in the first
// minute). It fails above the targets: at most 16 KiB of Go memory and
// 1.1 goroutines per idle session.
func TestIdleSessionCost(t *testing.T) {
	const n = 1000
	const ping = 500 * time.Millisecond
	w := newWorld(t)
	a := startEdge(t, w, "edge-idle", func(c *edge.Config, _ *edge.Deps) {
		c.MaxSessions = n + 100
		c.Session.PingInterval = ping
	})
	base := measureIdle()

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClients$")
	cmd.Env = append(os.Environ(), idleURLEnv+"="+a.wsURL(""), idleCountEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); line == "ready" {
				ready <- nil
				return
			} else if strings.HasPrefix(line, "error") {
				ready <- fmt.Errorf("idle clients: %s", line)
				return
			}
		}
		ready <- fmt.Errorf("idle clients ended before they were ready")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("idle clients not ready within 2 minutes")
	}
	testenv.Eventually(t, 30*time.Second, "all sessions registered", func() bool {
		return a.counter(t, "courier_ws_edge_sessions") == n
	})
	per := func(c idleCost) (kib, goroutines float64) {
		return (c.bytes - base.bytes) / n / 1024, float64(c.goroutines-base.goroutines) / n
	}
	synced := measureIdle()
	kib0, g0 := per(synced)
	t.Logf("%d idle sessions, once synced: %.1f KiB Go memory and %.2f goroutines per session", n, kib0, g0)
	// The scenario: sessions that stay idle through several keepalive
	// pings, not a wait for a result.
	time.Sleep(6 * ping)
	kib1, g1 := per(measureIdle())
	t.Logf("%d idle sessions, after 6 ping intervals: %.1f KiB Go memory and %.2f goroutines per session", n, kib1, g1)
	if max(kib0, kib1) > 16 || max(g0, g1) > 1.1 {
		t.Errorf("an idle session costs up to %.1f KiB and %.2f goroutines, want at most 16 KiB and 1 goroutine", max(kib0, kib1), max(g0, g1))
	}
}

// TestIdleClients is TestIdleSessionCost's client process: it holds the
// sessions, reading (so pings are answered) until its stdin closes. Run
// by hand it does nothing.
func TestIdleClients(t *testing.T) {
	url := os.Getenv(idleURLEnv)
	if url == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv(idleCountEnv))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range n {
		h := http.Header{"Authorization": {"Bearer " + token(t, fmt.Sprintf("idle%05d", i))}}
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			fmt.Printf("error dial %d: %v\n", i, err)
			return
		}
		for range 2 { // hello, synced
			if _, _, err := c.Read(ctx); err != nil {
				fmt.Printf("error read %d: %v\n", i, err)
				return
			}
		}
		go func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}
