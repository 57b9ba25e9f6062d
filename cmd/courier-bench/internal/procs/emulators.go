package procs

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Emulators is a private Pub/Sub + Firestore emulator pair started through
// the repository's scripts/emulators.sh (which stops the JVMs too).
type Emulators struct {
	repo, dir     string
	PubSubHost    string
	FirestoreHost string
	// Meter reads the emulators' CPU (their process groups) with the
	// machine's.
	Meter Meter
}

// StartEmulators starts the pair on the given ports (0 = a free port),
// recording its processes in dir.
func StartEmulators(repo, dir string, pubsubPort, firestorePort int) (*Emulators, error) {
	var err error
	if pubsubPort == 0 {
		if pubsubPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if firestorePort == 0 {
		if firestorePort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(filepath.Join(repo, "scripts/emulators.sh"), "start", dir)
	cmd.Env = append(os.Environ(), "PUBSUB_PORT="+strconv.Itoa(pubsubPort), "FIRESTORE_PORT="+strconv.Itoa(firestorePort))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start emulators: %w\n%s", err, out)
	}
	e := &Emulators{repo: repo, dir: dir,
		PubSubHost:    "127.0.0.1:" + strconv.Itoa(pubsubPort),
		FirestoreHost: "127.0.0.1:" + strconv.Itoa(firestorePort)}
	// scripts/emulators.sh starts each launcher with setsid: its pid is
	// the group of the JVM too.
	e.Meter.PubSubGroup, _ = readPid(filepath.Join(dir, "pubsub.pid"))
	e.Meter.FirestoreGroup, _ = readPid(filepath.Join(dir, "firestore.pid"))
	return e, nil
}

// Stop stops exactly what StartEmulators started.
func (e *Emulators) Stop() error {
	out, err := exec.Command(filepath.Join(e.repo, "scripts/emulators.sh"), "stop", e.dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("stop emulators: %w\n%s", err, out)
	}
	return nil
}

// Env is the client environment for the pair.
func (e *Emulators) Env() []string {
	return []string{"PUBSUB_EMULATOR_HOST=" + e.PubSubHost, "FIRESTORE_EMULATOR_HOST=" + e.FirestoreHost}
}

// ResetFirestore deletes every document of project, so a finished
// measurement's data does not slow the next one (the emulator keeps all in
// memory). A round's worth (hundreds of thousands of documents) takes
// seconds on a busy JVM: the bound is generous.
func (e *Emulators) ResetFirestore(ctx context.Context, project string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	url := "http://" + e.FirestoreHost + "/emulator/v1/projects/" + project + "/databases/(default)/documents"
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
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

// Cleared resets project's documents once its measurement is over (call it
// deferred); a failure is said, not fatal: the next round's restart
// (RenewFirestore) frees the memory anyway.
func (e *Emulators) Cleared(project string, say func(string)) {
	if err := e.ResetFirestore(context.Background(), project); err != nil {
		say(fmt.Sprintf("warning: %v", err))
	}
}

// RenewFirestore restarts the Firestore emulator on its port and warms its
// JVM with a throwaway project's writes, between rounds. Deleting documents
// (ResetFirestore) is not enough over a long run: measured here, the
// emulator's live heap after a full GC still grows by ~1.6 KB per deleted
// document (1.00 → 1.32 GB for 200,000 written and deleted), so a run of
// millions of documents reaches the JVM's maximum heap (6.3 GB on this
// machine) and the emulator stops answering (docs/benchmarks.md).
func (e *Emulators) RenewFirestore(ctx context.Context, warm func(ctx context.Context, project string) error) error {
	out, err := exec.CommandContext(ctx, filepath.Join(e.repo, "scripts/emulators.sh"), "restart", e.dir, "firestore").CombinedOutput()
	if err != nil {
		return fmt.Errorf("restart the Firestore emulator: %w\n%s", err, out)
	}
	e.Meter.FirestoreGroup, _ = readPid(filepath.Join(e.dir, "firestore.pid"))
	if warm == nil {
		return nil
	}
	project := fmt.Sprintf("bench-warm-%d", time.Now().UnixNano())
	if err := warm(ctx, project); err != nil {
		return fmt.Errorf("warm the Firestore emulator: %w", err)
	}
	return e.ResetFirestore(ctx, project)
}
