package sequencer

import (
	"sync"
	"time"
)

// Window is how long a user's deliveries wait on this pod for a missing
// position before it is read from the inbox. It adapts to how late
// deliveries really are here (a busy pod, a slow subscription stream, a
// publisher's hiccup): twice the largest lateness seen over the last
// minute, never below Min nor above Max. Waiting long is cheap (a late
// position normally arrives; a real gap is rare: a worker that died
// between commit and publish), reading early is what turned a busy
// moment into a Firestore read per session.
type Window struct {
	min, max time.Duration

	mu      sync.Mutex
	buckets [windowBuckets]bucket
}

const (
	windowBuckets = 6
	bucketSpan    = 10 * time.Second
)

type bucket struct {
	start time.Time
	max   time.Duration
}

// NewWindow returns a window of at least lo and at most hi.
func NewWindow(lo, hi time.Duration) *Window {
	return &Window{min: lo, max: max(lo, hi)}
}

// Observe records that a delivery arrived late by d at now.
func (w *Window) Observe(d time.Duration, now time.Time) {
	if d <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	start := now.Truncate(bucketSpan)
	b := &w.buckets[start.Unix()/int64(bucketSpan/time.Second)%windowBuckets]
	if !b.start.Equal(start) {
		*b = bucket{start: start}
	}
	b.max = max(b.max, d)
}

// At returns the window at now.
func (w *Window) At(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var late time.Duration
	for _, b := range w.buckets {
		if now.Sub(b.start) < windowBuckets*bucketSpan {
			late = max(late, b.max)
		}
	}
	return min(max(2*late, w.min), w.max)
}
