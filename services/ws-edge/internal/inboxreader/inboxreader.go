// Package inboxreader reads users' inboxes for this pod: the replay of a
// resuming session, the catch-up of a session that fell behind, and the
// gap fill of a user whose delivery never arrived. Every such read goes
// through one Reader, which bounds how many run at once pod-wide (a
// reconnect storm after another pod died, or a busy moment, queues reads
// instead of flooding Firestore) and lets identical concurrent reads of one
// user share one request (a user's sessions catching up together).
package inboxreader

import (
	"context"
	"fmt"
	"sync"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
)

// Store is the part of the inbox the reader uses.
type Store interface {
	List(ctx context.Context, user string, after int64, limit int) ([]inbox.Entry, error)
	Head(ctx context.Context, user string) (int64, error)
}

// Purpose labels a read in the metrics.
type Purpose string

const (
	Resume  Purpose = "resume"  // a session opened with a cursor
	CatchUp Purpose = "catchup" // a session fell behind its deliveries
	Gap     Purpose = "gap"     // a user's delivery did not arrive in time
	Head    Purpose = "head"    // a live-only session's starting position
)

// Observer is told about every read (metrics).
type Observer interface {
	InboxRead(p Purpose, shared bool, err error)
}

// Reader reads inbox pages. It is safe for concurrent use.
type Reader struct {
	store Store
	obs   Observer
	sem   chan struct{}

	mu       sync.Mutex
	inflight map[key]*call
}

type key struct {
	user  string
	after int64
	limit int
}

type call struct {
	done  chan struct{}
	items []frame.Item
	err   error
}

// New returns a Reader running at most concurrency reads at once.
func New(store Store, concurrency int, obs Observer) *Reader {
	return &Reader{store: store, obs: obs, sem: make(chan struct{}, max(1, concurrency)), inflight: map[key]*call{}}
}

// Read returns up to limit entries of user's inbox after position after,
// oldest first, as frames ready to write. A read identical to one in
// flight waits for it instead of asking again.
func (r *Reader) Read(ctx context.Context, p Purpose, user string, after int64, limit int) ([]frame.Item, error) {
	k := key{user, after, limit}
	r.mu.Lock()
	if c, ok := r.inflight[k]; ok {
		r.mu.Unlock()
		select {
		case <-c.done:
			r.obs.InboxRead(p, true, c.err)
			return c.items, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &call{done: make(chan struct{})}
	r.inflight[k] = c
	r.mu.Unlock()

	c.items, c.err = r.read(ctx, user, after, limit)
	r.mu.Lock()
	delete(r.inflight, k)
	r.mu.Unlock()
	close(c.done)
	r.obs.InboxRead(p, false, c.err)
	return c.items, c.err
}

// Head returns user's last inbox position, under the same concurrency
// bound as every read.
func (r *Reader) Head(ctx context.Context, user string) (int64, error) {
	release, err := r.acquire(ctx, user)
	if err != nil {
		return 0, err
	}
	defer release()
	head, err := r.store.Head(ctx, user)
	r.obs.InboxRead(Head, false, err)
	return head, err
}

// acquire waits for one of the pod's read slots; release gives it back.
func (r *Reader) acquire(ctx context.Context, user string) (release func(), err error) {
	select {
	case r.sem <- struct{}{}:
		return func() { <-r.sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait to read the inbox of %s: %w", user, ctx.Err())
	}
}

func (r *Reader) read(ctx context.Context, user string, after int64, limit int) ([]frame.Item, error) {
	release, err := r.acquire(ctx, user)
	if err != nil {
		return nil, err
	}
	defer release()
	entries, err := r.store.List(ctx, user, after, limit)
	if err != nil {
		return nil, err
	}
	items := make([]frame.Item, 0, len(entries))
	for _, e := range entries {
		m, err := frame.NewMessage(context.Background(), e.Message)
		if err != nil {
			return nil, err
		}
		m.FromInbox = true
		items = append(items, frame.Item{M: m, Seq: e.Seq})
	}
	return items, nil
}
