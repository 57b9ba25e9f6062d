// Package process runs one binary of a system under test (a service, the
// benchmark's peer) in its own process group, its output appended to a log
// file, for the end-to-end tests and the benchmark alike: start, signal,
// stop with a grace period, wait until ready, read the log's tail.
package process

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is one started process.
type Proc struct {
	Name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	err     error
}

// Start runs bin with args and env added to this process's environment,
// in its own process group (a Ctrl-C or a test's end reaches the caller,
// which stops its processes in order itself), its output appended to
// logPath after a line naming the start (a restarted process keeps one log).
func Start(name, bin string, env []string, logPath string, args ...string) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	fmt.Fprintf(f, "\n===== start %s %s\n", name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &Proc{Name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id (and its group's).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended, and how (nil for status 0).
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) { _ = syscall.Kill(-p.cmd.Process.Pid, sig) }

// Stop sends SIGTERM and waits up to grace for the exit, then SIGKILLs the
// group. It returns the exit error, and whether it had to kill.
func (p *Proc) Stop(grace time.Duration) (killed bool, err error) {
	if ok, err := p.Exited(); ok {
		return false, err
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Signal(syscall.SIGKILL)
		<-p.done
		killed = true
	}
	_, err = p.Exited()
	return killed, err
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string { return Tail(p.logPath, n) }

// Tail returns the last n lines of the log at path ("" when unreadable).
func Tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// WaitReady polls url until it answers 200; it fails when the process
// exits first or within passes, with the log's tail.
func (p *Proc) WaitReady(ctx context.Context, url string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		if ok, err := p.Exited(); ok {
			return fmt.Errorf("%s exited before it was ready (%v); log tail:\n%s", p.Name, err, p.Tail(40))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s within %s; log tail:\n%s", p.Name, url, within, p.Tail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
