// Package hub holds the WebSocket sessions of this pod, indexed by user,
// and hands each user's deliveries to the user's sessions in inbox order.
//
// Sessions are indexed in shards (one mutex each) so that fan-out from many
// Pub/Sub callbacks and connects/disconnects rarely contend, after the hub
// of centrifugal/centrifuge; per-user and per-pod limits are enforced here.
//
// Ordering is per user, not per session: a user's deliveries go through
// one order.Buffer on this pod, so a position that arrives late is waited
// for once and, if it never comes, read from the inbox once, whatever the
// number of the user's sessions. A gap read never runs under a lock nor in
// a session's writer: it is a goroutine of its own, bounded pod-wide by the
// inbox reader.
//
// Messages are reference counted for their write spans (frame.Message): the
// hub takes a reference for every item it holds and for every session it
// hands an item to; Conn.Deliver releases each once written or dropped.
//
// Shutdown copies the sessions out under the locks and closes them outside,
// with bounded concurrency.
package hub

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
	"github.com/courierhq/courier/services/ws-edge/internal/order"
)

// Errors returned by Add.
var (
	ErrUserLimit = errors.New("too many sessions for this user")
	ErrPodLimit  = errors.New("too many sessions on this pod")
	ErrClosed    = errors.New("hub is shutting down")
)

// Conn is what the hub needs from a session.
type Conn interface {
	ID() string
	UserID() string
	// Close asks the session to close with code and reason and returns at
	// once; Done tells when it has.
	Close(code websocket.StatusCode, reason string)
	// Done is closed once the session is fully closed.
	Done() <-chan struct{}
	// Deliver takes the user's next items, in inbox order, without
	// blocking; it owns one reference to each item's message and releases
	// it once the item is written or dropped. It is called under the
	// hub's lock: it must not call back into the hub, nor keep items (the
	// slice is reused).
	Deliver(items []frame.Item)
}

// Reader reads inbox pages (inboxreader.Reader).
type Reader interface {
	Read(ctx context.Context, p inboxreader.Purpose, user string, after int64, limit int) ([]frame.Item, error)
}

// Config bounds the hub.
type Config struct {
	MaxSessions        int
	MaxSessionsPerUser int
	// ReorderWait is the least time a user's deliveries wait for a missing
	// position before it is read from the inbox; the window grows with the
	// lateness seen on this pod, up to ReorderWaitMax (order.Window).
	ReorderWait, ReorderWaitMax time.Duration
	// MaxHeld bounds the deliveries held per user behind a gap; a full
	// buffer reads the gap at once.
	MaxHeld int
	// ReadLimit is the page size of gap reads.
	ReadLimit int
	// ReadTimeout bounds one gap read; ReadAttempts failed reads give the
	// gap up (the sessions then catch up from the inbox themselves).
	ReadTimeout  time.Duration
	ReadAttempts int
}

func (c Config) withDefaults() Config {
	if c.MaxSessions <= 0 {
		c.MaxSessions = 10000
	}
	if c.MaxSessionsPerUser <= 0 {
		c.MaxSessionsPerUser = 16
	}
	if c.ReorderWait <= 0 {
		c.ReorderWait = 2 * time.Second
	}
	if c.ReorderWaitMax < c.ReorderWait {
		c.ReorderWaitMax = max(c.ReorderWait, 30*time.Second)
	}
	if c.MaxHeld <= 0 {
		c.MaxHeld = 1024
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = 500
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.ReadAttempts <= 0 {
		c.ReadAttempts = 3
	}
	return c
}

const numShards = 64

type shard[C Conn] struct {
	mu     sync.Mutex
	users  map[string]*user[C]
	closed bool
	// ready is scratch space for the items one call releases, reused
	// under mu so a delivery costs no allocation.
	ready []frame.Item
}

// user is one user's sessions and the order of their deliveries.
type user[C Conn] struct {
	conns   []C
	buf     order.Buffer[frame.Item]
	gapOpen bool        // a gap is being waited for (counted once)
	timer   *time.Timer // fires when the gap is due to be read
	reading bool        // a gap read is in flight
	gone    bool        // removed: late timers and reads do nothing
}

// Hub indexes sessions by user and orders their deliveries.
type Hub[C Conn] struct {
	cfg    Config
	shards [numShards]shard[C]
	seed   maphash.Seed
	total  atomic.Int64
	reader Reader
	window *order.Window
	m      *metrics.Metrics
	log    *slog.Logger
	now    func() time.Time
}

// New returns a hub; reader serves its gap reads.
func New[C Conn](cfg Config, reader Reader, m *metrics.Metrics, log *slog.Logger) *Hub[C] {
	cfg = cfg.withDefaults()
	h := &Hub[C]{cfg: cfg, seed: maphash.MakeSeed(), reader: reader, m: m, log: log, now: time.Now,
		window: order.NewWindow(cfg.ReorderWait, cfg.ReorderWaitMax)}
	for i := range h.shards {
		h.shards[i].users = make(map[string]*user[C])
	}
	m.ReorderWindow.Set(cfg.ReorderWait.Seconds())
	return h
}

func (h *Hub[C]) shard(u string) *shard[C] {
	return &h.shards[maphash.String(h.seed, u)%numShards]
}

// Add registers c, or refuses it with ErrUserLimit, ErrPodLimit or
// ErrClosed. Deliveries for c's user are held from now until the first of
// the user's sessions here calls Start.
func (h *Hub[C]) Add(c C) error {
	s := h.shard(c.UserID())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	u := s.users[c.UserID()]
	if u != nil && len(u.conns) >= h.cfg.MaxSessionsPerUser {
		return ErrUserLimit
	}
	if h.total.Add(1) > int64(h.cfg.MaxSessions) {
		h.total.Add(-1)
		return ErrPodLimit
	}
	if u == nil {
		u = &user[C]{buf: order.Buffer[frame.Item]{Max: h.cfg.MaxHeld}}
		s.users[c.UserID()] = u
	}
	u.conns = append(u.conns, c)
	return nil
}

// Remove unregisters c; it reports whether c was registered. The last
// session of a user takes the user's ordering state with it.
func (h *Hub[C]) Remove(c C) bool {
	s := h.shard(c.UserID())
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[c.UserID()]
	if u == nil {
		return false
	}
	i := -1
	for j, x := range u.conns {
		if x.ID() == c.ID() {
			i = j
		}
	}
	if i < 0 {
		return false
	}
	u.conns[i] = u.conns[len(u.conns)-1]
	var zero C
	u.conns[len(u.conns)-1] = zero
	u.conns = u.conns[:len(u.conns)-1]
	h.total.Add(-1)
	if len(u.conns) == 0 {
		delete(s.users, c.UserID())
		u.gone = true
		if u.timer != nil {
			u.timer.Stop()
		}
		for _, it := range u.buf.Reset() {
			it.M.Release()
		}
	}
	return true
}

// Deliver hands a live delivery to user's sessions, in inbox order. It
// reports whether this pod holds a session of user. It takes its own
// references to it.M; the caller keeps its own.
func (h *Hub[C]) Deliver(name string, it frame.Item) bool {
	s := h.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[name]
	if u == nil {
		return false
	}
	now := h.now()
	ready, r, late := u.buf.Offer(it.Seq, it, now, s.ready[:0])
	defer func() { s.ready = ready[:0] }()
	h.m.Ordered(r.String())
	if late > 0 {
		h.m.Lateness.Observe(late.Seconds())
		h.window.Observe(late, now)
		if r == order.Released {
			h.m.GapsFilledLive.Inc()
		} else {
			h.m.GapsFilledLate.Inc()
		}
	}
	switch r {
	case order.Held:
		it.M.Ref(1) // the buffer's
	case order.Released:
		h.hand(u, ready)
		// ready[1:] were held: give the buffer's references back.
		for _, x := range ready[1:] {
			x.M.Release()
		}
	}
	h.schedule(name, u, now)
	return true
}

// Start tells the hub where user's session stands once it has read its
// inbox (replay or head): the first such call sets the user's ordering
// baseline and releases what was held after it.
func (h *Hub[C]) Start(name string, pos int64) {
	s := h.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[name]
	if u == nil || u.buf.Started() {
		return
	}
	// Held items at or below pos are dropped by Start: release them too.
	held := u.buf.Reset()
	u.buf.Start(pos, nil)
	var ready []frame.Item
	for _, it := range held {
		var r order.Result
		ready, r, _ = u.buf.Offer(it.Seq, it, h.now(), ready)
		if r == order.Duplicate {
			h.m.Ordered(r.String())
			it.M.Release()
		}
	}
	h.hand(u, ready)
	for _, x := range ready {
		x.M.Release()
	}
	h.schedule(name, u, h.now())
}

// hand gives ready items to every session of u.
func (h *Hub[C]) hand(u *user[C], ready []frame.Item) {
	if len(ready) == 0 {
		return
	}
	now := time.Now()
	for i, it := range ready {
		it.M.Ref(len(u.conns))
		if !it.M.Received.IsZero() {
			h.m.ReorderWait.Observe(now.Sub(it.M.Received).Seconds())
			ready[i].Handed = now
		}
	}
	for _, c := range u.conns {
		c.Deliver(ready)
	}
}

// schedule (re)arms u's gap timer after any change. Called under the
// shard's lock.
func (h *Hub[C]) schedule(name string, u *user[C], now time.Time) {
	_, _, since, ok := u.buf.Gap()
	if !ok {
		u.gapOpen = false
		if u.timer != nil {
			u.timer.Stop()
		}
		return
	}
	if !u.gapOpen {
		u.gapOpen = true
		h.m.Gaps.Inc()
	}
	if u.reading {
		return
	}
	w := h.window.At(now)
	h.m.ReorderWindow.Set(w.Seconds())
	wait := since.Add(w).Sub(now)
	if u.buf.Len() >= h.cfg.MaxHeld {
		wait = 0
	}
	if u.timer == nil {
		u.timer = time.AfterFunc(wait, func() { h.gapDue(name, u) })
		return
	}
	u.timer.Reset(wait)
}

// gapDue runs when u's gap has waited the whole window: it reads the gap
// unless it has closed or the window has grown meanwhile.
func (h *Hub[C]) gapDue(name string, u *user[C]) {
	s := h.shard(name)
	s.mu.Lock()
	if u.gone || u.reading {
		s.mu.Unlock()
		return
	}
	after, upTo, since, ok := u.buf.Gap()
	if !ok {
		s.mu.Unlock()
		return
	}
	now := h.now()
	if due := since.Add(h.window.At(now)); now.Before(due) && u.buf.Len() < h.cfg.MaxHeld {
		u.timer.Reset(due.Sub(now))
		s.mu.Unlock()
		return
	}
	u.reading = true
	s.mu.Unlock()
	go h.fillGap(name, u, after, upTo, since)
}

// fillGap reads positions after+1..upTo of user's inbox, page by page, and
// releases them with what waited behind them. A read that keeps failing
// gives the gap up: the held items are released past it, and a session
// that misses the positions catches up from the inbox itself.
func (h *Hub[C]) fillGap(name string, u *user[C], after, upTo int64, since time.Time) {
	for after < upTo {
		limit := int(min(int64(h.cfg.ReadLimit), upTo-after))
		items, err := h.readGap(name, after, limit)
		pageUpTo := upTo
		if err == nil && len(items) == limit {
			pageUpTo = items[len(items)-1].Seq
		}
		if err != nil {
			h.log.Warn("inbox gap not read; releasing what waited behind it", "user", name, "after", after, "up_to", upTo, "err", err)
			h.m.GapsGivenUp.Inc()
		}
		entries := make([]order.Entry[frame.Item], len(items))
		for i, it := range items {
			entries[i] = order.Entry[frame.Item]{Seq: it.Seq, V: it}
		}
		if !h.filled(name, u, entries, after, pageUpTo, since, pageUpTo >= upTo) {
			return
		}
		after = pageUpTo
	}
}

func (h *Hub[C]) readGap(name string, after int64, limit int) ([]frame.Item, error) {
	retry := backoff.Policy{Initial: 200 * time.Millisecond, Max: 2 * time.Second}
	var err error
	for attempt := range h.cfg.ReadAttempts {
		if attempt > 0 {
			time.Sleep(retry.Delay(attempt-1, nil))
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ReadTimeout)
		var items []frame.Item
		items, err = h.reader.Read(ctx, inboxreader.Gap, name, after, limit)
		cancel()
		if err == nil {
			return items, nil
		}
	}
	return nil, err
}

// filled applies one page of a gap read; it reports whether the read
// should go on.
func (h *Hub[C]) filled(name string, u *user[C], entries []order.Entry[frame.Item], after, upTo int64, since time.Time, last bool) bool {
	s := h.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.gone {
		return false
	}
	ready := u.buf.Fill(entries, after, upTo, since, nil)
	h.hand(u, ready)
	for _, x := range ready {
		x.M.Release() // the buffer's (no-op for what the read brought)
	}
	if last {
		u.reading = false
		h.schedule(name, u, h.now())
	}
	return !last
}

// AppendSessions appends user's sessions to dst and returns it.
func (h *Hub[C]) AppendSessions(dst []C, name string) []C {
	s := h.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[name]; u != nil {
		dst = append(dst, u.conns...)
	}
	return dst
}

// HasUser reports whether this pod holds a session of user.
func (h *Hub[C]) HasUser(name string) bool {
	s := h.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[name] != nil
}

// Len is the number of registered sessions.
func (h *Hub[C]) Len() int { return int(h.total.Load()) }

// Close makes Add refuse every new session with ErrClosed.
func (h *Hub[C]) Close() {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
	}
}

// Shutdown refuses new sessions, then closes every session with code and
// reason and waits until they are closed or ctx ends. At most concurrency
// close handshakes run at once: each can take seconds with a slow peer, and
// pacing them spreads the clients' reconnections to other pods.
func (h *Hub[C]) Shutdown(ctx context.Context, code websocket.StatusCode, reason string, concurrency int) error {
	h.Close()
	var all []C
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for _, u := range s.users {
			all = append(all, u.conns...)
		}
		s.mu.Unlock()
	}
	if concurrency < 1 {
		concurrency = 1
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, c := range all {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			// Out of time: tell the rest to close without waiting for them.
			for _, rest := range all[i:] {
				rest.Close(code, reason)
			}
			wg.Wait()
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c.Close(code, reason)
			select {
			case <-c.Done():
			case <-ctx.Done():
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}
