package e2e

import (
	"strings"
	"testing"
	"time"
)

// The tracker's accounting: every accepted message is delivered or lost,
// a second frame marks it duplicated, a refused one that still arrives is
// unconfirmed, and frames for other recipients or unknown sequences count
// for nothing.
func TestTrackerAccounting(t *testing.T) {
	tr := newTracker(5, 4)
	for s := range 5 {
		tr.to[s] = [2]int{0, 1}
	}
	base := time.Unix(1000, 0)
	for s := range 5 {
		tr.due[s].Store(base.UnixNano())
	}
	tr.state[0].Store(accepted) // both recipients, once
	tr.state[1].Store(accepted) // one recipient only: lost
	tr.state[2].Store(accepted) // both, one of them twice: duplicated
	tr.state[3].Store(refused)  // refused, yet delivered
	tr.state[4].Store(refused)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	tr.frame(at(10), 0, 0)
	tr.frame(at(30), 1, 0)
	tr.frame(at(20), 0, 1)
	tr.frame(at(40), 0, 2)
	tr.frame(at(50), 1, 2)
	tr.frame(at(60), 1, 2)
	tr.frame(at(70), 0, 3)
	tr.frame(at(80), 2, 0)  // not a recipient of message 0
	tr.frame(at(90), 0, 99) // no such message

	c, lat, last := tr.count(0, 5, 0, map[string]int{"503": 2})
	want := Counts{Scheduled: 5, Accepted: 3, Delivered: 2, Lost: 1, Duplicated: 1, Unconfirmed: 1, Refused: map[string]int{"503": 2}}
	if c.Scheduled != want.Scheduled || c.Accepted != want.Accepted || c.Delivered != want.Delivered ||
		c.Lost != want.Lost || c.Duplicated != want.Duplicated || c.Unconfirmed != want.Unconfirmed {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	if err := c.Check(); err != nil {
		t.Fatalf("complete accounting reported a hole: %v", err)
	}
	if len(lat) != 5 { // first frames of accepted messages: 2 + 1 + 2
		t.Fatalf("%d latencies, want 5: %v", len(lat), lat)
	}
	if !last.Equal(at(50)) {
		t.Fatalf("last first-arrival %v, want %v (a duplicate is not an arrival)", last, at(50))
	}
	if n := tr.undelivered(0, 5); n != 1 {
		t.Fatalf("undelivered = %d, want 1", n)
	}
}

func TestCountsCheckFindsHoles(t *testing.T) {
	for _, c := range []Counts{
		{Scheduled: 3, Accepted: 2, Delivered: 2},                                  // one message neither accepted nor refused
		{Scheduled: 2, Accepted: 2, Delivered: 1},                                  // one accepted message neither delivered nor lost
		{Scheduled: 2, Skipped: 1, Accepted: 0, Refused: map[string]int{"429": 2}}, // counted twice
	} {
		if err := c.Check(); err == nil {
			t.Errorf("Check(%+v) found no hole", c)
		}
	}
}

func TestBrokenNamesTheReason(t *testing.T) {
	ok := StepResult{Counts: Counts{Scheduled: 10, Accepted: 10, Delivered: 10}}
	ok.Latency.P99 = 900
	if why := broken(ok, time.Second); why != "" {
		t.Fatalf("a clean rung under the bound is broken: %q", why)
	}
	cases := map[string]StepResult{"lost": {Counts: Counts{Lost: 1}}, "refused": {Counts: Counts{Refused: map[string]int{"503": 1}}},
		"skipped": {Counts: Counts{Skipped: 1}}}
	slow := ok
	slow.Latency.P99 = 1500
	cases["p99"] = slow
	for want, s := range cases {
		if why := broken(s, time.Second); !strings.Contains(why, want) {
			t.Errorf("broken = %q, want it to mention %q", why, want)
		}
	}
}
