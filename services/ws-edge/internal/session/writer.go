package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
)

// writer is the session's writing side. Its state lives as long as the
// session, but its goroutine only while there is something to write
// (Session.signal starts one; run ends it).
type writer struct {
	s    *Session
	conn *websocket.Conn
	// started: the first writer has written the hello frame and found
	// where the session starts.
	started bool
	// stall fires when a write makes no progress for WriteTimeout.
	stall *time.Timer
	// spare is the queue slice handed back to Deliver after a drain, so a
	// steady stream allocates nothing; dropped when the writer goes idle,
	// so an idle session holds no buffer.
	spare []frame.Item
}

var errClosing = errors.New("session closing")

// bufPool holds write buffers: a session needs one only while it writes.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// run is one writer goroutine: it starts the session if no writer has yet,
// writes what waits, and ends when nothing does. Once the session is
// closed, the writer of the moment closes the connection and no other
// starts.
func (w *writer) run() {
	s := w.s
	defer s.writers.Done()
	if !w.started {
		w.started = true
		if err := w.begin(); err != nil {
			w.finish()
			return
		}
	}
	err := w.drain()
	if err == nil {
		return // idle: the next delivery starts another writer
	}
	if !errors.Is(err, errClosing) {
		s.deps.Log.Debug("write failed", "session_id", s.p.ID, "err", err)
		s.Close(StatusAbnormal, "write failed")
	}
	w.finish()
}

// begin writes the hello frame, starts the session (replay or head) and
// arms the keepalive pings.
func (w *writer) begin() error {
	s := w.s
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errClosing
	}
	if err := w.write(frame.Hello(s.p.ID, s.p.Pod, s.p.User, s.p.Resume)); err != nil {
		s.Close(StatusAbnormal, "write failed")
		return err
	}
	if err := w.start(); err != nil {
		if errors.Is(err, inbox.ErrCursorExpired) {
			// The client reloads the newest page and resumes from there
			// instead of showing a silent gap.
			s.Close(StatusCursorExpired, "cursor_expired: reload the newest page and resume from its cursor")
			return err
		}
		if !errors.Is(err, errClosing) {
			s.deps.Log.Warn("resume failed", "session_id", s.p.ID, "user", s.p.User, "err", err)
			s.Close(websocket.StatusInternalError, "resume failed")
		}
		return err
	}
	if iv := s.deps.Options.PingInterval; iv > 0 {
		s.mu.Lock()
		if !s.closed {
			s.ping = time.AfterFunc(iv, w.pingOnce)
		}
		s.mu.Unlock()
	}
	return nil
}

// finish closes the connection with the session's close status. The
// close handshake is bounded by the library (5s to write, 5s to hear
// back).
func (w *writer) finish() {
	s := w.s
	if w.stall != nil {
		w.stall.Stop()
	}
	code, reason := s.CloseStatus()
	if code == StatusAbnormal {
		_ = w.conn.CloseNow()
	} else {
		_ = w.conn.Close(code, reason)
	}
	s.mu.Lock()
	s.finished = true
	w.spare = nil
	s.mu.Unlock()
}

// drain writes what waits: control frames first, then queued deliveries,
// and catches up from the inbox when the session fell behind.
func (w *writer) drain() error {
	s := w.s
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return errClosing
		}
		ctrl, eph := s.control, s.ephemeral
		s.control, s.ephemeral = nil, nil
		closeAfter := s.closeAfter
		var items []frame.Item
		if s.mode == live {
			items = s.queue
			s.queue = w.spare
			w.spare = nil
		}
		catchUp := s.mode == reading
		if len(ctrl) == 0 && len(eph) == 0 && closeAfter == nil && len(items) == 0 && !catchUp {
			// Nothing waits: this writer ends, and gives its buffers back.
			s.writing = false
			s.queue, w.spare = nil, nil
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()

		for _, b := range ctrl {
			if err := w.write(b); err != nil {
				return err
			}
		}
		if closeAfter != nil {
			s.Close(closeAfter.code, closeAfter.reason)
			return errClosing
		}
		for _, b := range eph {
			if err := w.write(b); err != nil {
				return err
			}
		}
		if err := w.writeItems(items); err != nil {
			return err
		}
		if cap(items) <= 64 {
			w.spare = items[:0]
		}
		if catchUp {
			if err := w.catchUp(); err != nil {
				return err
			}
		}
	}
}

// writeItems writes message frames in order: one WebSocket message each,
// or, for a batch=1 client, as many as fit in MaxBatchBytes per message.
func (w *writer) writeItems(items []frame.Item) error {
	if len(items) == 0 {
		return nil
	}
	s := w.s
	bp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 256<<10 {
			bufPool.Put(bp)
		}
	}()
	for len(items) > 0 {
		buf := (*bp)[:0]
		n := 0
		for n < len(items) {
			if n > 0 {
				if !s.p.Batch || len(buf)+items[n].M.Size() > s.deps.Options.MaxBatchBytes {
					break
				}
				buf = append(buf, frame.Separator)
			}
			buf = items[n].Append(buf)
			n++
		}
		*bp = buf
		began := time.Now()
		if err := w.write(buf); err != nil {
			return err
		}
		w.wrote(items[:n], began)
		items = items[n:]
	}
	return nil
}

// writePage writes one page of a replay or catch-up within
// PageWriteTimeout as a whole; past it the session ends with 1008 "client
// too slow", which gives the page's share of the read budget back.
func (w *writer) writePage(items []frame.Item) error {
	if len(items) == 0 {
		return nil
	}
	t := time.AfterFunc(w.s.deps.Options.PageWriteTimeout, w.tooSlow)
	defer t.Stop()
	return w.writeItems(items)
}

// tooSlow runs when a page was not written within PageWriteTimeout.
func (w *writer) tooSlow() { w.closeStuck("client too slow") }

// wrote accounts for items written to the socket by a write that began
// at began.
func (w *writer) wrote(items []frame.Item, began time.Time) {
	m := w.s.deps.Metrics
	m.FramesPerWrite.Observe(float64(len(items)))
	now := time.Now()
	m.SocketWrite.Observe(now.Sub(began).Seconds())
	live := 0
	for _, it := range items {
		w.s.last = it.Seq
		if !it.M.FromInbox {
			live++
			if !it.M.SentAt.IsZero() {
				m.DeliveryLatency.Observe(now.Sub(it.M.SentAt).Seconds())
			}
			if !it.M.FannedOut.IsZero() {
				m.SessionWriteLatency.Observe(now.Sub(it.M.FannedOut).Seconds())
			}
			if !it.Handed.IsZero() {
				m.QueueWait.Observe(began.Sub(it.Handed).Seconds())
			}
		}
	}
	m.WrittenLive.Add(float64(live))
	m.WrittenInb.Add(float64(len(items) - live))
}

// write writes one WebSocket message. It has no deadline of its own (a
// cancelled write makes the library drop the connection at once): the
// stall timer decides instead, so a client that stops reading is told
// 1008 if it ever reads again.
func (w *writer) write(b []byte) error {
	if w.stall == nil {
		w.stall = time.AfterFunc(w.s.deps.Options.WriteTimeout, w.stalled)
	} else {
		w.stall.Reset(w.s.deps.Options.WriteTimeout)
	}
	err := w.conn.Write(context.Background(), websocket.MessageText, b)
	w.stall.Stop()
	return err
}

// stalled runs when a write made no progress for WriteTimeout: the client
// does not read.
func (w *writer) stalled() { w.closeStuck("client not reading") }

// closeStuck closes a session whose writer is blocked in a write, with
// 1008 and reason. The writer cannot do it, so the close starts here, on
// a timer's goroutine; the library drops the connection after its close
// handshake timeout if the client stays silent, which unblocks the write.
func (w *writer) closeStuck(reason string) {
	s := w.s
	s.mu.Lock()
	already := s.closed
	s.closeLocked(websocket.StatusPolicyViolation, reason)
	s.mu.Unlock()
	if already {
		return
	}
	s.deps.Metrics.Stalled.Inc()
	_ = w.conn.Close(websocket.StatusPolicyViolation, reason)
}

// pingOnce sends a keepalive ping and waits for the pong (which the
// session's reader receives) on the timer's goroutine, then arms the next
// one. A peer that does not answer within the interval is dropped.
func (w *writer) pingOnce() {
	s := w.s
	iv := s.deps.Options.PingInterval
	ctx, cancel := context.WithTimeout(context.Background(), iv)
	err := w.conn.Ping(ctx)
	cancel()
	if err != nil {
		s.Close(StatusAbnormal, "ping timeout")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.ping.Reset(iv)
	}
}
