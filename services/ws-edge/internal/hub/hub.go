// Package hub is this pod's registry of WebSocket sessions: users to
// sessions, with the per-user and per-pod limits. It registers, looks up
// and broadcasts, as centrifugal/centrifuge's hub does; it does not order
// (package sequencer does) nor read the inbox.
//
// Sessions are indexed in shards (one mutex each) so that fan-out from many
// Pub/Sub callbacks and connects/disconnects rarely contend. A user's first
// session and last session are events (Events), emitted under the shard's
// lock so that they reach their consumers in order for each user.
//
// Shutdown copies the sessions out under the locks and closes them outside,
// with bounded concurrency.
package hub

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/services/ws-edge/internal/frame"
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
	// blocking. It is called under the hub's lock: it must not call back
	// into the hub, nor keep the slice (it is reused; the items may be
	// copied).
	Deliver(items []frame.Item)
}

// Events hears of a user's first session on this pod and of the user's
// last one leaving (the sequencer opens and closes the user's order on
// them; with targeted routing, presence.Recorder writes and removes the
// user's record). The hub is the one place that counts a user's sessions. They are called under the hub's lock, in order for each user: a
// handler must not block nor call back into the hub.
type Events interface {
	FirstSession(user string)
	LastSession(user string)
}

// Config bounds the hub.
type Config struct {
	MaxSessions        int
	MaxSessionsPerUser int
}

// withDefaults fills zero limits. The binary never relies on it (ws-edge's
// settings.go sets both; TestPackagesDoNotFillIn); it stays because tests
// build hubs from partial configs.
func (c Config) withDefaults() Config {
	if c.MaxSessions <= 0 {
		c.MaxSessions = 10000
	}
	if c.MaxSessionsPerUser <= 0 {
		c.MaxSessionsPerUser = 16
	}
	return c
}

const numShards = 64

type shard[C Conn] struct {
	mu     sync.Mutex
	users  map[string][]C
	closed bool
}

// Hub indexes sessions by user.
type Hub[C Conn] struct {
	cfg    Config
	events Events
	shards [numShards]shard[C]
	seed   maphash.Seed
	total  atomic.Int64
}

type noEvents struct{}

func (noEvents) FirstSession(string) {}
func (noEvents) LastSession(string)  {}

// New returns a hub; ev (nil for none) hears of first and last sessions.
func New[C Conn](cfg Config, ev Events) *Hub[C] {
	if ev == nil {
		ev = noEvents{}
	}
	h := &Hub[C]{cfg: cfg.withDefaults(), events: ev, seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].users = make(map[string][]C)
	}
	return h
}

func (h *Hub[C]) shard(u string) *shard[C] {
	return &h.shards[maphash.String(h.seed, u)%numShards]
}

// Add registers c, or refuses it with ErrUserLimit, ErrPodLimit or
// ErrClosed. The user's first session here is a FirstSession event.
func (h *Hub[C]) Add(c C) error {
	s := h.shard(c.UserID())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	conns := s.users[c.UserID()]
	if len(conns) >= h.cfg.MaxSessionsPerUser {
		return ErrUserLimit
	}
	if h.total.Add(1) > int64(h.cfg.MaxSessions) {
		h.total.Add(-1)
		return ErrPodLimit
	}
	if len(conns) == 0 {
		h.events.FirstSession(c.UserID())
	}
	s.users[c.UserID()] = append(conns, c)
	return nil
}

// Remove unregisters c; it reports whether c was registered. The user's
// last session leaving is a LastSession event.
func (h *Hub[C]) Remove(c C) bool {
	s := h.shard(c.UserID())
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := s.users[c.UserID()]
	i := -1
	for j, x := range conns {
		if x.ID() == c.ID() {
			i = j
		}
	}
	if i < 0 {
		return false
	}
	conns[i] = conns[len(conns)-1]
	var zero C
	conns[len(conns)-1] = zero
	conns = conns[:len(conns)-1]
	h.total.Add(-1)
	if len(conns) == 0 {
		delete(s.users, c.UserID())
		h.events.LastSession(c.UserID())
		return true
	}
	s.users[c.UserID()] = conns
	return true
}

// Broadcast hands items, the user's next in inbox order, to every session
// of user here (sequencer.Sink).
func (h *Hub[C]) Broadcast(user string, items []frame.Item) {
	s := h.shard(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := s.users[user]
	if len(conns) == 0 {
		return
	}
	for _, c := range conns {
		c.Deliver(items)
	}
}

// AppendSessions appends user's sessions to dst and returns it.
func (h *Hub[C]) AppendSessions(dst []C, name string) []C {
	s := h.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst, s.users[name]...)
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
		for _, conns := range s.users {
			all = append(all, conns...)
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
