package wsclient

import "fmt"

// Order checks one session's frames as the protocol promises them: each
// message frame's cursor is above the previous position (inbox order, no
// repeat), and a synced frame's cursor is not below the last message's. A
// synced frame sets the position: a resume from a cursor past the inbox
// head is clamped to the head (the edge says cursor_ahead), so the synced
// cursor may be below the one the session resumed after (After).
type Order struct {
	last, lastMsg int64
	seen, msgSeen bool
	Count         struct{ Messages, OutOfOrder, NoCursor int }
}

// After starts the order after cursor position pos (a resume).
func (o *Order) After(pos int64) { o.last, o.seen = pos, true }

// Last is the position of the last message or synced frame seen, or the
// one resumed after (-1 when none): where the session would resume.
func (o *Order) Last() int64 {
	if !o.seen {
		return -1
	}
	return o.last
}

// Observe checks f; the error names what broke the order (the frame is
// counted either way).
func (o *Order) Observe(f Frame) error {
	switch f.Kind {
	case Message:
		o.Count.Messages++
		if f.Cursor < 0 {
			o.Count.NoCursor++
			return fmt.Errorf("message %s has no valid cursor", f.ID)
		}
		if o.seen && f.Cursor <= o.last {
			o.Count.OutOfOrder++
			return fmt.Errorf("message %s at position %d after position %d", f.ID, f.Cursor, o.last)
		}
		o.last, o.seen = f.Cursor, true
		o.lastMsg, o.msgSeen = f.Cursor, true
	case Synced:
		if f.Cursor < 0 {
			o.Count.NoCursor++
			return fmt.Errorf("synced frame has no valid cursor")
		}
		if o.msgSeen && f.Cursor < o.lastMsg {
			o.Count.OutOfOrder++
			return fmt.Errorf("synced at position %d after message position %d", f.Cursor, o.lastMsg)
		}
		o.last, o.seen = f.Cursor, true
	}
	return nil
}
