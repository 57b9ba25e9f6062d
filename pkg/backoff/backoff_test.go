package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayDoublesCapsAndJitters(t *testing.T) {
	p := Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Budget: 30 * time.Second}
	for _, tc := range []struct {
		n      int
		lo, hi time.Duration
	}{
		{0, 100 * time.Millisecond, 200 * time.Millisecond},
		{1, 200 * time.Millisecond, 400 * time.Millisecond},
		{3, 800 * time.Millisecond, 1600 * time.Millisecond},
		{5, 2500 * time.Millisecond, 5 * time.Second}, // 6.4s capped to 5s
		{60, 2500 * time.Millisecond, 5 * time.Second},
	} {
		if got := p.Delay(tc.n, func() float64 { return 0 }); got != tc.lo {
			t.Errorf("Delay(%d) low end = %s, want %s", tc.n, got, tc.lo)
		}
		if got := p.Delay(tc.n, func() float64 { return 0.999999 }); got >= tc.hi || got < tc.hi*99/100 {
			t.Errorf("Delay(%d) high end = %s, want just under %s", tc.n, got, tc.hi)
		}
		if got := p.Delay(tc.n, nil); got < tc.lo || got >= tc.hi {
			t.Errorf("Delay(%d) = %s outside [%s, %s)", tc.n, got, tc.lo, tc.hi)
		}
	}
}

func TestNextStopsAtBudget(t *testing.T) {
	p := Policy{Initial: time.Second, Max: 4 * time.Second, Budget: 10 * time.Second}
	start := time.Unix(0, 0)
	half := func() float64 { return 0.5 }
	// Simulate an operation that fails instantly: the waits must add up to
	// no more than the budget, and the schedule must stop.
	now, retries := start, 0
	for {
		d, ok := p.Next(retries, start, now, half)
		if !ok {
			break
		}
		now = now.Add(d)
		retries++
	}
	if spent := now.Sub(start); spent > p.Budget || spent < p.Budget/2 {
		t.Fatalf("spent %s of a %s budget in %d retries", spent, p.Budget, retries)
	}
	if retries < 3 {
		t.Fatalf("only %d retries", retries)
	}
}

func TestSleepStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep ignored the cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep did not complete")
	}
}
