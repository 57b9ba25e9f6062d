// Package keylock serializes work per key (here: per recipient user id)
// inside one process.
//
// Why: every commit that gives a message an inbox position reads and writes
// users/{id}.seq in a Firestore transaction. Two concurrent transactions on
// the same user document conflict; Firestore makes one wait or aborts it and
// the client retries it with backoff, and the emulator resolves such
// conflicts with lock timeouts of seconds. Letting this process's commits to
// one recipient queue on a local lock instead costs nothing (they would be
// serialized by Firestore anyway) and turns contention into a short wait.
// Several worker pods can still contend; Firestore's transactions keep that
// correct, the lock only makes the common case fast.
package keylock

import (
	"context"
	"slices"
	"sync"
)

// Locker holds one lock per key, created on demand and dropped when unused.
type Locker struct {
	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	ch   chan struct{} // holds one token while the key is locked
	refs int           // holders plus waiters
}

// New returns an empty Locker.
func New() *Locker { return &Locker{keys: map[string]*entry{}} }

// Lock locks every key, in sorted order so that two callers locking
// overlapping sets cannot deadlock, and returns the func that unlocks them.
// It gives up, holding nothing, when ctx is done.
func (l *Locker) Lock(ctx context.Context, keys ...string) (unlock func(), err error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	held := make([]string, 0, len(keys))
	release := func() {
		for i := len(held) - 1; i >= 0; i-- {
			l.release(held[i], true)
		}
	}
	for _, k := range keys {
		e := l.ref(k)
		select {
		case e.ch <- struct{}{}:
			held = append(held, k)
		case <-ctx.Done():
			l.release(k, false)
			release()
			return nil, ctx.Err()
		}
	}
	var once sync.Once
	return func() { once.Do(release) }, nil
}

func (l *Locker) ref(k string) *entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.keys[k]
	if !ok {
		e = &entry{ch: make(chan struct{}, 1)}
		l.keys[k] = e
	}
	e.refs++
	return e
}

func (l *Locker) release(k string, held bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[k]
	if held {
		<-e.ch
	}
	if e.refs--; e.refs == 0 {
		delete(l.keys, k)
	}
}

// Len returns the number of keys locked or waited for; for tests.
func (l *Locker) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
