package inbox

import (
	"container/list"
	"sync"
)

// headCache remembers users' inbox heads (their highest position) so that
// a commit does not query them again. It is bounded: the least recently used
// users are forgotten first.
//
// What makes it safe: a value is only ever stored from a head query or
// from this process's own successful commit, so a cached head is one that
// existed, and, since entries are never deleted, it is at most the true head.
// A stale (too low) head makes the commit's create of that position fail, and
// the committer reads the head again: a conflict and a re-read, never a gap
// or a duplicate. After a commit whose outcome is unknown (a timeout) the
// users involved are dropped, not advanced.
type headCache struct {
	mu    sync.Mutex
	max   int
	order *list.List               // most recently used first; values are *headEntry
	users map[string]*list.Element // user → element of order
}

type headEntry struct {
	user string
	head int64
}

func newHeadCache(max int) *headCache {
	if max <= 0 {
		return nil
	}
	return &headCache{max: max, order: list.New(), users: map[string]*list.Element{}}
}

// get returns user's cached head. A nil cache knows nothing.
func (c *headCache) get(user string) (int64, bool) {
	if c == nil {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.users[user]
	if !ok {
		return 0, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*headEntry).head, true
}

// set records user's head, read from Firestore or just committed by us.
func (c *headCache) set(user string, head int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.users[user]; ok {
		e.Value.(*headEntry).head = head
		c.order.MoveToFront(e)
		return
	}
	c.users[user] = c.order.PushFront(&headEntry{user: user, head: head})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.users, oldest.Value.(*headEntry).user)
	}
}

// drop forgets user's head.
func (c *headCache) drop(user string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.users[user]; ok {
		c.order.Remove(e)
		delete(c.users, user)
	}
}

func (c *headCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
