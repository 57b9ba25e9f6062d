// Package openloop sends on a schedule: event i is due at start + i/rate,
// and each event runs in its own goroutine when it is due, whether or not
// earlier ones finished. Latency is then measured from the due time, so a
// system that falls behind shows its queueing instead of slowing the
// generator down (the coordinated-omission trap of closed-loop clients).
package openloop

import (
	"context"
	"sync"
	"time"
)

// Run calls fn(i, due) for i in [0, n) at rate events per second starting
// now, at most maxInFlight at once: an event due while that many are still
// running is not started and counted in skipped (the generator's own
// limit, reported, never hidden). Run returns when every started call has
// returned or ctx ended.
func Run(ctx context.Context, rate float64, n, maxInFlight int, fn func(i int, due time.Time)) (start time.Time, skipped int) {
	return run(ctx, rate, n, maxInFlight, fn, func(int) {})
}

func run(ctx context.Context, rate float64, n, maxInFlight int, fn func(i int, due time.Time), onSkip func(i int)) (start time.Time, skipped int) {
	start = time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				wg.Wait()
				return start, skipped + n - i
			case <-timer.C:
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			skipped++
			onSkip(i)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i, due)
		}()
	}
	wg.Wait()
	return start, skipped
}

// Due is the due time of event i of a schedule that started at start.
func Due(start time.Time, rate float64, i int) time.Time {
	return start.Add(time.Duration(i) * time.Duration(float64(time.Second)/rate))
}
