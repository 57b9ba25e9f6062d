package session

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
)

const tracerName = "github.com/courierhq/courier/services/ws-edge/internal/session"

// start finds where the session begins — after replaying the inbox past
// the client's cursor (resume), or at the inbox head (live-only) — writes
// the synced frame and tells the hub, which releases the user's
// deliveries from there. Deliveries that arrived meanwhile are merged at
// the seam: none lost, none twice.
func (w *writer) start() error {
	s := w.s
	if s.p.Resume {
		if err := w.clampCursor(); err != nil {
			return err
		}
		_, span := otel.Tracer(tracerName).Start(context.Background(), "inbox replay",
			trace.WithAttributes(attribute.String("courier.session.id", s.p.ID), attribute.Int64("courier.inbox.after", s.last)))
		from := s.last
		err := w.catchUpAs(inboxreader.Resume)
		span.SetAttributes(attribute.Int64("courier.replay.count", s.last-from))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "replay failed")
		}
		span.End()
		if err != nil {
			return err
		}
	} else {
		// Registered in the hub before this read, so every delivery above
		// the head reaches the session; those at or below it were
		// committed before the session existed.
		ctx, cancel := context.WithTimeout(context.Background(), s.deps.Options.StoreTimeout)
		head, err := s.deps.Reader.Head(ctx, s.p.User)
		cancel()
		if err != nil {
			return fmt.Errorf("read the inbox head of %s: %w", s.p.User, err)
		}
		s.last = head
		s.mu.Lock()
		w.goLiveLocked()
		s.mu.Unlock()
	}
	// A live-only session learns its starting cursor too, so a client that
	// loses the connection before its first message resumes without a gap.
	if err := w.write(frame.Synced(s.last)); err != nil {
		return fmt.Errorf("write synced frame: %w", err)
	}
	s.deps.Starter.Start(s.p.User, s.last)
	return nil
}

// clampCursor starts a session whose cursor is past the end of its inbox at
// the head instead, and tells the client with an error frame
// "cursor_ahead" (its synced frame then carries the head). Such a cursor was
// never handed out (positions are read from the inbox before a frame carries
// them); trusting it would make it the user's ordering baseline on the pod,
// and the hub would drop every later delivery, for all of the user's
// sessions here, as already written. Clamping rather than closing: a client
// that resumes with the same cursor after a close would loop.
func (w *writer) clampCursor() error {
	s := w.s
	ctx, cancel := context.WithTimeout(context.Background(), s.deps.Options.StoreTimeout)
	head, err := s.deps.Reader.Head(ctx, s.p.User)
	cancel()
	if err != nil {
		return fmt.Errorf("read the inbox head of %s: %w", s.p.User, err)
	}
	if s.last <= head {
		return nil
	}
	s.deps.Log.Info("cursor beyond the inbox head; starting at the head", "session_id", s.p.ID, "user", s.p.User,
		"cursor", s.last, "head", head)
	msg := fmt.Sprintf("cursor is past the end of your inbox (position %d, the last is %d): starting after the last; the synced frame has the cursor to keep", s.last, head)
	s.last = head
	if err := w.write(frame.Error("cursor_ahead", msg)); err != nil {
		return fmt.Errorf("write cursor_ahead frame: %w", err)
	}
	return nil
}

// catchUp reads what the session missed when it fell behind.
func (w *writer) catchUp() error { return w.catchUpAs(inboxreader.CatchUp) }

// catchUpAs writes the inbox after the last written position page by page
// until it reaches the head, then merges what arrived meanwhile and goes
// live. Deliveries arriving during the reads wait in the bounded queue; if
// it overflows, the reads simply go on.
func (w *writer) catchUpAs(p inboxreader.Purpose) error {
	s := w.s
	o := s.deps.Options
	hole := int64(-1)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return errClosing
		}
		s.lost = false
		s.mu.Unlock()

		// The wait may include the pod's read budget, held by pages being
		// written, each within PageWriteTimeout.
		ctx, cancel := context.WithTimeout(context.Background(), o.StoreTimeout+o.PageWriteTimeout)
		page, err := s.deps.Reader.Read(ctx, p, s.p.User, s.last, o.ReplayLimit)
		cancel()
		if err != nil {
			return fmt.Errorf("read the inbox of %s after %d: %w", s.p.User, s.last, err)
		}
		err = w.writePage(page.Items)
		page.Done()
		if err != nil {
			return err
		}
		if page.More {
			continue
		}
		s.mu.Lock()
		if s.lost {
			s.mu.Unlock()
			continue
		}
		if next := firstAfter(s.queue, s.last); next > s.last+1 && hole != s.last {
			// What arrived starts past what the read found: those positions
			// were stored after the read began. Read once more; a position
			// still missing then is a hole the inbox does not have, and the
			// seam steps over it.
			hole = s.last
			s.mu.Unlock()
			continue
		}
		w.goLiveLocked()
		s.mu.Unlock()
		return nil
	}
}

// firstAfter returns the smallest position above last in items (sorted),
// or last+1 when there is none.
func firstAfter(items []frame.Item, last int64) int64 {
	for _, it := range items {
		if it.Seq > last {
			return it.Seq
		}
	}
	return last + 1
}

// goLiveLocked keeps the waiting deliveries above the last written
// position and switches to live: the writer writes them. Called with s.mu
// held.
func (w *writer) goLiveLocked() {
	s := w.s
	s.queuedLast = s.last
	queue := s.queue[:0] // filtered in place
	for _, it := range s.queue {
		if it.Seq <= s.queuedLast {
			s.deps.Metrics.DroppedDuplicate.Inc()
			continue
		}
		if it.Seq != s.queuedLast+1 {
			s.deps.Log.Warn("stepping over positions missing from the inbox", "session_id", s.p.ID, "user", s.p.User,
				"after", s.queuedLast, "next", it.Seq)
		}
		queue = append(queue, it)
		s.queuedLast = it.Seq
	}
	clear(s.queue[len(queue):])
	s.queue, s.lost = queue, false
	s.mode = live
	if len(queue) > 0 {
		s.signal()
	}
}
