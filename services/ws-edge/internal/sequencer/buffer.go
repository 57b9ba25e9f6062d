package sequencer

import (
	"cmp"
	"slices"
	"time"
)

// Result says what Offer did with an item.
type Result int

const (
	// Released: the item was next, it (and what it unblocked) is ready.
	Released Result = iota
	// Held: the item waits for a missing position before it.
	Held
	// Duplicate: the position was released already (or is held).
	Duplicate
	// Dropped: the item was past a gap and the buffer is full; it will be
	// read from the inbox with the gap.
	Dropped
)

func (r Result) String() string {
	return [...]string{"released", "held", "duplicate", "dropped"}[r]
}

// Entry is an item at its inbox position.
type Entry[T any] struct {
	Seq int64
	V   T
}

type held[T any] struct {
	Entry[T]
	at time.Time
}

// Buffer releases one user's items in position order. It is plain data
// with no clock or locks of its own: the Set passes the time and
// serializes the calls per user.
type Buffer[T any] struct {
	// Max bounds the held items; past it, further items beyond the gap
	// are dropped (they are stored: the gap read brings them).
	Max int

	started bool
	last    int64     // highest released position, once started
	held    []held[T] // sorted by Seq, all > last

	// The range last filled from the inbox and when its wait began, so a
	// live item that arrives after its gap was read counts as late.
	filledAfter, filledUpTo int64
	filledSince             time.Time
}

// Started reports whether Start was called.
func (b *Buffer[T]) Started() bool { return b.started }

// Last is the highest released position (0 before Start).
func (b *Buffer[T]) Last() int64 { return b.last }

// Len is the number of held items.
func (b *Buffer[T]) Len() int { return len(b.held) }

// Start sets where the user's sessions stand: everything up to pos is
// theirs already (read from the inbox). Items held before Start that follow
// pos without a gap are appended to out; the rest wait. A second Start is
// ignored.
func (b *Buffer[T]) Start(pos int64, out []T) []T {
	if b.started {
		return out
	}
	b.started, b.last = true, pos
	i := 0
	for i < len(b.held) && b.held[i].Seq <= pos {
		i++
	}
	b.held = slices.Delete(b.held, 0, i)
	return b.flush(out)
}

// Offer takes an item that arrived live at now and appends to out the
// items it makes ready, in order. late is set when the item was missing
// while later ones waited (it was that late), including when its gap was
// already read from the inbox and the item is a duplicate by now.
func (b *Buffer[T]) Offer(seq int64, v T, now time.Time, out []T) (_ []T, r Result, late time.Duration) {
	if b.started && seq <= b.last {
		if seq > b.filledAfter && seq <= b.filledUpTo {
			late = now.Sub(b.filledSince)
		}
		return out, Duplicate, late
	}
	if b.started && seq == b.last+1 {
		if len(b.held) > 0 {
			late = now.Sub(b.held[0].at)
		}
		b.last = seq
		out = append(out, v)
		return b.flush(out), Released, late
	}
	i, found := slices.BinarySearchFunc(b.held, seq, func(h held[T], s int64) int { return cmp.Compare(h.Seq, s) })
	if found {
		return out, Duplicate, 0
	}
	if b.Max > 0 && len(b.held) >= b.Max {
		return out, Dropped, 0
	}
	b.held = slices.Insert(b.held, i, held[T]{Entry: Entry[T]{Seq: seq, V: v}, at: now})
	return out, Held, 0
}

// Gap returns the missing positions after..upTo (inclusive) before the
// first held item, and since when that item has waited for them.
func (b *Buffer[T]) Gap() (after, upTo int64, since time.Time, ok bool) {
	if !b.started || len(b.held) == 0 {
		return 0, 0, time.Time{}, false
	}
	return b.last, b.held[0].Seq - 1, b.held[0].at, true
}

// Fill takes the entries read from the inbox for the positions after..upTo
// (sorted by Seq; a Gap the caller read) and appends what is ready to out.
// Positions up to upTo that the read did not return are given up on (their
// sessions catch up from the inbox if they ever appear): the buffer never
// stalls on a hole. Items released live meanwhile are skipped.
func (b *Buffer[T]) Fill(entries []Entry[T], after, upTo int64, since time.Time, out []T) []T {
	if !b.started {
		return out
	}
	for _, e := range entries {
		if e.Seq > b.last && e.Seq <= upTo {
			b.last = e.Seq
			out = append(out, e.V)
		}
	}
	b.last = max(b.last, upTo)
	b.filledAfter, b.filledUpTo, b.filledSince = after, upTo, since
	i := 0
	for i < len(b.held) && b.held[i].Seq <= b.last {
		i++
	}
	b.held = slices.Delete(b.held, 0, i)
	return b.flush(out)
}

// Reset forgets everything held (returned, so the caller can release
// them) and the baseline.
func (b *Buffer[T]) Reset() []T {
	out := make([]T, 0, len(b.held))
	for _, h := range b.held {
		out = append(out, h.V)
	}
	*b = Buffer[T]{Max: b.Max}
	return out
}

// flush releases the held items that follow last without a gap.
func (b *Buffer[T]) flush(out []T) []T {
	i := 0
	for i < len(b.held) && b.held[i].Seq == b.last+1 {
		b.last = b.held[i].Seq
		out = append(out, b.held[i].V)
		i++
	}
	b.held = slices.Delete(b.held, 0, i)
	return out
}
