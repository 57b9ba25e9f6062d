package process

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A process that ignores SIGTERM is killed after the grace period; one
// that exits on it is not; the log keeps both starts.
func TestStopGraceThenKill(t *testing.T) {
	log := filepath.Join(t.TempDir(), "p.log")
	p, err := Start("stubborn", "/bin/sh", nil, log, "-c", `trap "" TERM; echo up; while :; do sleep 0.05; done`)
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "up") // the trap is set
	killed, _ := p.Stop(300 * time.Millisecond)
	if !killed {
		t.Fatal("a process ignoring SIGTERM was not killed")
	}
	q, err := Start("polite", "/bin/sh", []string{"GREETING=hello"}, log, "-c", `trap "exit 0" TERM; echo "$GREETING"; while :; do sleep 0.05; done`)
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, q, "hello")
	if killed, err := q.Stop(10 * time.Second); killed || err != nil {
		t.Fatalf("polite stop: killed %v, err %v", killed, err)
	}
	got := Tail(log, 100)
	if strings.Count(got, "===== start") != 2 || !strings.Contains(got, "up") || !strings.Contains(got, "hello") {
		t.Fatalf("log:\n%s", got)
	}
}

// WaitReady answers once the URL says 200, and fails at once when the
// process exits first.
func TestWaitReady(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	go srv.Serve(l)
	defer srv.Close()
	log := filepath.Join(t.TempDir(), "p.log")
	p, err := Start("sleeper", "/bin/sh", nil, log, "-c", "sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Signal(syscall.SIGKILL)
	if err := p.WaitReady(context.Background(), "http://"+l.Addr().String()+"/", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	q, err := Start("quitter", "/bin/sh", nil, log, "-c", "echo bye; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if err := q.WaitReady(context.Background(), "http://127.0.0.1:1/", 10*time.Second); err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("WaitReady on an exited process: %v", err)
	}
}

// waitLog waits until p's log shows s.
func waitLog(t *testing.T, p *Proc, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Tail(5), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not in %s's log within 10s:\n%s", s, p.Name, p.Tail(20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
