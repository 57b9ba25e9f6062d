package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/courierhq/courier/pkg/testenv"
)

// A Firestore outage of ten seconds (the emulator frozen with SIGSTOP, so
// calls hang rather than fail fast) costs latency only: the worker retries
// in process with the default budget, nothing is nacked or dead-lettered,
// and every message is stored once, in per-sender order, and delivered.
//
// It freezes a private Firestore emulator started for this test, never the
// shared one.
func TestFirestoreOutageIsRetriedWithoutLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Firestore emulator and holds a 10 s outage")
	}
	testenv.PubSub(t, "probe") // skip or fail like every emulator test
	host, freeze, thaw := privateFirestore(t)
	t.Setenv("FIRESTORE_EMULATOR_HOST", host)

	w := newWorld(t, nil)
	s := w.settings()
	s.AttemptTimeout = 3 * time.Second // a hung call fails after 3 s and is retried
	wk := w.start(s, nil)

	w.publish(env("warm-up", "alice", "bob")) // the emulator's first write is slow
	w.deliveries.waitFor(t, 60*time.Second, "warm-up")

	outage := 10 * time.Second
	before := testutil.ToFloat64(wk.m.Failures.WithLabelValues("transient"))
	freeze()
	frozenAt := time.Now()
	var ids []string
	for i := range 5 {
		for _, s := range []string{"alice", "carol"} {
			id := fmt.Sprintf("%s-%d", s, i)
			ids = append(ids, id)
			w.publish(env(id, s, "bob", "dave"))
		}
	}
	testenv.Eventually(t, 20*time.Second, "attempts failing during the outage", func() bool {
		return testutil.ToFloat64(wk.m.Failures.WithLabelValues("transient")) > before
	})
	time.Sleep(time.Until(frozenAt.Add(outage))) // the outage lasts this long: the scenario, not a wait for a condition
	thaw()
	thawedAt := time.Now()

	w.deliveries.waitFor(t, 60*time.Second, ids...)
	t.Logf("outage %s; all delivered %s after it ended; %v transient failures, %v retries",
		outage, time.Since(thawedAt).Round(time.Millisecond),
		testutil.ToFloat64(wk.m.Failures.WithLabelValues("transient")), testutil.ToFloat64(wk.m.Retries))

	if n := w.dead.len(); n != 0 {
		t.Errorf("%d messages dead-lettered by a 10 s outage", n)
	}
	for _, reason := range []string{"retry_budget", "shutdown", "dead_letter_failed"} {
		if got := testutil.ToFloat64(wk.m.Nacked.WithLabelValues(reason)); got != 0 {
			t.Errorf("nacked{%s} = %v", reason, got)
		}
	}
	if testutil.ToFloat64(wk.m.Retries) == 0 {
		t.Error("no retries recorded: the outage did not hit the worker")
	}
	for _, u := range []string{"bob", "dave"} {
		got := w.inboxIDs(u) // also checks positions are gap-free
		if len(got) != len(ids)+boolInt(u == "bob") {
			t.Errorf("inbox of %s: %v", u, got)
		}
		for _, s := range []string{"alice", "carol"} {
			var want []string
			for i := range 5 {
				want = append(want, fmt.Sprintf("%s-%d", s, i))
			}
			if got := subsequence(got, func(id string) bool { return strings.HasPrefix(id, s+"-") }); !slices.Equal(got, want) {
				t.Errorf("inbox of %s, %s's messages: %v", u, s, got)
			}
		}
	}
	for _, id := range ids {
		if n := len(w.deliveries.with(id)); n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// privateFirestore starts emulators of its own (scripts/emulators.sh with
// free ports, in a temporary directory) and returns the Firestore host and
// functions that freeze and thaw its process group. They are stopped when
// the test ends.
func privateFirestore(t *testing.T) (host string, freeze, thaw func()) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "scripts", "emulators.sh")
	dir := t.TempDir()
	psPort, fsPort := freePort(t), freePort(t)
	envv := append(os.Environ(), "PUBSUB_PORT="+strconv.Itoa(psPort), "FIRESTORE_PORT="+strconv.Itoa(fsPort))
	start := exec.Command(script, "start", dir)
	start.Env = envv
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("start private emulators: %v\n%s", err, out)
	}
	pidText, err := os.ReadFile(filepath.Join(dir, "firestore.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil || pgid <= 1 {
		t.Fatalf("firestore pid %q", pidText)
	}
	signal := func(sig syscall.Signal) {
		if err := syscall.Kill(-pgid, sig); err != nil {
			t.Errorf("signal %v to the private Firestore emulator (pgid %d): %v", sig, pgid, err)
		}
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGCONT) // a stopped process cannot handle SIGTERM
		stop := exec.Command(script, "stop", dir)
		stop.Env = envv
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("stop private emulators: %v\n%s", err, out)
		}
	})
	return fmt.Sprintf("127.0.0.1:%d", fsPort), func() { signal(syscall.SIGSTOP) }, func() { signal(syscall.SIGCONT) }
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
