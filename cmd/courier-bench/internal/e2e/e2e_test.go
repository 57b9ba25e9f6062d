package e2e

import (
	"strings"
	"testing"
	"time"
)

// pairs is a tracker of n messages, each to recipients 0 and 1, all
// accepted and due at base.
func pairs(n int, base time.Time) *tracker {
	tr := newTracker(4, [2]int{n, 2})
	for s := range n {
		tr.to[s] = []int{0, 1}
		tr.due[s].Store(base.UnixNano())
		tr.state[s].Store(accepted)
	}
	return tr
}

// The tracker's accounting: every accepted message is delivered or lost,
// a second frame marks it duplicated, a refused one that still arrives is
// unconfirmed.
func TestTrackerAccounting(t *testing.T) {
	base := time.Unix(1000, 0)
	tr := pairs(5, base)
	tr.state[3].Store(refused) // refused, yet delivered
	tr.state[4].Store(refused)
	s0, s1 := &session{r: 0}, &session{r: 1}
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	tr.frame(at(10), s0, 0, 1)
	tr.frame(at(30), s1, 0, 1)
	tr.frame(at(20), s0, 1, 2) // message 1 reaches recipient 0 only: lost
	tr.frame(at(40), s0, 2, 3)
	tr.frame(at(50), s1, 2, 2)
	tr.frame(at(60), s1, 2, 2) // duplicated
	tr.frame(at(70), s0, 3, 4)

	c, lat, last := tr.count(0, 5, 0, map[string]int{"503": 2})
	if c.Scheduled != 5 || c.Accepted != 3 || c.Delivered != 2 || c.Lost != 1 || c.Duplicated != 1 || c.Unconfirmed != 1 ||
		c.Unexpected != 0 || c.OutOfOrder != 0 {
		t.Fatalf("counts %+v", c)
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

// Each fault fails the step's Check, and names itself: a frame for the
// wrong recipient (which also leaves the right one's frame missing), a
// duplicate, a reordered frame, a missing one.
func TestTrackerFailsEachFault(t *testing.T) {
	base := time.Unix(1000, 0)
	clean := func(tr *tracker, s0, s1 *session, skip int) {
		for s := range 3 {
			if s != skip {
				tr.frame(base, s0, int64(s), int64(s+1))
				tr.frame(base, s1, int64(s), int64(s+1))
			}
		}
	}
	cases := map[string]func(tr *tracker, s0, s1, s2 *session){
		"not addressed": func(tr *tracker, s0, s1, s2 *session) {
			clean(tr, s0, s1, -1)
			tr.frame(base, s2, 1, 1) // recipient 2 was not addressed
		},
		"duplicated": func(tr *tracker, s0, s1, s2 *session) {
			clean(tr, s0, s1, -1)
			tr.frame(base, s1, 2, 3)
		},
		"out of order": func(tr *tracker, s0, s1, s2 *session) {
			tr.frame(base, s0, 0, 1)
			tr.frame(base, s0, 2, 3)
			tr.frame(base, s0, 1, 2) // position 2 after position 3
			clean(tr, &session{r: 9}, s1, -1)
		},
		"lost": func(tr *tracker, s0, s1, s2 *session) {
			clean(tr, s0, s1, 1)
			tr.frame(base, s0, 1, 2) // recipient 1 never gets message 1
		},
	}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			tr := pairs(3, base)
			fault(tr, &session{r: 0}, &session{r: 1}, &session{r: 2})
			c, _, _ := tr.count(0, 3, 0, nil)
			err := c.Check()
			if err == nil {
				t.Fatalf("counts %+v passed", c)
			}
			if !strings.Contains(err.Error(), name) {
				t.Fatalf("error %q does not name %q", err, name)
			}
		})
	}
	tr := pairs(3, base)
	clean(tr, &session{r: 0}, &session{r: 1}, -1)
	if c, _, _ := tr.count(0, 3, 0, nil); c.Check() != nil || c.Delivered != 3 {
		t.Fatalf("a clean step: %+v, %v", c, c.Check())
	}
}

// A group message is addressed to every connected recipient.
func TestTrackerGroupRecipients(t *testing.T) {
	tr := newTracker(5, [2]int{2, 2}, [2]int{3, 5})
	if len(tr.to[0]) != 2 || len(tr.to[2]) != 5 || tr.max != 5 {
		t.Fatalf("recipients %v", tr.to)
	}
	if tr.to[0][0] == tr.to[0][1] {
		t.Fatalf("a pair with one user twice: %v", tr.to[0])
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
