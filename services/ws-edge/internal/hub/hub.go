// Package hub keeps the WebSocket sessions this pod holds, indexed by user,
// and enforces the per-user and per-pod session limits. It is sharded by
// user (one RWMutex per shard) so that fan-out lookups from many Pub/Sub
// callbacks and connects/disconnects rarely contend, after the hub of
// centrifugal/centrifuge. Shutdown copies the sessions out under the locks
// and closes them outside, with bounded concurrency.
package hub

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
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
}

const numShards = 64

type shard[C Conn] struct {
	mu     sync.RWMutex
	users  map[string]map[string]C
	closed bool
}

// Hub indexes sessions by user.
type Hub[C Conn] struct {
	shards     [numShards]shard[C]
	maxTotal   int64
	maxPerUser int
	total      atomic.Int64
}

// New returns a hub admitting at most maxTotal sessions, and at most
// maxPerUser per user.
func New[C Conn](maxTotal, maxPerUser int) *Hub[C] {
	h := &Hub[C]{maxTotal: int64(maxTotal), maxPerUser: maxPerUser}
	for i := range h.shards {
		h.shards[i].users = make(map[string]map[string]C)
	}
	return h
}

func (h *Hub[C]) shard(user string) *shard[C] {
	f := fnv.New32a()
	_, _ = f.Write([]byte(user))
	return &h.shards[f.Sum32()%numShards]
}

// Add registers c, or refuses it with ErrUserLimit, ErrPodLimit or
// ErrClosed.
func (h *Hub[C]) Add(c C) error {
	s := h.shard(c.UserID())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	conns := s.users[c.UserID()]
	if len(conns) >= h.maxPerUser {
		return ErrUserLimit
	}
	if h.total.Add(1) > h.maxTotal {
		h.total.Add(-1)
		return ErrPodLimit
	}
	if conns == nil {
		conns = make(map[string]C)
		s.users[c.UserID()] = conns
	}
	conns[c.ID()] = c
	return nil
}

// Remove unregisters c; it reports whether c was registered.
func (h *Hub[C]) Remove(c C) bool {
	s := h.shard(c.UserID())
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := s.users[c.UserID()]
	if _, ok := conns[c.ID()]; !ok {
		return false
	}
	delete(conns, c.ID())
	if len(conns) == 0 {
		delete(s.users, c.UserID())
	}
	h.total.Add(-1)
	return true
}

// AppendSessions appends user's sessions to dst and returns it. The caller
// works on the copy outside the hub's locks.
func (h *Hub[C]) AppendSessions(dst []C, user string) []C {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.users[user] {
		dst = append(dst, c)
	}
	return dst
}

// HasUser reports whether this pod holds a session of user.
func (h *Hub[C]) HasUser(user string) bool {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users[user]) > 0
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
		s.mu.RLock()
		for _, conns := range s.users {
			for _, c := range conns {
				all = append(all, c)
			}
		}
		s.mu.RUnlock()
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
