package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Emulators are a private Pub/Sub + Firestore emulator pair started through
// scripts/emulators.sh, so fault tests can freeze them without touching
// anyone else's.
type Emulators struct {
	repoRoot      string
	dir           string
	PubSubHost    string
	FirestoreHost string
}

// StartEmulators starts the pair on free ports, recording them in dir.
func StartEmulators(repoRoot, dir string) (*Emulators, error) {
	ps, err := freePort()
	if err != nil {
		return nil, err
	}
	fs, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(repoRoot, "scripts/emulators.sh"), "start", dir)
	cmd.Env = append(os.Environ(), "PUBSUB_PORT="+strconv.Itoa(ps), "FIRESTORE_PORT="+strconv.Itoa(fs))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start emulators: %v\n%s", err, out)
	}
	return &Emulators{repoRoot: repoRoot, dir: dir,
		PubSubHost: fmt.Sprintf("127.0.0.1:%d", ps), FirestoreHost: fmt.Sprintf("127.0.0.1:%d", fs)}, nil
}

// Stop stops exactly what StartEmulators started.
func (e *Emulators) Stop() error {
	out, err := exec.Command(filepath.Join(e.repoRoot, "scripts/emulators.sh"), "stop", e.dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("stop emulators: %v\n%s", err, out)
	}
	return nil
}

// Restart stops one emulator ("pubsub" or "firestore") and starts it again
// on the same port, empty: the emulators keep no state across a restart.
func (e *Emulators) Restart(name string) error {
	out, err := exec.Command(filepath.Join(e.repoRoot, "scripts/emulators.sh"), "restart", e.dir, name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("restart %s emulator: %v\n%s", name, err, out)
	}
	return nil
}

// Freeze sends SIGSTOP (or SIGCONT to thaw) to one emulator's process group:
// an outage that keeps its data.
func (e *Emulators) Freeze(name string, frozen bool) error {
	b, err := os.ReadFile(filepath.Join(e.dir, name+".pid"))
	if err != nil {
		return err
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	sig := syscall.SIGCONT
	if frozen {
		sig = syscall.SIGSTOP
	}
	return syscall.Kill(-pgid, sig)
}
