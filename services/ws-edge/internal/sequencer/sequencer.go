// Package sequencer puts each user's live deliveries back into inbox order
// on this pod, without Firestore whenever it can, and is the one owner of
// that order: the buffering, the adaptive window, the gap timers and the
// gap reads.
//
// Deliveries reach a pod out of order: the edge subscription is not ordered
// and the Pub/Sub client hands them to concurrent callbacks. Inbox
// positions are handed out in commit order, so once position k+2 arrives,
// k+1 is stored: it is either on its way (late) or will never come (its
// delivery was lost, e.g. a worker died between commit and publish). A
// user's Buffer holds what arrived past a gap; the Set waits up to the
// Window for the missing position to arrive live and only then reads it
// from the inbox, once for the user, whatever the number of the user's
// sessions.
//
// Control flows one way: the fan-out offers deliveries (Deliver), the
// sequencer hands each user's items, in order, to a Sink (the hub, which
// passes them to the user's sessions). The user's first session opens the
// user's sequencer and the last one closes it (the hub's events); a session
// tells where it stands once it has read its inbox (Start), which sets the
// user's baseline.
//
// A gap read never runs under a lock nor in a session's writer: it is a
// goroutine of its own, bounded pod-wide by the inbox reader, and it and
// its retries end when the Set's context does (shutdown).
package sequencer

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

// ReadFunc reads one page of user's inbox after position after
// (inboxreader.Reader.Read for gap fills). The caller calls Done on the page.
type ReadFunc func(ctx context.Context, user string, after int64, limit int) (inboxreader.Page, error)

// Sink hands user's next items, in inbox order, to the user's sessions
// (hub.Hub.Broadcast). It is called with the user's sequencer locked, so
// calls for one user never interleave: it must not block, nor call back
// into the Set, nor keep items (the slice is reused).
type Sink func(user string, items []frame.Item)

// Config bounds the sequencers. Zero fields take the defaults.
type Config struct {
	// ReorderWait is the least time a user's deliveries wait for a missing
	// position before it is read from the inbox; the window grows with the
	// lateness seen on this pod, up to ReorderWaitMax (Window).
	ReorderWait, ReorderWaitMax time.Duration
	// MaxHeld bounds the deliveries held per user behind a gap; a full
	// buffer reads the gap at once.
	MaxHeld int
	// ReadLimit is the page size of gap reads.
	ReadLimit int
	// ReadTimeout bounds one gap read; ReadAttempts failed reads give the
	// gap up (the sessions then catch up from the inbox themselves), with
	// Retry's waits between them.
	ReadTimeout  time.Duration
	ReadAttempts int
	Retry        backoff.Policy
}

func (c Config) withDefaults() Config {
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
	if c.Retry.Initial <= 0 {
		c.Retry = backoff.Policy{Initial: 200 * time.Millisecond, Max: 2 * time.Second}
	}
	return c
}

const numShards = 64

type shard struct {
	mu    sync.Mutex // guards users only; never held while a user is locked
	users map[string]*user
}

// user is one user's sequencer.
type user struct {
	name string
	// gone is set when the user's last session left: late timers, reads
	// and offers do nothing. Atomic because Close runs under the hub's
	// lock, where it must not wait for mu (a Sink call holds mu and takes
	// the hub's lock).
	gone atomic.Bool

	mu      sync.Mutex
	buf     Buffer[frame.Item]
	ready   []frame.Item // scratch for what one call releases
	gapOpen bool         // a gap is being waited for (counted once)
	timer   *time.Timer  // fires when the gap is due to be read
	reading bool         // a gap read is in flight
}

// Set is the pod's per-user sequencers.
type Set struct {
	cfg    Config
	ctx    context.Context
	read   ReadFunc
	sink   Sink
	window *Window
	m      *metrics.Metrics
	log    *slog.Logger
	now    func() time.Time
	seed   maphash.Seed
	shards [numShards]shard

	readsMu sync.Mutex
	stopped bool
	reads   sync.WaitGroup
}

// New returns a Set whose gap reads use read and end when ctx does.
func New(ctx context.Context, cfg Config, read ReadFunc, sink Sink, m *metrics.Metrics, log *slog.Logger) *Set {
	cfg = cfg.withDefaults()
	s := &Set{cfg: cfg, ctx: ctx, read: read, sink: sink, m: m, log: log, now: time.Now, seed: maphash.MakeSeed(),
		window: NewWindow(cfg.ReorderWait, cfg.ReorderWaitMax)}
	for i := range s.shards {
		s.shards[i].users = make(map[string]*user)
	}
	m.ReorderWindow.Set(cfg.ReorderWait.Seconds())
	return s
}

func (s *Set) shard(name string) *shard {
	return &s.shards[maphash.String(s.seed, name)%numShards]
}

// Open gives name a sequencer (the user's first session on this pod):
// deliveries are held from now until the first Start. It takes no user's
// lock, so it may run under the hub's.
func (s *Set) Open(name string) {
	sh := s.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.users[name] == nil {
		sh.users[name] = &user{name: name, buf: Buffer[frame.Item]{Max: s.cfg.MaxHeld}}
	}
}

// Close forgets name's sequencer (the user's last session left), with what
// it held. Like Open it may run under the hub's lock: the held items and
// the timer are let go on a goroutine of their own.
func (s *Set) Close(name string) {
	sh := s.shard(name)
	sh.mu.Lock()
	u := sh.users[name]
	delete(sh.users, name)
	sh.mu.Unlock()
	if u == nil {
		return
	}
	u.gone.Store(true)
	go func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.timer != nil {
			u.timer.Stop()
		}
		u.buf.Reset()
		u.ready = nil
	}()
}

// lock returns name's sequencer, locked, or nil when this pod holds no
// session of name.
func (s *Set) lock(name string) *user {
	for {
		sh := s.shard(name)
		sh.mu.Lock()
		u := sh.users[name]
		sh.mu.Unlock()
		if u == nil {
			return nil
		}
		u.mu.Lock()
		if !u.gone.Load() {
			return u
		}
		// Closed between the lookup and the lock; the user may have a new
		// sequencer already.
		u.mu.Unlock()
	}
}

// HasUser reports whether this pod holds a session of name.
func (s *Set) HasUser(name string) bool {
	sh := s.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.users[name] != nil
}

// Deliver offers a live delivery to name's sequencer, which hands it and
// what it unblocks to the Sink in inbox order. It reports whether this pod
// holds a session of name.
func (s *Set) Deliver(name string, it frame.Item) bool {
	u := s.lock(name)
	if u == nil {
		return false
	}
	defer u.mu.Unlock()
	now := s.now()
	ready, r, late := u.buf.Offer(it.Seq, it, now, u.ready[:0])
	defer func() { u.ready = ready[:0] }()
	s.m.Ordered(r.String())
	if late > 0 {
		s.m.Lateness.Observe(late.Seconds())
		s.window.Observe(late, now)
		if r == Released {
			s.m.GapsFilledLive.Inc()
		} else {
			s.m.GapsFilledLate.Inc()
		}
	}
	if r == Released {
		s.hand(u, ready)
	}
	s.schedule(u, now)
	return true
}

// Start tells name's sequencer where a session stands once it has read its
// inbox (replay or head): the first such call sets the user's baseline and
// releases what was held after it; later ones change nothing.
func (s *Set) Start(name string, pos int64) {
	u := s.lock(name)
	if u == nil {
		return
	}
	defer u.mu.Unlock()
	if u.buf.Started() {
		return
	}
	// Held items at or below pos are dropped by Start (counted as
	// duplicates); those that follow it are released, the rest wait.
	held := u.buf.Reset()
	u.buf.Start(pos, nil)
	var ready []frame.Item
	for _, it := range held {
		var r Result
		ready, r, _ = u.buf.Offer(it.Seq, it, s.now(), ready)
		if r == Duplicate {
			s.m.Ordered(r.String())
		}
	}
	s.hand(u, ready)
	s.schedule(u, s.now())
}

// hand gives ready items to the Sink. Called with u locked.
// Live items are stamped Handed: the reorder wait (from the fan-out
// handler's receipt) ends here and the sessions' queue wait begins.
func (s *Set) hand(u *user, ready []frame.Item) {
	if len(ready) == 0 {
		return
	}
	now := time.Now()
	for i, it := range ready {
		if !it.M.Received.IsZero() {
			s.m.ReorderWait.Observe(now.Sub(it.M.Received).Seconds())
			ready[i].Handed = now
		}
	}
	s.sink(u.name, ready)
}

// schedule (re)arms u's gap timer after any change. Called with u locked.
func (s *Set) schedule(u *user, now time.Time) {
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
		s.m.Gaps.Inc()
	}
	if u.reading {
		return
	}
	w := s.window.At(now)
	s.m.ReorderWindow.Set(w.Seconds())
	wait := since.Add(w).Sub(now)
	if u.buf.Len() >= s.cfg.MaxHeld {
		wait = 0
	}
	if u.timer == nil {
		u.timer = time.AfterFunc(wait, func() { s.gapDue(u) })
		return
	}
	u.timer.Reset(wait)
}

// gapDue runs when u's gap has waited the whole window: it reads the gap
// unless it has closed or the window has grown meanwhile.
func (s *Set) gapDue(u *user) {
	u.mu.Lock()
	if u.gone.Load() || u.reading {
		u.mu.Unlock()
		return
	}
	after, upTo, since, ok := u.buf.Gap()
	if !ok {
		u.mu.Unlock()
		return
	}
	now := s.now()
	if due := since.Add(s.window.At(now)); now.Before(due) && u.buf.Len() < s.cfg.MaxHeld {
		u.timer.Reset(due.Sub(now))
		u.mu.Unlock()
		return
	}
	u.reading = true
	u.mu.Unlock()
	if !s.goRead(func() { s.fillGap(u, after, upTo, since) }) {
		u.mu.Lock()
		u.reading = false
		u.mu.Unlock()
	}
}

// goRead runs read on a goroutine of its own unless the Set is stopping.
func (s *Set) goRead(read func()) bool {
	s.readsMu.Lock()
	defer s.readsMu.Unlock()
	if s.stopped || s.ctx.Err() != nil {
		return false
	}
	s.reads.Go(read)
	return true
}

// Wait waits for the gap reads in flight, which end once the Set's context
// does, and starts no more; call it after cancelling that context.
func (s *Set) Wait() {
	s.readsMu.Lock()
	s.stopped = true
	s.readsMu.Unlock()
	s.reads.Wait()
}

// fillGap reads positions after+1..upTo of u's inbox, page by page, and
// releases them with what waited behind them. A read that keeps failing
// gives the gap up: the held items are released past it, and a session
// that misses the positions catches up from the inbox itself. Shutdown
// ends it where it is: the sessions are closing.
func (s *Set) fillGap(u *user, after, upTo int64, since time.Time) {
	for after < upTo {
		limit := int(min(int64(s.cfg.ReadLimit), upTo-after))
		items, more, err := s.readPage(u.name, after, limit)
		if err != nil && s.ctx.Err() != nil {
			return
		}
		pageUpTo := upTo
		if err == nil && more && len(items) > 0 {
			// A page cut by its limit (entries or bytes): the next page
			// starts after its last entry, never past the gap's positions.
			pageUpTo = items[len(items)-1].Seq
		}
		if err != nil {
			s.log.Warn("inbox gap not read; releasing what waited behind it", "user", u.name, "after", after, "up_to", upTo, "err", err)
			s.m.GapsGivenUp.Inc()
		}
		entries := make([]Entry[frame.Item], len(items))
		for i, it := range items {
			entries[i] = Entry[frame.Item]{Seq: it.Seq, V: it}
		}
		if !s.filled(u, entries, after, pageUpTo, since, pageUpTo >= upTo) {
			return
		}
		after = pageUpTo
	}
}

// readPage reads one page of a gap, trying ReadAttempts times. The page's
// read budget is given back at once: its items join the user's ordered
// stream and the sessions' queues, which bound them (WS_SEND_QUEUE), like
// live deliveries. Every read and every wait between them ends with the
// Set's context.
func (s *Set) readPage(name string, after int64, limit int) ([]frame.Item, bool, error) {
	var err error
	for attempt := range s.cfg.ReadAttempts {
		if attempt > 0 && !backoff.Sleep(s.ctx, s.cfg.Retry.Delay(attempt-1, nil)) {
			return nil, false, s.ctx.Err()
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ReadTimeout)
		var page inboxreader.Page
		page, err = s.read(ctx, name, after, limit)
		cancel()
		if err == nil {
			page.Done()
			return page.Items, page.More, nil
		}
		if s.ctx.Err() != nil {
			return nil, false, s.ctx.Err()
		}
	}
	return nil, false, err
}

// filled applies one page of a gap read; it reports whether the read
// should go on.
func (s *Set) filled(u *user, entries []Entry[frame.Item], after, upTo int64, since time.Time, last bool) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.gone.Load() {
		return false
	}
	s.hand(u, u.buf.Fill(entries, after, upTo, since, nil))
	if last {
		u.reading = false
		s.schedule(u, s.now())
	}
	return !last
}
