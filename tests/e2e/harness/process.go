// Package harness runs Courier's real binaries for end-to-end tests: it
// builds them once, starts private emulators, provisions the topology, and
// starts, kills and restarts gateways, workers and edges on free ports.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/harness/ports"
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
	cmd  *exec.Cmd
	done chan struct{}
	err  error
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

// Start runs the process; its output goes to a log file that is printed
// when the test fails.
func (p *Process) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n===== start %s %s\n", p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// WaitReady polls /readyz until it answers 200.
func (p *Process) WaitReady(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get("http://" + p.Addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if !p.Running() {
			t.Fatalf("%s exited before it was ready:\n%s", p.Name, p.Tail(40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s (last: %v):\n%s", p.Name, d, err, p.Tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
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
	p.Signal(syscall.SIGTERM)
	p.wait(t, d)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *Process) wait(t testing.TB, d time.Duration) {
	t.Helper()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(d):
		p.Signal(syscall.SIGKILL)
		<-done
		t.Errorf("%s did not exit within %s; killed", p.Name, d)
	}
}

// Tail returns the last n lines of the process log.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

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
