// Package session serves one client's WebSocket session: a bounded send
// queue fed by fan-out (which never blocks on a slow client), one writer
// goroutine that writes every frame with a timeout, a reader that handles
// the client's ack frames, ping keepalive, and resume: replaying the inbox
// from Firestore after a cursor, then switching to live deliveries with no
// gap and no reordering at the seam.
//
// Ordering: every frame a session writes carries a higher inbox position
// (seq) than the one before. Live deliveries can reach a pod out of order
// (Pub/Sub does not order the fan-out topic), so one that arrives past a
// gap is held for a short while for the missing ones; if they do not come,
// the writer reads them from Firestore: inbox positions are handed out in
// commit order, so everything below a delivered position is already
// stored. A late delivery whose position was already written is dropped as
// a duplicate.
package session

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

const tracerName = "github.com/courierhq/courier/services/ws-edge/internal/session"

// Store is the part of the inbox the session uses.
type Store interface {
	Head(ctx context.Context, user string) (int64, error)
	List(ctx context.Context, user string, after int64, limit int) ([]inbox.Entry, error)
	MarkDelivered(ctx context.Context, id, user string) error
}

// Options bound one session's resources.
type Options struct {
	// QueueSize is how many frames may wait for the socket; a delivery that
	// finds the queue full closes the session with 1008.
	QueueSize int
	// WriteTimeout bounds every socket write.
	WriteTimeout time.Duration
	// PingInterval is the keepalive period; a peer that does not answer a
	// ping within the next interval is dropped. Zero disables pings.
	PingInterval time.Duration
	// ReadLimit is the largest client frame accepted (bytes); a larger one
	// closes the session with 1009.
	ReadLimit int64
	// ReplayLimit is the page size of inbox reads on resume and gap fill.
	ReplayLimit int
	// ReorderWait is how long a live delivery that arrived ahead of a
	// missing position waits for it before the gap is read from Firestore
	// (default 100ms). Deliveries often overtake each other by a few
	// milliseconds; waiting spares a Firestore read each time.
	ReorderWait time.Duration
	// MaxBadFrames malformed or unknown client frames close the session
	// with 1008 (default 5).
	MaxBadFrames int
	// StoreTimeout bounds one Firestore call (default 10s).
	StoreTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 64
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 4096
	}
	if o.ReplayLimit <= 0 {
		o.ReplayLimit = 500
	}
	if o.ReorderWait <= 0 {
		o.ReorderWait = 100 * time.Millisecond
	}
	if o.MaxBadFrames <= 0 {
		o.MaxBadFrames = 5
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = 10 * time.Second
	}
	return o
}

// Params identify a session.
type Params struct {
	ID   string // random when empty
	User string
	Pod  string
	// Resume, when true, replays the inbox after position After before going
	// live. Without it the session is live-only: it starts at the user's
	// inbox head, read when the session starts.
	Resume bool
	After  int64
	// Expires, when set, closes the session with 1008 when the token that
	// opened it expires.
	Expires time.Time
}

// Item is one live delivery for the session's user.
type Item struct {
	// Ctx carries the delivery's trace; the socket write's span is its child.
	Ctx       context.Context
	MessageID string
	Seq       int64
	SentAt    time.Time
	// Frame is the encoded message frame (see EncodeMessage), shared by the
	// user's sessions.
	Frame []byte
}

// StatusAbnormal marks a session that ended without a close handshake
// (lost connection, write timeout, unanswered ping).
const StatusAbnormal = websocket.StatusAbnormalClosure

// Session is one WebSocket session. Deliver and Close may be called from
// any goroutine; Serve runs the connection.
type Session struct {
	p     Params
	opt   Options
	store Store
	m     *metrics.Metrics
	log   *slog.Logger

	queue   chan Item
	closing chan struct{}
	done    chan struct{}
	endOnce sync.Once

	mu        sync.Mutex
	closed    bool
	code      websocket.StatusCode
	reason    string
	replaying bool
	pending   []Item

	// Owned by the writer goroutine.
	last     int64
	haveLast bool
	held     []Item // sorted by Seq
	// Owned by the reader goroutine.
	badFrames int
}

// New returns a session that buffers deliveries until Serve runs. Register
// it with the hub before Serve: deliveries that arrive while the inbox is
// replayed are kept and merged at the seam.
func New(p Params, opt Options, store Store, m *metrics.Metrics, log *slog.Logger) *Session {
	if p.ID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		p.ID = hex.EncodeToString(b)
	}
	opt = opt.withDefaults()
	s := &Session{
		p: p, opt: opt, store: store, m: m,
		log:     log.With("session_id", p.ID, "user", p.User),
		queue:   make(chan Item, opt.QueueSize),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	// Deliveries wait in pending until the starting position is known (the
	// cursor's replay, or the head read of a live-only session).
	s.replaying = true
	if p.Resume {
		s.last, s.haveLast = p.After, true
	}
	return s
}

// ID is the session id, unique on this pod.
func (s *Session) ID() string { return s.p.ID }

// UserID is the authenticated user.
func (s *Session) UserID() string { return s.p.User }

// Done is closed once the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// CloseStatus returns the code and reason the session closed with (zero
// while open).
func (s *Session) CloseStatus() (websocket.StatusCode, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code, s.reason
}

// Deliver queues a live delivery without blocking. It returns false when
// the session is closed or its queue was full, in which case the session
// is now closing with 1008 and the client will resume from its cursor.
func (s *Session) Deliver(it Item) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.replaying {
		// Merged at the seam; bounded so that a long replay for a busy user
		// cannot grow memory without limit.
		if len(s.pending) >= max(s.opt.QueueSize, s.opt.ReplayLimit) {
			s.overflowLocked()
			return false
		}
		s.pending = append(s.pending, it)
		return true
	}
	select {
	case s.queue <- it:
		return true
	default:
		s.overflowLocked()
		return false
	}
}

func (s *Session) overflowLocked() {
	s.m.QueueOverflows.Inc()
	s.closeLocked(websocket.StatusPolicyViolation, "send queue overflow")
}

// Close asks the session to close with code and reason and returns at once.
// The first call decides the code; later calls do nothing.
func (s *Session) Close(code websocket.StatusCode, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked(code, reason)
}

func (s *Session) closeLocked(code websocket.StatusCode, reason string) {
	if s.closed {
		return
	}
	s.closed, s.code, s.reason = true, code, reason
	close(s.closing)
}

// Abort ends a session that will never be served (the upgrade failed).
func (s *Session) Abort() {
	s.Close(StatusAbnormal, "upgrade failed")
	s.endOnce.Do(func() { close(s.done) })
}

// Serve runs the session on conn until it closes: the hello frame, the
// resume replay if asked, then live deliveries. It returns once the
// connection is closed and the session's goroutines are done.
func (s *Session) Serve(conn *websocket.Conn) {
	defer s.endOnce.Do(func() { close(s.done) })
	conn.SetReadLimit(s.opt.ReadLimit)
	if !s.p.Expires.IsZero() {
		t := time.AfterFunc(time.Until(s.p.Expires), func() { s.Close(websocket.StatusPolicyViolation, "token expired") })
		defer t.Stop()
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.readLoop(conn) })
	wg.Go(func() { s.pingLoop(conn) })

	s.writeLoop(conn)

	code, reason := s.CloseStatus()
	if code == StatusAbnormal {
		_ = conn.CloseNow()
	} else {
		// The close handshake; bounded by the library (5s to write, 5s to
		// hear back).
		_ = conn.Close(code, reason)
	}
	wg.Wait()
	for {
		select {
		case <-s.queue:
			s.m.Dropped.WithLabelValues("session_closed").Inc()
		default:
			s.log.Debug("session closed", "code", int(code), "reason", reason)
			return
		}
	}
}

// write writes one text frame within the write timeout. The timeout context
// is not tied to the session's closing: cancelling a write makes the
// library drop the connection, and a close must still be able to send its
// close frame.
func (s *Session) write(conn *websocket.Conn, frame []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.WriteTimeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, frame)
}

func (s *Session) writeLoop(conn *websocket.Conn) {
	select {
	case <-s.closing:
		return
	default:
	}
	hello, _ := json.Marshal(helloFrame{Type: "hello", SessionID: s.p.ID, Pod: s.p.Pod, User: s.p.User, Resumed: s.p.Resume})
	if err := s.write(conn, hello); err != nil {
		s.Close(StatusAbnormal, "write failed")
		return
	}
	if err := s.start(conn); err != nil {
		if !errors.Is(err, errClosing) {
			s.log.Warn("resume failed", "err", err)
			s.Close(websocket.StatusInternalError, "resume failed")
		}
		return
	}
	// held are live items past a gap, waiting (up to ReorderWait) for the
	// missing positions to arrive live before reading them from Firestore.
	var hold <-chan time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		s.m.Dropped.WithLabelValues("session_closed").Add(float64(len(s.held)))
	}()
	for {
		// Prefer closing over more writes once both are ready.
		select {
		case <-s.closing:
			return
		default:
		}
		var err error
		select {
		case <-s.closing:
			return
		case it := <-s.queue:
			err = s.acceptLive(conn, it)
			if err == nil && len(s.held) > s.opt.QueueSize {
				err = s.fillHeld(conn)
			}
		case <-hold:
			hold = nil
			err = s.fillHeld(conn)
		}
		if err != nil {
			if !errors.Is(err, errClosing) {
				s.log.Debug("live write failed", "err", err)
				s.Close(StatusAbnormal, "write failed")
			}
			return
		}
		switch {
		case len(s.held) == 0 && hold != nil:
			timer.Stop()
			hold = nil
		case len(s.held) > 0 && hold == nil:
			timer = time.NewTimer(s.opt.ReorderWait)
			hold = timer.C
		}
	}
}

var errClosing = errors.New("session closing")

// start finds where the session begins: after replaying the inbox past
// the cursor (resume), or at the inbox head (live-only). Then it merges
// the deliveries that arrived meanwhile and switches to live.
func (s *Session) start(conn *websocket.Conn) error {
	if s.p.Resume {
		ctx, span := otel.Tracer(tracerName).Start(context.Background(), "inbox replay",
			trace.WithAttributes(attribute.String("courier.session.id", s.p.ID), attribute.Int64("courier.inbox.after", s.last)))
		n, err := s.replayUpTo(ctx, conn, -1)
		span.SetAttributes(attribute.Int("courier.replay.count", n))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "replay failed")
		}
		span.End()
		if err != nil {
			return err
		}
	} else {
		// Registered before this read, so every delivery above the head
		// reaches the session; those below it were committed before the
		// session existed. Without the head the first delivery becomes the
		// baseline, and an earlier one arriving after it is missed live.
		ctx, cancel := context.WithTimeout(context.Background(), s.opt.StoreTimeout)
		head, err := s.store.Head(ctx, s.p.User)
		cancel()
		if err != nil {
			s.log.Warn("inbox head unknown; ordering from the first delivery", "err", err)
		} else {
			s.last, s.haveLast = head, true
		}
	}
	s.mu.Lock()
	slices.SortFunc(s.pending, func(a, b Item) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, it := range s.pending {
		if s.haveLast && it.Seq <= s.last {
			s.m.Dropped.WithLabelValues("duplicate").Inc()
			continue
		}
		select {
		case s.queue <- it:
		default:
			s.overflowLocked()
		}
	}
	s.pending, s.replaying = nil, false
	s.mu.Unlock()
	// A live-only session learns its starting cursor too, so a client that
	// loses the connection before its first message still resumes without
	// a gap.
	if !s.haveLast {
		return nil
	}
	synced, _ := json.Marshal(syncedFrame{Type: "synced", Cursor: inbox.EncodeCursor(s.last)})
	if err := s.write(conn, synced); err != nil {
		return fmt.Errorf("write synced frame: %w", err)
	}
	return nil
}

// replayUpTo writes the inbox entries after s.last, up to position upTo
// (all of them when upTo < 0), reading pages from Firestore. It returns how
// many it wrote.
func (s *Session) replayUpTo(ctx context.Context, conn *websocket.Conn, upTo int64) (int, error) {
	n := 0
	for {
		select {
		case <-s.closing:
			return n, errClosing
		default:
		}
		limit := s.opt.ReplayLimit
		if upTo >= 0 {
			limit = int(min(int64(limit), upTo-s.last))
			if limit <= 0 {
				return n, nil
			}
		}
		lctx, cancel := context.WithTimeout(ctx, s.opt.StoreTimeout)
		page, err := s.store.List(lctx, s.p.User, s.last, limit)
		cancel()
		if err != nil {
			return n, fmt.Errorf("read inbox of %s after %d: %w", s.p.User, s.last, err)
		}
		for _, e := range page {
			frame, err := EncodeMessage(e.Message, e.Cursor())
			if err != nil {
				return n, err
			}
			if err := s.write(conn, frame); err != nil {
				return n, fmt.Errorf("write replayed %s: %w", e.Message.GetId(), err)
			}
			s.last = e.Seq
			n++
			s.m.Written.WithLabelValues("replay").Inc()
		}
		if len(page) < limit {
			return n, nil
		}
	}
}

// acceptLive writes a live item in position order: a duplicate is
// dropped, the next position is written (with any held items it unblocks),
// and an item past a gap is held.
func (s *Session) acceptLive(conn *websocket.Conn, it Item) error {
	switch {
	case s.haveLast && it.Seq <= s.last:
		s.m.Dropped.WithLabelValues("duplicate").Inc()
		return nil
	case !s.haveLast || it.Seq == s.last+1:
		if err := s.writeLive(conn, it); err != nil {
			return err
		}
		return s.flushHeld(conn)
	}
	i, found := slices.BinarySearchFunc(s.held, it.Seq, func(h Item, seq int64) int { return cmp.Compare(h.Seq, seq) })
	if found {
		s.m.Dropped.WithLabelValues("duplicate").Inc()
		return nil
	}
	s.held = slices.Insert(s.held, i, it)
	return nil
}

// flushHeld writes the held items that follow the last written position.
func (s *Session) flushHeld(conn *websocket.Conn) error {
	for len(s.held) > 0 {
		it := s.held[0]
		switch {
		case it.Seq <= s.last:
			s.m.Dropped.WithLabelValues("duplicate").Inc()
		case it.Seq == s.last+1:
			if err := s.writeLive(conn, it); err != nil {
				return err
			}
		default:
			return nil
		}
		s.held = s.held[1:]
	}
	return nil
}

// fillHeld gives up waiting for the missing positions: everything below a
// delivered position is stored (positions are handed out in commit order),
// so it reads the gaps from Firestore and writes every held item in order.
func (s *Session) fillHeld(conn *websocket.Conn) error {
	for len(s.held) > 0 {
		it := s.held[0]
		ctx, span := otel.Tracer(tracerName).Start(it.Ctx, "inbox gap fill", trace.WithAttributes(
			pubsubx.KeyCourierMessageID.String(it.MessageID), attribute.Int64("courier.inbox.after", s.last),
			attribute.Int64("courier.inbox.seq", it.Seq)))
		n, err := s.replayUpTo(ctx, conn, it.Seq-1)
		span.SetAttributes(attribute.Int("courier.replay.count", n))
		span.End()
		if err != nil {
			return err
		}
		if s.last < it.Seq-1 {
			s.log.Warn("inbox gap not filled", "after", s.last, "seq", it.Seq)
		}
		if err := s.writeLive(conn, it); err != nil {
			return err
		}
		s.held = s.held[1:]
		if err := s.flushHeld(conn); err != nil {
			return err
		}
	}
	return nil
}

// writeLive writes one live item in its own span, a child of the
// delivery's processing span.
func (s *Session) writeLive(conn *websocket.Conn, it Item) error {
	_, span := otel.Tracer(tracerName).Start(it.Ctx, "websocket write", trace.WithAttributes(
		pubsubx.KeyCourierMessageID.String(it.MessageID),
		attribute.String("courier.session.id", s.p.ID),
		attribute.Int64("courier.inbox.seq", it.Seq),
		attribute.String("network.protocol.name", "websocket"),
		attribute.Int("messaging.message.body.size", len(it.Frame)),
	))
	err := s.write(conn, it.Frame)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "write failed")
		span.End()
		return fmt.Errorf("write %s: %w", it.MessageID, err)
	}
	span.End()
	s.last, s.haveLast = it.Seq, true
	s.m.Written.WithLabelValues("live").Inc()
	if !it.SentAt.IsZero() {
		s.m.DeliveryLatency.Observe(time.Since(it.SentAt).Seconds())
	}
	return nil
}

func (s *Session) pingLoop(conn *websocket.Conn) {
	if s.opt.PingInterval <= 0 {
		return
	}
	t := time.NewTicker(s.opt.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opt.PingInterval)
		err := conn.Ping(ctx)
		cancel()
		if err != nil {
			s.Close(StatusAbnormal, "ping timeout")
			return
		}
	}
}

func (s *Session) readLoop(conn *websocket.Conn) {
	for {
		typ, data, err := conn.Read(context.Background())
		if err != nil {
			switch code := websocket.CloseStatus(err); {
			case code != -1:
				s.Close(code, "closed by client")
			case errors.Is(err, websocket.ErrMessageTooBig):
				// The library has sent the 1009 close frame already.
				s.m.BadFrames.Inc()
				s.Close(websocket.StatusMessageTooBig, "frame too large")
			default:
				s.Close(StatusAbnormal, "connection lost")
			}
			return
		}
		s.handleFrame(conn, typ, data)
	}
}

// clientFrame is every frame a client may send.
type clientFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

func (s *Session) handleFrame(conn *websocket.Conn, typ websocket.MessageType, data []byte) {
	if typ != websocket.MessageText {
		s.badFrame(conn, "bad_frame", "frames must be JSON text")
		return
	}
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		s.badFrame(conn, "bad_json", "frame is not a JSON object")
		return
	}
	switch f.Type {
	case "ack":
		if !validMessageID(f.ID) {
			s.badFrame(conn, "bad_ack", `an ack frame needs the message "id"`)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opt.StoreTimeout)
		err := s.store.MarkDelivered(ctx, f.ID, s.p.User)
		cancel()
		switch {
		case err == nil:
			s.m.Acks.WithLabelValues("ok").Inc()
		case errors.Is(err, inbox.ErrNotFound):
			s.m.Acks.WithLabelValues("not_found").Inc()
			s.badFrame(conn, "not_found", "no message "+f.ID+" for this user")
		default:
			s.m.Acks.WithLabelValues("error").Inc()
			s.log.Warn("mark delivered failed", "message_id", f.ID, "err", err)
			s.sendError(conn, "unavailable", "could not record the ack; send it again later")
		}
	case "ping":
		// Browsers cannot send WebSocket pings; this lets them check the
		// session end to end.
		_ = s.write(conn, []byte(`{"type":"pong"}`))
	default:
		s.badFrame(conn, "unknown_type", "unknown frame type; expected \"ack\" or \"ping\"")
	}
}

func (s *Session) badFrame(conn *websocket.Conn, code, msg string) {
	s.m.BadFrames.Inc()
	s.badFrames++
	s.sendError(conn, code, msg)
	if s.badFrames >= s.opt.MaxBadFrames {
		s.Close(websocket.StatusPolicyViolation, "too many bad frames")
	}
}

func (s *Session) sendError(conn *websocket.Conn, code, msg string) {
	b, _ := json.Marshal(errorFrame{Type: "error", Code: code, Message: msg})
	_ = s.write(conn, b)
}

// validMessageID accepts what can name a Firestore document.
func validMessageID(id string) bool {
	if id == "" || len(id) > 256 || !utf8.ValidString(id) || id == "." || id == ".." {
		return false
	}
	for _, r := range id {
		if r == '/' || r < 0x20 {
			return false
		}
	}
	return true
}
