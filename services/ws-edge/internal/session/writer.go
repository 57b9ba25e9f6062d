package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/services/ws-edge/internal/frame"
)

// writer is the session's writing side; it runs on the goroutine that
// serves the connection.
type writer struct {
	s    *Session
	conn *websocket.Conn
	// stall fires when a write makes no progress for WriteTimeout.
	stall *time.Timer
	// spare is the queue slice handed back to Deliver after a drain, so a
	// steady stream allocates nothing; dropped when it grew large, so an
	// idle session holds little.
	spare []frame.Item
}

var errClosing = errors.New("session closing")

// bufPool holds write buffers: a session needs one only while it writes.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (w *writer) run() {
	s := w.s
	select {
	case <-s.closing:
		return
	default:
	}
	defer func() {
		if w.stall != nil {
			w.stall.Stop()
		}
	}()
	if err := w.write(frame.Hello(s.p.ID, s.p.Pod, s.p.User, s.p.Resume)); err != nil {
		s.Close(StatusAbnormal, "write failed")
		return
	}
	if err := w.start(); err != nil {
		if !errors.Is(err, errClosing) {
			s.deps.Log.Warn("resume failed", "session_id", s.p.ID, "user", s.p.User, "err", err)
			s.Close(websocket.StatusInternalError, "resume failed")
		}
		return
	}
	if iv := s.deps.Options.PingInterval; iv > 0 {
		t := time.NewTimer(iv)
		defer t.Stop()
		w.loop(t.C, func() { w.ping(); t.Reset(iv) })
		return
	}
	w.loop(nil, nil)
}

func (w *writer) loop(pingC <-chan time.Time, onPing func()) {
	s := w.s
	for {
		select {
		case <-s.closing:
			return
		case <-pingC:
			onPing()
			continue
		case <-s.wake:
		}
		if err := w.drain(); err != nil {
			if !errors.Is(err, errClosing) {
				s.deps.Log.Debug("write failed", "session_id", s.p.ID, "err", err)
				s.Close(StatusAbnormal, "write failed")
			}
			return
		}
	}
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
		ctrl := s.control
		s.control = nil
		closeAfter := s.closeAfter
		items := s.queue
		s.queue = w.spare
		w.spare = nil
		catchUp := s.mode == catchingUp
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
			continue
		}
		if len(ctrl) == 0 && len(items) == 0 {
			return nil
		}
	}
}

// writeItems writes message frames in order: one WebSocket message each,
// or, for a batch=1 client, as many as fit in MaxBatchBytes per message.
// Every item's reference is released.
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
		err := w.write(buf)
		if err != nil {
			release(items)
			return err
		}
		w.wrote(items[:n], began)
		items = items[n:]
	}
	return nil
}

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
			if !it.Handed.IsZero() {
				m.QueueWait.Observe(began.Sub(it.Handed).Seconds())
			}
		}
		it.M.Release()
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
// does not read. The writer is blocked in that write, so the close starts
// here; the library drops the connection after its close handshake
// timeout if the client stays silent, which unblocks the write.
func (w *writer) stalled() {
	s := w.s
	s.mu.Lock()
	already := s.closed
	s.closeLocked(websocket.StatusPolicyViolation, "client not reading")
	s.mu.Unlock()
	if already {
		return
	}
	s.deps.Metrics.Stalled.Inc()
	_ = w.conn.Close(websocket.StatusPolicyViolation, "client not reading")
}

// ping sends a keepalive ping on a short-lived goroutine (the library's
// Ping waits for the pong, which the reader receives), so an idle session
// keeps two goroutines. A peer that does not answer within the interval
// is dropped.
func (w *writer) ping() {
	s := w.s
	if !s.pinging.CompareAndSwap(false, true) {
		return // the previous ping is still waiting; it will time out
	}
	go func() {
		defer s.pinging.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), s.deps.Options.PingInterval)
		defer cancel()
		if err := w.conn.Ping(ctx); err != nil {
			s.Close(StatusAbnormal, "ping timeout")
		}
	}()
}
