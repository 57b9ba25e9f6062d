// Package harness runs Courier's real binaries for end-to-end tests: it
// builds them once, starts private emulators, provisions the topology, and
// starts, kills and restarts gateways, workers and edges on free ports.
package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/harness/ports"
	"github.com/courierhq/courier/pkg/harness/process"
)

// Process is one running binary in its own process group.
type Process struct {
	Name string
	Addr string // HTTP address (host:port): the API, /healthz, /readyz
	// AdminAddr is ADMIN_ADDR (host:port), where /metrics is served.
	AdminAddr string
	Env       []string
	bin       string
	logPath   string

	mu   sync.Mutex
	proc *process.Proc // the latest start (pkg/harness/process)
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
// It is picked below the kernel's ephemeral range (32768–60999 on Linux):
// a port from that range, free when we look, can be taken by any outgoing
// connection (a client to an emulator) before the service binds it, which
// made a gateway fail to start now and then on a busy machine.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) { return ports.Free() }

// Start runs the process (again after a Kill or Stop); its output goes to
// a log file that is printed when the test fails.
func (p *Process) Start(t testing.TB) {
	t.Helper()
	proc, err := process.Start(p.Name, p.bin, p.Env, p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.proc = proc
	p.mu.Unlock()
}

func (p *Process) current() *process.Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	proc := p.current()
	if proc == nil {
		return false
	}
	exited, _ := proc.Exited()
	return !exited
}

// WaitReady polls /readyz until it answers 200.
func (p *Process) WaitReady(t testing.TB, d time.Duration) {
	t.Helper()
	proc := p.current()
	if proc == nil {
		t.Fatalf("%s was never started", p.Name)
	}
	if err := proc.WaitReady(context.Background(), "http://"+p.Addr+"/readyz", d); err != nil {
		t.Fatal(err)
	}
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) {
	if proc := p.current(); proc != nil {
		proc.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.Signal(syscall.SIGKILL)
	p.wait(t, 10*time.Second)
}

// Stop sends SIGTERM and waits up to d for a graceful exit; it returns the
// exit error (nil for status 0).
func (p *Process) Stop(t testing.TB, d time.Duration) error {
	t.Helper()
	proc := p.current()
	if proc == nil {
		return nil
	}
	killed, err := proc.Stop(d)
	if killed {
		t.Errorf("%s did not exit within %s; killed", p.Name, d)
	}
	return err
}

func (p *Process) wait(t testing.TB, d time.Duration) {
	t.Helper()
	proc := p.current()
	if proc == nil {
		return
	}
	select {
	case <-proc.Done():
	case <-time.After(d):
		proc.Signal(syscall.SIGKILL)
		<-proc.Done()
		t.Errorf("%s did not exit within %s; killed", p.Name, d)
	}
}

// Tail returns the last n lines of the process log.
func (p *Process) Tail(n int) string { return process.Tail(p.logPath, n) }

// Log returns the whole process log.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Build compiles the Courier binaries into dir (go build from the repo root).
func Build(ctx context.Context, repoRoot, dir string) error {
	for _, pkg := range []string{"./services/api-gateway", "./services/pipeline-worker", "./services/ws-edge", "./cmd/courierctl"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}
