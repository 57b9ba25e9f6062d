package openloop

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCallsEveryEventOnSchedule(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]time.Time{}
	start, skipped := Run(context.Background(), 1000, 50, 100, func(i int, due time.Time) {
		mu.Lock()
		seen[i] = due
		mu.Unlock()
	})
	if skipped != 0 || len(seen) != 50 {
		t.Fatalf("skipped %d, ran %d; want 0 and 50", skipped, len(seen))
	}
	for i, due := range seen {
		if want := Due(start, 1000, i); !due.Equal(want) {
			t.Fatalf("event %d due %v, want %v", i, due, want)
		}
	}
}

func TestRunSkipsBeyondInFlightLimit(t *testing.T) {
	// The first three events hold every slot until the other seven have
	// been skipped; then they finish.
	release := make(chan struct{})
	var ran, skips atomic.Int32
	_, skipped := run(context.Background(), 1e6, 10, 3, func(int, time.Time) {
		ran.Add(1)
		<-release
	}, func(int) {
		if skips.Add(1) == 7 {
			close(release)
		}
	})
	if skipped != 7 || ran.Load() != 3 {
		t.Fatalf("skipped %d, ran %d; want 7 and 3", skipped, ran.Load())
	}
}
