// Package inboxreader reads users' inboxes for this pod: the replay of a
// resuming session, the catch-up of a session that fell behind, and the
// gap fill of a user whose delivery never arrived. Every such read goes
// through one Reader, which bounds how many run at once pod-wide (a
// reconnect storm after another pod died, or a busy moment, queues reads
// instead of flooding Firestore) and lets identical concurrent reads of one
// user share one request (a user's sessions catching up together).
//
// Pages are bounded by bytes as well as entries (inbox.PageLimit), and a
// pod-wide byte budget is held from before a read until every session that
// got the page has written it (Page.Done): a page read is only useful once
// written, and a slow client must not pin pages outside the budget. With
// WS_PAGE_BYTES 1 MiB and WS_READ_BUDGET_BYTES 32 MiB, resumes and
// catch-ups pin at most ~32 MiB of a pod's heap, however many sessions
// ask at once; the others wait for their turn. One user holds at most
// WS_USER_READ_PAGES pages at once (4 by default), so a few users with
// many slow sessions cannot take the whole budget from everyone else.
package inboxreader

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
)

// Store is the part of the inbox the reader uses.
type Store interface {
	ListPage(ctx context.Context, user string, after int64, lim inbox.PageLimit) (inbox.Page, error)
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

// DefaultBudgetBytes is the pod-wide read budget when none is set.
const DefaultBudgetBytes = 32 << 20

// Options bound the reads of one pod; zero fields take their defaults.
type Options struct {
	// Concurrency is how many reads run at once.
	Concurrency int
	// PageBytes bounds one page (inbox.PageLimit.Bytes).
	PageBytes int
	// BudgetBytes bounds the pages read and not yet written, pod-wide; at
	// least PageBytes.
	BudgetBytes int
	// UserPages bounds the pages one user holds at once (default 4).
	UserPages int
}

// Reader reads inbox pages. It is safe for concurrent use.
type Reader struct {
	store     Store
	obs       Observer
	sem       chan struct{}
	pageBytes int
	budget    *semaphore.Weighted
	userPages int64

	mu       sync.Mutex
	inflight map[key]*call
	users    map[string]*userPages // users holding pages, guarded by mu
}

// userPages bounds one user's pages; it exists while the user holds or
// waits for one.
type userPages struct {
	sem  *semaphore.Weighted
	refs int
}

// Page is one read: its items, ready to write, and whether entries may
// follow. Done gives the page's bytes back to the pod's budget; call it
// once, when the items are written (or dropped).
type Page struct {
	Items []frame.Item
	More  bool
	c     *call
}

// Done releases the page's share of the read budget. Safe on a zero Page.
func (p Page) Done() {
	if p.c != nil {
		p.c.done1()
	}
}

type key struct {
	user  string
	after int64
	limit int
}

// call is one read, shared by the identical reads that arrive while it
// runs. It holds reserved bytes of the budget until each holder (the
// reader and every sharer) is done with the page.
type call struct {
	done     chan struct{}
	page     inbox.Page
	items    []frame.Item
	err      error
	budget   *semaphore.Weighted
	reserved int64
	user     func() // gives the user's page slot back; nil when none held
	holders  int    // the reader and its sharers; guarded by mu
	mu       sync.Mutex
}

func (c *call) done1() {
	c.mu.Lock()
	c.holders--
	last := c.holders == 0
	c.mu.Unlock()
	if !last {
		return
	}
	if c.reserved > 0 {
		c.budget.Release(c.reserved)
		c.reserved = 0
	}
	if c.user != nil {
		c.user()
		c.user = nil
	}
}

// New returns a Reader bounded by o.
func New(store Store, o Options, obs Observer) *Reader {
	if o.PageBytes <= 0 {
		o.PageBytes = inbox.DefaultPageBytes
	}
	if o.BudgetBytes <= 0 {
		o.BudgetBytes = DefaultBudgetBytes
	}
	o.BudgetBytes = max(o.BudgetBytes, o.PageBytes)
	if o.UserPages <= 0 {
		o.UserPages = 4
	}
	return &Reader{
		store: store, obs: obs, sem: make(chan struct{}, max(1, o.Concurrency)),
		pageBytes: o.PageBytes, budget: semaphore.NewWeighted(int64(o.BudgetBytes)), userPages: int64(o.UserPages),
		inflight: map[key]*call{}, users: map[string]*userPages{},
	}
}

// Read returns up to limit entries of user's inbox after position after,
// oldest first, bounded by the pod's page bytes, as frames ready to write.
// A read identical to one in flight waits for it instead of asking again.
// The caller must call Done on a page it got without error.
func (r *Reader) Read(ctx context.Context, p Purpose, user string, after int64, limit int) (Page, error) {
	k := key{user, after, limit}
	r.mu.Lock()
	if c, ok := r.inflight[k]; ok {
		c.mu.Lock()
		c.holders++
		c.mu.Unlock()
		r.mu.Unlock()
		select {
		case <-c.done:
			r.obs.InboxRead(p, true, c.err)
			if c.err != nil {
				c.done1()
				return Page{}, c.err
			}
			return Page{Items: c.items, More: c.page.More, c: c}, nil
		case <-ctx.Done():
			c.done1()
			return Page{}, ctx.Err()
		}
	}
	c := &call{done: make(chan struct{}), budget: r.budget, holders: 1}
	r.inflight[k] = c
	r.mu.Unlock()

	c.err = r.read(ctx, c, user, after, limit)
	r.mu.Lock()
	delete(r.inflight, k)
	r.mu.Unlock()
	close(c.done)
	r.obs.InboxRead(p, false, c.err)
	if c.err != nil {
		c.done1()
		return Page{}, c.err
	}
	return Page{Items: c.items, More: c.page.More, c: c}, nil
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

// acquireUser waits for one of user's page slots.
func (r *Reader) acquireUser(ctx context.Context, user string) (release func(), err error) {
	r.mu.Lock()
	u := r.users[user]
	if u == nil {
		u = &userPages{sem: semaphore.NewWeighted(r.userPages)}
		r.users[user] = u
	}
	u.refs++
	r.mu.Unlock()
	leave := func() {
		r.mu.Lock()
		if u.refs--; u.refs == 0 {
			delete(r.users, user)
		}
		r.mu.Unlock()
	}
	if err := u.sem.Acquire(ctx, 1); err != nil {
		leave()
		return nil, fmt.Errorf("wait for a page slot of %s: %w", user, err)
	}
	return func() { u.sem.Release(1); leave() }, nil
}

// read reserves a whole page of the budget first (the page's size is
// known only once read), reads, and gives back what the page did not use.
// The budget is taken before a read slot, so a read slot never waits on
// the budget (slow writers cannot hold reads that could proceed).
func (r *Reader) read(ctx context.Context, c *call, user string, after int64, limit int) error {
	release, err := r.acquireUser(ctx, user)
	if err != nil {
		return err
	}
	c.user = release
	if err := r.budget.Acquire(ctx, int64(r.pageBytes)); err != nil {
		return fmt.Errorf("wait for read budget for the inbox of %s: %w", user, err)
	}
	c.reserved = int64(r.pageBytes)
	release, err = r.acquire(ctx, user)
	if err != nil {
		return err
	}
	defer release()
	c.page, err = r.store.ListPage(ctx, user, after, inbox.PageLimit{Items: limit, Bytes: r.pageBytes})
	if err != nil {
		return err
	}
	used := 0
	c.items = make([]frame.Item, 0, len(c.page.Entries))
	for _, e := range c.page.Entries {
		used += inbox.EntryBytes(e.Message)
		m, err := frame.NewMessage(e.Message)
		if err != nil {
			return err
		}
		m.FromInbox = true
		c.items = append(c.items, frame.Item{M: m, Seq: e.Seq})
	}
	// A page above pageBytes is a single large entry (inbox.PageLimit):
	// it keeps the whole page's reservation, no more.
	if spare := c.reserved - int64(used); spare > 0 {
		r.budget.Release(spare)
		c.reserved = int64(used)
	}
	c.page.Entries = nil // the items hold what is needed; the entries go
	return nil
}
