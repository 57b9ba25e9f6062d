package sequencer_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/courierhq/courier/services/ws-edge/internal/sequencer"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// offer feeds seqs (arriving 1 ms apart) and returns what was released.
func offer(b *sequencer.Buffer[int64], seqs ...int64) (out []int64, results []sequencer.Result) {
	for i, s := range seqs {
		var r sequencer.Result
		out, r, _ = b.Offer(s, s, at(i), out)
		results = append(results, r)
	}
	return out, results
}

func TestBuffer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		start   int64
		seqs    []int64
		want    []int64
		results []sequencer.Result
		gap     [2]int64 // after, upTo; zero: no gap
		held    int
	}{
		{"in order", 0, []int64{1, 2, 3}, []int64{1, 2, 3},
			[]sequencer.Result{sequencer.Released, sequencer.Released, sequencer.Released}, [2]int64{}, 0},
		{"after a non-zero start", 41, []int64{42, 43}, []int64{42, 43},
			[]sequencer.Result{sequencer.Released, sequencer.Released}, [2]int64{}, 0},
		{"reordered within the window", 0, []int64{2, 3, 1}, []int64{1, 2, 3},
			[]sequencer.Result{sequencer.Held, sequencer.Held, sequencer.Released}, [2]int64{}, 0},
		{"duplicates, released and held", 0, []int64{1, 1, 3, 3}, []int64{1},
			[]sequencer.Result{sequencer.Released, sequencer.Duplicate, sequencer.Held, sequencer.Duplicate}, [2]int64{1, 2}, 1},
		{"below the start", 10, []int64{9, 10, 11}, []int64{11},
			[]sequencer.Result{sequencer.Duplicate, sequencer.Duplicate, sequencer.Released}, [2]int64{}, 0},
		{"a real gap", 0, []int64{1, 4, 5}, []int64{1},
			[]sequencer.Result{sequencer.Released, sequencer.Held, sequencer.Held}, [2]int64{1, 3}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &sequencer.Buffer[int64]{Max: 100}
			b.Start(tc.start, nil)
			out, results := offer(b, tc.seqs...)
			if !slices.Equal(out, tc.want) || !slices.Equal(results, tc.results) {
				t.Fatalf("released %v %v, want %v %v", out, results, tc.want, tc.results)
			}
			after, upTo, _, ok := b.Gap()
			if ok != (tc.gap != [2]int64{}) || [2]int64{after, upTo} != tc.gap && ok || b.Len() != tc.held {
				t.Fatalf("gap %d..%d %v held %d, want %v held %d", after, upTo, ok, b.Len(), tc.gap, tc.held)
			}
		})
	}
}

// Items that arrive before the sessions know where they stand wait, and
// Start releases what follows the start.
func TestBufferHoldsUntilStart(t *testing.T) {
	b := &sequencer.Buffer[int64]{}
	out, results := offer(b, 7, 5, 6)
	if len(out) != 0 || !slices.Equal(results, []sequencer.Result{sequencer.Held, sequencer.Held, sequencer.Held}) {
		t.Fatalf("before Start: %v %v", out, results)
	}
	if _, _, _, ok := b.Gap(); ok {
		t.Fatal("a gap before Start")
	}
	if out := b.Start(5, nil); !slices.Equal(out, []int64{6, 7}) || b.Last() != 7 {
		t.Fatalf("Start(5) released %v, last %d", out, b.Last())
	}
	if out := b.Start(1, nil); len(out) != 0 || b.Last() != 7 {
		t.Fatal("a second Start changed the buffer")
	}
}

// The late item reports how long the ones after it waited.
func TestLateness(t *testing.T) {
	b := &sequencer.Buffer[int64]{}
	b.Start(0, nil)
	b.Offer(2, 2, at(0), nil)
	b.Offer(3, 3, at(100), nil)
	out, r, late := b.Offer(1, 1, at(350), nil)
	if r != sequencer.Released || late != 350*time.Millisecond || !slices.Equal(out, []int64{1, 2, 3}) {
		t.Fatalf("late item: %v %v late %s", out, r, late)
	}
	if _, _, late := b.Offer(4, 4, at(400), nil); late != 0 {
		t.Fatalf("an in-order item counted late by %s", late)
	}
}

// A gap that never fills live is read; the entries read are released with
// what was held, and the original arriving afterwards is a late duplicate.
func TestGapFilledFromInboxThenLate(t *testing.T) {
	b := &sequencer.Buffer[int64]{}
	b.Start(0, nil)
	out, _ := offer(b, 1, 4, 6)
	after, upTo, since, ok := b.Gap()
	if !ok || after != 1 || upTo != 3 || !since.Equal(at(1)) {
		t.Fatalf("gap %d..%d since %v %v", after, upTo, since, ok)
	}
	read := []sequencer.Entry[int64]{{Seq: 2, V: 2}, {Seq: 3, V: 3}}
	out = b.Fill(read, after, upTo, since, out)
	if !slices.Equal(out, []int64{1, 2, 3, 4}) {
		t.Fatalf("after fill: %v", out)
	}
	if after, upTo, _, ok := b.Gap(); !ok || after != 4 || upTo != 5 {
		t.Fatalf("second gap %d..%d %v", after, upTo, ok)
	}
	_, r, late := b.Offer(3, 3, at(1500), nil)
	if r != sequencer.Duplicate || late != 1499*time.Millisecond {
		t.Fatalf("original of a read position: %v late %s", r, late)
	}
	// 5 arrives live after all: it closes the second gap.
	if out, r, _ := b.Offer(5, 5, at(1600), nil); r != sequencer.Released || !slices.Equal(out, []int64{5, 6}) {
		t.Fatalf("5: %v %v", out, r)
	}
}

// A hole the inbox does not have either is skipped: the buffer never stalls.
func TestFillSkipsAHole(t *testing.T) {
	b := &sequencer.Buffer[int64]{}
	b.Start(0, nil)
	offer(b, 3)
	if out := b.Fill(nil, 0, 2, at(0), nil); !slices.Equal(out, []int64{3}) || b.Last() != 3 {
		t.Fatalf("fill of nothing: %v last %d", out, b.Last())
	}
}

// A fill that comes back after the positions arrived live releases nothing
// twice.
func TestFillAfterLiveArrival(t *testing.T) {
	b := &sequencer.Buffer[int64]{}
	b.Start(0, nil)
	offer(b, 3)
	out, _, _ := b.Offer(1, 1, at(5), nil)
	out, _, _ = b.Offer(2, 2, at(6), out)
	out = b.Fill([]sequencer.Entry[int64]{{Seq: 1, V: 1}, {Seq: 2, V: 2}}, 0, 2, at(0), out)
	if !slices.Equal(out, []int64{1, 2, 3}) {
		t.Fatalf("released %v", out)
	}
}

// Past Max the buffer drops further items instead of growing; the gap read
// brings them back.
func TestBufferOverflowDrops(t *testing.T) {
	b := &sequencer.Buffer[int64]{Max: 3}
	b.Start(0, nil)
	_, results := offer(b, 2, 3, 4, 5)
	if results[3] != sequencer.Dropped || b.Len() != 3 {
		t.Fatalf("results %v held %d", results, b.Len())
	}
	if out := b.Fill([]sequencer.Entry[int64]{{Seq: 1, V: 1}}, 0, 1, at(0), nil); !slices.Equal(out, []int64{1, 2, 3, 4}) {
		t.Fatalf("after the fill: %v", out)
	}
}

// Whatever the arrival order and duplication, the released sequence is
// exactly 1..n once the gaps are filled.
func TestBufferShuffled(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 1))
		n := 1 + r.IntN(200)
		var seqs []int64
		for i := range n {
			seqs = append(seqs, int64(i+1))
			if r.IntN(5) == 0 {
				seqs = append(seqs, int64(1+r.IntN(i+1)))
			}
		}
		// Local shuffles only: each item moves at most 20 places.
		for i := range seqs {
			j := min(len(seqs)-1, i+r.IntN(20))
			seqs[i], seqs[j] = seqs[j], seqs[i]
		}
		b := &sequencer.Buffer[int64]{Max: 1000}
		b.Start(0, nil)
		out, _ := offer(b, seqs...)
		if !slices.Equal(out, seqRange(1, n)) {
			t.Fatalf("seed %d: released %v", seed, out)
		}
		if b.Len() != 0 {
			t.Fatalf("seed %d: %d still held", seed, b.Len())
		}
	}
}

func seqRange(from, to int) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, int64(i))
	}
	return out
}

func TestReset(t *testing.T) {
	b := &sequencer.Buffer[int64]{Max: 5}
	b.Start(0, nil)
	offer(b, 3, 4)
	if got := b.Reset(); !slices.Equal(got, []int64{3, 4}) || b.Started() || b.Len() != 0 || b.Max != 5 {
		t.Fatalf("reset returned %v; started %v len %d max %d", got, b.Started(), b.Len(), b.Max)
	}
}

func TestWindowAdapts(t *testing.T) {
	w := sequencer.NewWindow(time.Second, 10*time.Second)
	now := t0
	if got := w.At(now); got != time.Second {
		t.Fatalf("initial window %s", got)
	}
	w.Observe(300*time.Millisecond, now)
	if got := w.At(now); got != time.Second {
		t.Fatalf("below the floor: %s", got)
	}
	w.Observe(2*time.Second, now.Add(5*time.Second))
	if got := w.At(now.Add(6 * time.Second)); got != 4*time.Second {
		t.Fatalf("after a 2s-late delivery: %s, want 4s", got)
	}
	w.Observe(time.Minute, now.Add(7*time.Second))
	if got := w.At(now.Add(8 * time.Second)); got != 10*time.Second {
		t.Fatalf("capped: %s", got)
	}
	// A minute and more later the observations have aged out.
	if got := w.At(now.Add(80 * time.Second)); got != time.Second {
		t.Fatalf("after a quiet minute: %s", got)
	}
	for i := range 20 {
		w.Observe(time.Duration(i)*time.Millisecond, now.Add(time.Duration(i)*10*time.Second))
	}
	if got := w.At(now.Add(200 * time.Second)); got != time.Second {
		t.Fatalf("small lateness: %s", got)
	}
}
