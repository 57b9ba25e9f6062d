// Package session serves one client's WebSocket session.
//
// An idle session has one goroutine: its reader (coder/websocket answers
// pings and sees closes only while something reads), on the goroutine that
// serves the connection. Its writer is a goroutine that exists only while
// there is something to write: the first one writes the hello frame and
// finds where the session starts (the resume replay after the client's
// cursor, or the inbox head); later ones write what the hub hands the
// session (the user's deliveries, already in inbox order: package
// sequencer), control frames, and the close. Each ends, giving its buffers
// back, once nothing waits. Keepalive pings ride on a timer.
//
// A session never closes a client for being behind. Deliveries wait in a
// bounded queue; when it overflows (this pod fell behind, or the client is
// slow) the session drops the queue and catches up from the inbox, the same
// path as a resume, through the pod's bounded inbox reader: the writer then
// reads pages instead of writing queued frames, and what arrives meanwhile
// waits in the same bounded queue, merged at the seam. Two modes (reading,
// live), one queue. 1008 is kept
// for a client that does not read at all: a socket write that makes no
// progress for WS_WRITE_TIMEOUT ends the session with 1008 "client not
// reading" (the close frame reaches the client if it reads again within
// the close handshake).
//
// Files: session.go (life cycle, Deliver, Close), writer.go (the write
// loop, frame batching, pings), catchup.go (replay, catch-up and the seam),
// protocol.go (the client's frames: acks, pings, bad frames).
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/signal"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

// Options bound one session's resources; one value is shared by every
// session of a pod.
type Options struct {
	// QueueSize is how many frames may wait for the socket; beyond it the
	// session catches up from the inbox (default 1024). Queued frames share
	// their encoding with the other recipients, so a queued frame costs a
	// few bytes of its own.
	QueueSize int
	// WriteTimeout is how long a socket write may make no progress before
	// the client is taken as not reading: 1008 (default 10s).
	WriteTimeout time.Duration
	// PingInterval is the keepalive period; a peer that does not answer a
	// ping within the next interval is dropped. Zero disables pings.
	PingInterval time.Duration
	// ReadLimit is the largest client frame accepted (bytes); a larger one
	// closes the session with 1009.
	ReadLimit int64
	// ReplayLimit is the page size of inbox reads on resume and catch-up.
	ReplayLimit int
	// MaxBadFrames malformed or unknown client frames close the session
	// with 1008 (default 5).
	MaxBadFrames int
	// StoreTimeout bounds one inbox read (default 10s).
	StoreTimeout time.Duration
	// PageWriteTimeout bounds writing one page of a replay or catch-up,
	// whole (default 30s): the page holds the pod's read budget until it is
	// written, so a client reading a frame just often enough to dodge
	// WriteTimeout cannot pin it; over it, 1008 "client too slow".
	PageWriteTimeout time.Duration
	// MaxBatchBytes bounds one WebSocket message of batched frames
	// (batch=1 sessions; default 64 KiB).
	MaxBatchBytes int
	// AckRate and AckBurst bound a session's acks (per second, and at once):
	// beyond them an ack is refused with an error frame "rate_limited", so
	// one client cannot fill the pod's ack queue. Zero AckRate: unlimited.
	AckRate  float64
	AckBurst int
	// SignalRate and SignalBurst bound a session's signal frames (per
	// second, and at once); beyond them a signal is refused with an error
	// frame "signal_rate_limited". Zero SignalRate: unlimited.
	SignalRate  float64
	SignalBurst int
	// EphemeralQueue bounds the ephemeral frames waiting for the socket;
	// beyond it they are dropped and counted (default 64). It has no
	// variable: a client that lets 64 signals pile up is not reading.
	EphemeralQueue int
}

// WithDefaults fills in the zero fields. For the fields a variable sets,
// the binary never relies on it (ws-edge's settings.go sets them;
// TestPackagesDoNotFillIn); it stays because tests build sessions from
// partial options. MaxBadFrames and StoreTimeout have no variable: their
// default is here only.
func (o Options) WithDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 4096
	}
	if o.ReplayLimit <= 0 {
		o.ReplayLimit = 500
	}
	if o.MaxBadFrames <= 0 {
		o.MaxBadFrames = 5
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = 10 * time.Second
	}
	if o.PageWriteTimeout <= 0 {
		o.PageWriteTimeout = 30 * time.Second
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 64 << 10
	}
	if o.AckBurst <= 0 {
		o.AckBurst = max(1, int(o.AckRate))
	}
	if o.SignalBurst <= 0 {
		o.SignalBurst = max(1, int(o.SignalRate))
	}
	if o.EphemeralQueue <= 0 {
		o.EphemeralQueue = 64
	}
	return o
}

// Reader reads the inbox (inboxreader.Reader).
type Reader interface {
	Read(ctx context.Context, p inboxreader.Purpose, user string, after int64, limit int) (inboxreader.Page, error)
	Head(ctx context.Context, user string) (int64, error)
}

// Starter is told where a session stands once it has read its inbox
// (sequencer.Set.Start), so the user's deliveries can be ordered from there.
type Starter interface {
	Start(user string, pos int64)
}

// Acks records client acknowledgements (acks.Writer). Add must not block;
// it reports false when it cannot take more. reply is called once, later,
// from another goroutine.
type Acks interface {
	Add(user, messageID string, reply func(error)) bool
}

// Signals sends a client's signals (signal.Sender). Every error is a
// *signal.Error.
type Signals interface {
	Send(ctx context.Context, from string, r signal.Request) error
}

// Watch serves watch frames (the edge's presence): it replaces s's watch
// set with users, without blocking the reader.
type Watch interface {
	Watch(s *Session, users []string)
}

// Deps are the pod-wide parts every session uses.
type Deps struct {
	// Watch, when set, serves "watch" frames.
	Watch Watch
	// Signals, when set, serves "signal" frames.
	Signals Signals
	Options *Options // defaults applied
	Reader  Reader
	Starter Starter
	Acks    Acks
	Metrics *metrics.Metrics
	Log     *slog.Logger
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
	// Batch: the client accepts several frames per WebSocket message,
	// separated by '\n' (batch=1 on the URL).
	Batch bool
}

// StatusAbnormal marks a session that ended without a close handshake
// (lost connection, unanswered ping).
const StatusAbnormal = websocket.StatusAbnormalClosure

// StatusCursorExpired closes a session whose resume cursor is behind what
// INBOX_RETENTION keeps (reason starts with "cursor_expired").
const StatusCursorExpired websocket.StatusCode = 4410

type mode uint8

const (
	// reading: the writer reads the inbox (the start: replay or head; or a
	// catch-up); deliveries wait in the queue, unwritten, for the seam.
	reading mode = iota
	// live: the writer writes the queue.
	live
)

// Session is one WebSocket session. Deliver and Close may be called from
// any goroutine; Serve runs the connection.
type Session struct {
	p    Params
	deps *Deps

	done    chan struct{}
	endOnce sync.Once
	// w is the writer's state; one writer goroutine runs at a time
	// (writing), handed over under mu.
	w       writer
	writers sync.WaitGroup

	mu     sync.Mutex
	closed bool
	code   websocket.StatusCode
	reason string
	mode   mode
	// queue holds the deliveries handed to the session, bounded by
	// QueueSize: written in live mode, waiting for the seam while reading.
	// Live, queuedLast is the position of the last item queued or written:
	// the session's one check that what arrives follows it (a gap the
	// sequencer gave up on, or an overflow, turns it to reading). While
	// reading, an overflow empties the queue and sets lost: the read goes
	// on past those positions instead.
	queue      []frame.Item
	queuedLast int64
	lost       bool
	control    [][]byte // error frames and pongs, written first
	// ephemeral holds ephemeral frames (signals, presence, receipts, read
	// markers: pkg/ephemeral), written with the control frames, not
	// ordered with messages; bounded by EphemeralQueue, beyond which they
	// are dropped (never retried, never replayed).
	ephemeral [][]byte
	// closeAfter, when set, closes the session once the control frames
	// queued before it are written (the error that explains a close).
	closeAfter *closeRequest
	// serving: Serve has the connection, a writer may start; writing: a
	// writer goroutine runs; finished: the last one has closed the
	// connection, none starts again.
	serving, writing, finished bool
	ping                       *time.Timer // the next keepalive ping

	// Owned by the writer goroutine of the moment.
	last int64 // position of the last message frame written

	badFrames    atomic.Int32
	ackBucket    bucket // the reader's only
	signalBucket bucket // the reader's only
}

// New returns a session that holds deliveries until Serve has found where
// it starts. Register it with the hub before Serve.
func New(p Params, deps *Deps) *Session {
	if p.ID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		p.ID = hex.EncodeToString(b)
	}
	s := &Session{p: p, deps: deps, done: make(chan struct{})}
	s.w.s = s
	if p.Resume {
		s.last = p.After
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

// Deliver takes the user's next items, in inbox order, without blocking
// (hub.Conn).
func (s *Session) Deliver(items []frame.Item) {
	m := s.deps.Metrics
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		m.DroppedClosed.Add(float64(len(items)))
		return
	}
	m.Queued.Add(float64(len(items)))
	for i, it := range items {
		if s.mode == reading {
			s.wait(it)
			continue
		}
		switch {
		case it.Seq <= s.queuedLast:
			m.DroppedDuplicate.Inc()
		case it.Seq != s.queuedLast+1:
			// Positions are missing from what this session got (a gap the
			// sequencer gave up on): read them.
			s.catchUpLocked()
			s.wait(it)
		case len(s.queue) >= s.deps.Options.QueueSize:
			m.QueueOverflows.Inc()
			s.catchUpLocked()
			for _, rest := range items[i:] {
				s.wait(rest)
			}
			return
		default:
			s.queue = append(s.queue, it)
			s.queuedLast = it.Seq
		}
	}
	s.signal()
}

// catchUpLocked switches a live session to catching up from the inbox: the
// queued frames are dropped (they are stored) and the writer reads instead.
func (s *Session) catchUpLocked() {
	s.deps.Metrics.CatchUps.Inc()
	s.deps.Metrics.DropC.Add(float64(len(s.queue)))
	s.queue = nil
	s.mode = reading
	s.signal()
}

// wait keeps it for the seam while the session reads the inbox, or empties
// the queue when it is full (the read then goes on past those positions).
func (s *Session) wait(it frame.Item) {
	if len(s.queue) >= s.deps.Options.QueueSize {
		s.deps.Metrics.DropC.Add(float64(len(s.queue)))
		s.queue, s.lost = nil, true
	}
	s.queue = append(s.queue, it)
}

// signal makes sure a writer runs: it starts one unless one runs already,
// the session is not served yet, or it is over. Called with s.mu held.
func (s *Session) signal() {
	if !s.serving || s.writing || s.finished {
		return
	}
	s.writing = true
	s.writers.Add(1)
	go s.w.run()
}

// sendControl queues a control frame (an error, a pong) for the writer.
func (s *Session) sendControl(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.control) >= 16 {
		return // a client flooding us with bad frames gets closed anyway
	}
	s.control = append(s.control, b)
	s.signal()
}

// SendEphemeral queues an ephemeral frame (already encoded JSON, written
// as it is) without blocking. It reports false when the session is closed
// or its ephemeral queue is full: the frame is then dropped for good.
func (s *Session) SendEphemeral(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.ephemeral) >= s.deps.Options.EphemeralQueue {
		return false
	}
	s.ephemeral = append(s.ephemeral, b)
	s.signal()
	return true
}

type closeRequest struct {
	code   websocket.StatusCode
	reason string
}

// closeAfterControl closes the session once the control frames queued so
// far are written.
func (s *Session) closeAfterControl(code websocket.StatusCode, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeAfter == nil {
		s.closeAfter = &closeRequest{code, reason}
	}
	s.signal()
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
	s.signal() // the writer closes the connection
}

// Abort ends a session that will never be served (the upgrade failed).
func (s *Session) Abort() {
	s.Close(StatusAbnormal, "upgrade failed")
	s.drop()
	s.endOnce.Do(func() { close(s.done) })
}

// drop lets go of everything the session still holds, once it is closed.
func (s *Session) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deps.Metrics.DroppedClosed.Add(float64(len(s.queue)))
	s.queue, s.control, s.ephemeral = nil, nil, nil
}

// Serve runs the session on conn until it closes: the hello frame, the
// resume replay if asked, then live deliveries, all written by writer
// goroutines started when there is something to write, while Serve's own
// goroutine reads. It returns once the connection is closed and the last
// writer has ended.
func (s *Session) Serve(conn *websocket.Conn) {
	defer s.endOnce.Do(func() { close(s.done) })
	conn.SetReadLimit(s.deps.Options.ReadLimit)
	if !s.p.Expires.IsZero() {
		t := time.AfterFunc(time.Until(s.p.Expires), func() { s.Close(websocket.StatusPolicyViolation, "token expired") })
		defer t.Stop()
	}
	s.mu.Lock()
	s.w.conn = conn
	s.serving = true
	s.signal() // the first writer: hello, then where the session starts
	s.mu.Unlock()

	s.readLoop(conn) // returns once the session is closed

	s.writers.Wait()
	s.mu.Lock()
	if s.ping != nil {
		s.ping.Stop()
	}
	s.mu.Unlock()
	s.drop()
	code, reason := s.CloseStatus()
	s.deps.Log.Debug("session closed", "session_id", s.p.ID, "user", s.p.User, "code", int(code), "reason", reason)
}
