// Package emulators starts and controls a private Pub/Sub + Firestore
// emulator pair through the repository's scripts/emulators.sh (each
// launcher in its own process group, so stopping it ends the JVM too), for
// the end-to-end tests and the benchmark alike.
package emulators

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/courierhq/courier/pkg/harness/ports"
)

// Pair is one running emulator pair.
type Pair struct {
	repo, dir     string
	PubSubHost    string
	FirestoreHost string
}

// Start starts the pair on the given ports (0 = a free port), recording its
// processes in dir; repoRoot is the repository (for scripts/emulators.sh).
func Start(repoRoot, dir string, pubsubPort, firestorePort int) (*Pair, error) {
	var err error
	if pubsubPort == 0 {
		if pubsubPort, err = ports.Free(); err != nil {
			return nil, err
		}
	}
	if firestorePort == 0 {
		if firestorePort, err = ports.Free(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(filepath.Join(repoRoot, "scripts/emulators.sh"), "start", dir)
	cmd.Env = append(os.Environ(), "PUBSUB_PORT="+strconv.Itoa(pubsubPort), "FIRESTORE_PORT="+strconv.Itoa(firestorePort))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start emulators: %w\n%s", err, out)
	}
	return &Pair{repo: repoRoot, dir: dir,
		PubSubHost:    "127.0.0.1:" + strconv.Itoa(pubsubPort),
		FirestoreHost: "127.0.0.1:" + strconv.Itoa(firestorePort)}, nil
}

// Dir is where the pair's processes are recorded.
func (p *Pair) Dir() string { return p.dir }

// Stop stops exactly what Start started.
func (p *Pair) Stop() error {
	out, err := exec.Command(filepath.Join(p.repo, "scripts/emulators.sh"), "stop", p.dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("stop emulators: %w\n%s", err, out)
	}
	return nil
}

// Restart stops one emulator ("pubsub" or "firestore") and starts it again
// on the same port, empty: the emulators keep no state across a restart.
func (p *Pair) Restart(name string) error {
	out, err := exec.Command(filepath.Join(p.repo, "scripts/emulators.sh"), "restart", p.dir, name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("restart %s emulator: %w\n%s", name, err, out)
	}
	return nil
}

// Group is the process group of one emulator ("pubsub" or "firestore"):
// its launcher's pid, which scripts/emulators.sh starts with setsid, so the
// JVM is in it too.
func (p *Pair) Group(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(p.dir, name+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Freeze sends SIGSTOP (or SIGCONT to thaw) to one emulator's process group:
// an outage that keeps its data.
func (p *Pair) Freeze(name string, frozen bool) error {
	pgid, err := p.Group(name)
	if err != nil {
		return err
	}
	sig := syscall.SIGCONT
	if frozen {
		sig = syscall.SIGSTOP
	}
	return syscall.Kill(-pgid, sig)
}

// Env is the client environment for the pair, to give a child process
// (this process's own clients take the hosts explicitly, never through
// os.Setenv).
func (p *Pair) Env() []string {
	return []string{"PUBSUB_EMULATOR_HOST=" + p.PubSubHost, "FIRESTORE_EMULATOR_HOST=" + p.FirestoreHost}
}

// ResetFirestore deletes every document of project (the emulator's
// DELETE …/documents), so a finished measurement's data does not slow the
// next one (the emulator keeps all in memory). A round's worth (hundreds
// of thousands of documents) takes seconds on a busy JVM: the bound is
// generous.
func (p *Pair) ResetFirestore(ctx context.Context, project string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	url := "http://" + p.FirestoreHost + "/emulator/v1/projects/" + project + "/databases/(default)/documents"
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
	if err != nil {
		return fmt.Errorf("reset Firestore project %s: %w", project, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset Firestore project %s: %w", project, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset Firestore project %s: status %d", project, resp.StatusCode)
	}
	return nil
}
