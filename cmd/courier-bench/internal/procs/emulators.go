package procs

import (
	"context"
	"fmt"
	"time"

	"github.com/courierhq/courier/pkg/harness/emulators"
)

// Emulators is the benchmark's private emulator pair (pkg/harness/
// emulators, shared with the end-to-end tests) with a CPU meter of their
// processes.
type Emulators struct {
	*emulators.Pair
	// Meter reads the emulators' CPU (their process groups) with the
	// machine's.
	Meter Meter
}

// StartEmulators starts the pair on the given ports (0 = a free port),
// recording its processes in dir.
func StartEmulators(repo, dir string, pubsubPort, firestorePort int) (*Emulators, error) {
	p, err := emulators.Start(repo, dir, pubsubPort, firestorePort)
	if err != nil {
		return nil, err
	}
	e := &Emulators{Pair: p}
	e.Meter.PubSubGroup, _ = p.Group("pubsub")
	e.Meter.FirestoreGroup, _ = p.Group("firestore")
	return e, nil
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
	if err := e.Restart("firestore"); err != nil {
		return err
	}
	e.Meter.FirestoreGroup, _ = e.Group("firestore")
	if warm == nil {
		return nil
	}
	project := fmt.Sprintf("bench-warm-%d", time.Now().UnixNano())
	if err := warm(ctx, project); err != nil {
		return fmt.Errorf("warm the Firestore emulator: %w", err)
	}
	return e.ResetFirestore(ctx, project)
}
