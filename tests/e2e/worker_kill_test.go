//go:build emulatorgap

package e2e

// This scenario is excluded from `make test` (run it with
// `go test -tags emulatorgap -run TestWorkerKilledMidStream ./tests/e2e`):
// on the Pub/Sub emulator 0.8.20 the messages leased to a streaming-pull
// consumer killed with SIGKILL are never redelivered (the emulator's stream
// cleanup fails with a NoSuchMethodError in its gRPC server, see its log),
// so a few hundred accepted messages stay stranded and the test fails for a
// reason that is the emulator's, not Courier's. On GCP the leases expire
// within one ack extension (WORKER_ACK_EXTENSION_STEP, 15s). The graceful
// path (SIGTERM: finish or nack in flight) is covered by the worker's own
// tests. docs/emulators.md records the gap.

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestWorkerKilledMidStream kills the worker with SIGKILL while 2,000
// messages are in flight and restarts it: every accepted message ends up in
// its recipient's inbox exactly once.
func TestWorkerKilledMidStream(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 0})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := newSent()
	var killed atomic.Bool
	sendLoad(t, ctx, c, s, 2000, 10, 40, 16, func(i int) {
		if s.count() == 600 && killed.CompareAndSwap(false, true) {
			c.Worker.Kill(t)
			c.Worker.Start(t)
		}
	})
	if !killed.Load() {
		t.Fatal("the worker was never killed")
	}
	waitInboxes(t, ctx, c, s, 5*time.Minute)
}
