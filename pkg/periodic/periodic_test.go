package periodic_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/periodic"
	"github.com/courierhq/courier/pkg/testenv"
)

// Run calls f on every tick, with the context it was given, and returns
// once that context ends.
func TestRunTicksUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	type key struct{}
	ctx = context.WithValue(ctx, key{}, "run's")
	var calls atomic.Int32
	var wrongCtx atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		periodic.Run(ctx, time.Millisecond, func(c context.Context) {
			if c.Value(key{}) != "run's" {
				wrongCtx.Store(true)
			}
			calls.Add(1)
		})
	}()
	testenv.Eventually(t, 10*time.Second, "three ticks", func() bool { return calls.Load() >= 3 })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if wrongCtx.Load() {
		t.Error("f got another context than Run's")
	}
}

// A context already ended: Run returns without calling f.
func TestRunOnEndedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	periodic.Run(ctx, time.Nanosecond, func(context.Context) { t.Error("f called on an ended context") })
}
