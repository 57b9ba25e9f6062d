// Package routes keeps this pod's presence records for targeted routing
// (pkg/presence, pkg/routing): the record that the pod holds a user is written when the
// user's first session here opens, before that session reads its inbox,
// and removed when the user's last session here ends.
//
// Both writes for one user are serialized: a Leave still in flight while a
// new session opens would otherwise land after the new Join and leave the
// user connected here with no record, so the worker would route the user's
// deliveries elsewhere.
package routes

import (
	"context"
	"sync"
)

// Table is where records are kept (presence.Table).
type Table interface {
	Join(ctx context.Context, user, pod string) error
	Leave(ctx context.Context, user, pod string) error
}

// Tracker counts this pod's sessions per user and writes the records.
type Tracker struct {
	table Table
	pod   string

	mu    sync.Mutex
	users map[string]*user
}

type user struct {
	mu       sync.Mutex // held across the Firestore write
	sessions int        // changed under mu
	refs     int        // holders and waiters of mu; under Tracker.mu
}

// New returns a Tracker of pod's records in table.
func New(table Table, pod string) *Tracker {
	return &Tracker{table: table, pod: pod, users: map[string]*user{}}
}

// Open counts a new session of id. For the user's first session here it
// writes the record and returns only once it is committed; on error the
// session is not counted and must not be served.
func (t *Tracker) Open(ctx context.Context, id string) error {
	u := t.acquire(id)
	defer t.release(id, u)
	if u.sessions == 0 {
		if err := t.table.Join(ctx, id, t.pod); err != nil {
			return err
		}
	}
	u.sessions++
	return nil
}

// Close uncounts a session of id; after the user's last session here it
// removes the record. A failed removal is returned for logging only: a
// stale record costs deliveries routed here in vain, never a lost one.
func (t *Tracker) Close(ctx context.Context, id string) error {
	u := t.acquire(id)
	defer t.release(id, u)
	if u.sessions == 0 {
		return nil
	}
	u.sessions--
	if u.sessions > 0 {
		return nil
	}
	return t.table.Leave(ctx, id, t.pod)
}

// Users returns how many users have sessions counted here.
func (t *Tracker) Users() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.users)
}

func (t *Tracker) acquire(id string) *user {
	t.mu.Lock()
	u := t.users[id]
	if u == nil {
		u = &user{}
		t.users[id] = u
	}
	u.refs++
	t.mu.Unlock()
	u.mu.Lock()
	return u
}

func (t *Tracker) release(id string, u *user) {
	u.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	u.refs--
	// Forget a user with no session and nobody holding or waiting for it:
	// the map stays the size of the pod's current users. With refs at 0
	// nobody can change sessions before t.mu is released.
	if u.refs == 0 && u.sessions == 0 {
		delete(t.users, id)
	}
}
