package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestJSClient runs the JavaScript client's integration script
// (clients/js/integration, node's test runner) against real binaries:
// a gateway behind a fault-injecting proxy and two edges behind a plain
// round-robin TCP balancer, as in production. While the script's sender
// keeps sending, this test restarts both edges with SIGTERM (the client's
// session gets 1001) and then SIGKILLs the edge the client is on (1006);
// the script checks that its client got every message exactly once and in
// order, that sends whose answer the proxy lost are stored once, and that an
// expired token is refreshed. This test then checks the recipient's inbox
// through the gateway on its own. The node process failing fails the test.
func TestJSClient(t *testing.T) {
	node := requireNode(t)
	jsDir := filepath.Join(env.Root, "clients", "js")
	buildJSClient(t, node, jsDir)

	c := env.NewCluster(t, harness.Options{Edges: 2})
	lb := harness.StartBalancer(t, c.Edges[0].Addr, c.Edges[1].Addr)
	gw := harness.StartFaultProxy(t, c.GatewayURL())
	ctl := newJSControl(t, gw)
	result := filepath.Join(t.TempDir(), "result.json")

	cmd := exec.Command(node, "--test", "--test-reporter=spec", "integration/cluster.test.mjs")
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(),
		"COURIER_EDGE_URL=http://"+lb.Addr,
		"COURIER_GATEWAY_URL="+gw.URL,
		"COURIER_CONTROL_URL="+ctl.srv.URL,
		"COURIER_RESULT_FILE="+result,
	)
	// Node's output goes to a file (os/exec writes it without a copying goroutine).
	out := nodeOutput(t)
	cmd.Stdout, cmd.Stderr = out.f, out.f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-nodeDone:
		case <-time.After(10 * time.Second):
		}
		if t.Failed() {
			t.Logf("----- node output\n%s", out.String())
		}
	})

	// The script asks for the faults once its client is live and its
	// sender runs.
	select {
	case <-ctl.faultsAsked:
	case err := <-nodeDone:
		t.Fatalf("node exited (%v) before asking for the faults:\n%s", err, out.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("node did not ask for the faults within 3 minutes:\n%s", out.String())
	}
	func() {
		defer close(ctl.faultsDone) // the script's long poll returns either way
		runEdgeFaults(t, c, ctl)
	}()

	select {
	case err := <-nodeDone:
		if err != nil {
			t.Fatalf("the JavaScript integration tests failed (%v):\n%s", err, out.String())
		}
	case <-time.After(6 * time.Minute):
		t.Fatalf("node did not finish within 6 minutes:\n%s", out.String())
	}
	t.Logf("node output:\n%s", tail(out.String(), 4000))
	if !regexp.MustCompile(`(?m)^ℹ pass [1-9]`).MatchString(out.String()) || !regexp.MustCompile(`(?m)^ℹ fail 0$`).MatchString(out.String()) {
		t.Fatalf("node's test summary is not all-pass:\n%s", out.String())
	}

	// On our own: bob's inbox, read through the gateway, holds exactly what
	// the script says it sent to bob, once each and in order.
	var res struct {
		SentToBob []string `json:"sent_to_bob"`
		Retried   []string `json:"retried_keys"`
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("the script wrote no result: %v", err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	entries, err := harness.Inbox(ctx, c.GatewayURL(), c.Token("bob"), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.ID)
	}
	if len(res.SentToBob) < 80 || strings.Join(got, ",") != strings.Join(res.SentToBob, ",") {
		t.Fatalf("bob's inbox (%d) differs from what the script sent him (%d)", len(got), len(res.SentToBob))
	}
	// Each retried send reached the gateway twice (the lost answer and the
	// retry), with one key, and was stored once (above).
	for _, key := range res.Retried {
		var statuses []int
		for _, s := range gw.Log() {
			if s.Key == key {
				statuses = append(statuses, s.Upstream)
			}
		}
		if len(statuses) != 2 || statuses[0] != http.StatusAccepted || statuses[1] != http.StatusAccepted {
			t.Fatalf("key %s: the gateway answered %v, want [202 202]", key, statuses)
		}
	}
	if len(res.Retried) != 2 {
		t.Fatalf("retried keys = %v, want 2", res.Retried)
	}
}

// runEdgeFaults restarts both edges with SIGTERM, one after the other, then
// SIGKILLs the edge the script's client is on; after each fault that hit
// the client it waits for the client to report a new session.
func runEdgeFaults(t *testing.T, c *harness.Cluster, ctl *jsControl) {
	t.Helper()
	ctl.waitFlowing(t, 0)
	for _, e := range c.Edges {
		before := ctl.waitOpen(t, "")
		if err := e.Stop(t, 30*time.Second); err != nil {
			t.Fatalf("%s exited with %v after SIGTERM", e.Name, err)
		}
		if "ws-edge-"+before.Pod == e.Name {
			ctl.waitOpenAfter(t, before.Seq)
		}
		e.Start(t)
		e.WaitReady(t, time.Minute)
		ctl.waitFlowing(t, before.Received)
	}
	before := ctl.waitOpen(t, "")
	var victim *harness.Process
	for _, e := range c.Edges {
		if e.Name == "ws-edge-"+before.Pod {
			victim = e
		}
	}
	if victim == nil {
		t.Fatalf("the client reports pod %q, not one of the cluster's", before.Pod)
	}
	victim.Kill(t)
	after := ctl.waitOpenAfter(t, before.Seq)
	if after.Pod == before.Pod {
		t.Fatalf("the client reopened on the killed pod %s", after.Pod)
	}
	ctl.waitFlowing(t, before.Received)
}

// jsControl is the HTTP side door the script uses: tokens, its client's
// state reports, the fault sequence, and the gateway proxy's faults.
type jsControl struct {
	srv         *httptest.Server
	faultsAsked chan struct{}
	faultsDone  chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every report
	last    clientReport
}

type clientReport struct {
	Seq      int    `json:"-"`
	State    string `json:"state"`
	Pod      string `json:"pod"`
	Received int    `json:"received"` // messages the client got so far
}

func newJSControl(t *testing.T, gw *harness.FaultProxy) *jsControl {
	ctl := &jsControl{faultsAsked: make(chan struct{}), faultsDone: make(chan struct{}), changed: make(chan struct{})}
	var askOnce sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		ttl, err := time.ParseDuration(r.URL.Query().Get("ttl"))
		if err != nil {
			ttl = time.Hour
		}
		tok, err := auth.Mint(harness.Secret, r.URL.Query().Get("user"), ttl)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte(tok))
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var rep clientReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctl.mu.Lock()
		rep.Seq = ctl.last.Seq + 1
		ctl.last = rep
		close(ctl.changed)
		ctl.changed = make(chan struct{})
		ctl.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		askOnce.Do(func() { close(ctl.faultsAsked) })
		select {
		case <-ctl.faultsDone:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("POST /gateway/fault", func(w http.ResponseWriter, r *http.Request) {
		mode := r.URL.Query().Get("mode")
		if mode != harness.FaultReplace503 && mode != harness.FaultDrop {
			http.Error(w, "mode must be 503 or drop", http.StatusBadRequest)
			return
		}
		gw.Arm(mode)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /gateway/log", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(gw.Log())
	})
	ctl.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		select {
		case <-ctl.faultsDone:
		default:
			close(ctl.faultsDone)
		}
		ctl.srv.Close()
	})
	return ctl
}

// waitOpen waits until the client's last report is an open session (on any
// pod when pod is ""); it returns that report.
func (ctl *jsControl) waitOpen(t *testing.T, pod string) clientReport {
	t.Helper()
	return ctl.wait(t, "an open session", func(r clientReport) bool { return r.State == "open" && (pod == "" || r.Pod == pod) })
}

// waitOpenAfter waits for an open session reported after report seq.
func (ctl *jsControl) waitOpenAfter(t *testing.T, seq int) clientReport {
	t.Helper()
	return ctl.wait(t, "a new session after the fault", func(r clientReport) bool { return r.State == "open" && r.Seq > seq })
}

// waitFlowing waits until the client has received 20 messages more than
// `since`, so that every fault falls among messages in flight.
func (ctl *jsControl) waitFlowing(t *testing.T, since int) clientReport {
	t.Helper()
	return ctl.wait(t, fmt.Sprintf("20 messages after the %dth", since), func(r clientReport) bool { return r.Received >= since+20 })
}

func (ctl *jsControl) wait(t *testing.T, what string, ok func(clientReport) bool) clientReport {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		ctl.mu.Lock()
		last, changed := ctl.last, ctl.changed
		ctl.mu.Unlock()
		if ok(last) {
			return last
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the client did not report %s within a minute (last report: %+v)", what, last)
		}
	}
}

// requireNode finds Node.js 20+; its absence fails the test (make test
// installs it): the JavaScript client is part of what Courier ships.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node (Node.js 20+) is not installed: the JavaScript client's integration tests need it; `make test` installs it (scripts/ensure-tool.sh node)")
	}
	v, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(strings.TrimSpace(string(v)), "v"), ".", 2)[0])
	if major < 20 {
		t.Fatalf("node %s is too old: the JavaScript client needs Node.js 20+", strings.TrimSpace(string(v)))
	}
	return node
}

// buildJSClient compiles the library (tsc, from the committed lockfile's
// node_modules) so the script tests the current source.
func buildJSClient(t *testing.T, node, dir string) {
	t.Helper()
	tsc := filepath.Join(dir, "node_modules", "typescript", "bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Fatalf("%s is missing: install the JavaScript client's dependencies (`make js-deps`, i.e. npm ci in clients/js; `make test` does it)", tsc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, tsc, "-p", "tsconfig.json")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}

type nodeLog struct{ f *os.File }

func nodeOutput(t *testing.T) nodeLog {
	f, err := os.Create(filepath.Join(t.TempDir(), "node.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return nodeLog{f}
}

// String is what node wrote so far.
func (l nodeLog) String() string {
	b, _ := os.ReadFile(l.f.Name())
	return string(b)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
