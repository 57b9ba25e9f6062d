package inbox

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// DefaultPageBytes is the default byte bound of one inbox page (REST,
// gRPC, the edge's replay and catch-up): about 1 MiB of messages, so a
// page of large payloads costs a reader what a page of small ones does.
const DefaultPageBytes = 1 << 20

// PageLimit bounds one inbox read. A page holds at most Items entries, and
// no more entries than fit in Bytes (EntryBytes each) — but always at least
// one, so a single message larger than Bytes can still be read. Bytes 0
// means no byte bound.
type PageLimit struct {
	Items int
	Bytes int
}

// Page is one inbox read.
type Page struct {
	Entries []Entry
	// More is true when the page stopped at its limit (of items or bytes):
	// entries may follow. A page with More false reached the inbox's head
	// as it was when read.
	More bool
}

// entryOverhead approximates an entry's bytes beside its payload and
// recipient list (ids, timestamps, field names): enough that a page of
// empty payloads is still bounded.
const entryOverhead = 96

// EntryBytes is what one entry counts against PageLimit.Bytes: its
// payload, ids and recipient list.
func EntryBytes(m *courierv1.Message) int {
	n := entryOverhead + len(m.GetPayload()) + len(m.GetId()) + len(m.GetFrom()) + len(m.GetContentType())
	for _, u := range m.GetTo() {
		n += len(u) + 2
	}
	return n
}

// Pager accumulates a page under a PageLimit; the Firestore store and the
// in-memory one share it so that both cut pages at the same entry.
type Pager struct {
	lim   PageLimit
	bytes int
	page  Page
}

// NewPager starts an empty page under lim.
func NewPager(lim PageLimit) *Pager { return &Pager{lim: lim, page: Page{Entries: []Entry{}}} }

// Add offers the next entry. It returns false, and marks the page as having
// more, when the entry does not fit: the caller stops reading.
func (p *Pager) Add(e Entry) bool {
	if len(p.page.Entries) >= p.lim.Items {
		p.page.More = true
		return false
	}
	n := EntryBytes(e.Message)
	if p.lim.Bytes > 0 && len(p.page.Entries) > 0 && p.bytes+n > p.lim.Bytes {
		p.page.More = true
		return false
	}
	p.bytes += n
	p.page.Entries = append(p.page.Entries, e)
	if len(p.page.Entries) == p.lim.Items {
		// A full page by count: more may follow, and the caller need not
		// read one entry further to find out.
		p.page.More = true
	}
	return true
}

// Page returns the page so far.
func (p *Pager) Page() Page { return p.page }

// ListPage returns user's inbox after position after, oldest first, bounded
// by lim. Entries are decoded as they stream in and the query is stopped
// at the first entry that does not fit, so a page never holds more than
// lim.Bytes (plus one entry) in memory.
func (s *Store) ListPage(ctx context.Context, user string, after int64, lim PageLimit) (Page, error) {
	if lim.Items <= 0 {
		return Page{Entries: []Entry{}}, nil
	}
	it := s.fs.Collection(UsersCollection).Doc(user).Collection(InboxCollection).
		OrderBy(firestore.DocumentID, firestore.Asc).
		StartAfter(inboxID(after)).
		Limit(lim.Items).Documents(ctx)
	defer it.Stop()
	p := NewPager(lim)
	for first := true; ; first = false {
		d, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return p.Page(), nil
		}
		if err != nil {
			return Page{}, fmt.Errorf("list inbox of %s: %w", user, err)
		}
		e, err := decodeEntry(d)
		if err != nil {
			return Page{}, err
		}
		if first && s.retention > 0 && after > 0 && (e.Seq != after+1 || s.expired(e)) {
			return Page{}, fmt.Errorf("list inbox of %s after %d (first retained %d): %w", user, after, e.Seq, ErrCursorExpired)
		}
		if !p.Add(e) {
			return p.Page(), nil
		}
	}
}

// ErrCursorExpired is returned for a cursor behind what INBOX_RETENTION
// keeps: reading on from it would silently skip deleted entries. Clients
// reload the newest page instead (REST 410 cursor_expired, WebSocket close
// 4410).
var ErrCursorExpired = errors.New("cursor expired: entries after it are past retention")

// expired reports whether e is past retention: Firestore's TTL deletes
// entries some time (up to about a day) after expire_at, so an entry may
// still be there when it no longer counts.
func (s *Store) expired(e Entry) bool {
	return e.ExpireAt != nil && !e.ExpireAt.After(s.now())
}

// checkRetained answers ErrCursorExpired when user's entry at seq is gone
// or past retention (a conversation page before or after it would hide a
// gap). Without retention it costs nothing.
func (s *Store) checkRetained(ctx context.Context, user string, seq int64) error {
	if s.retention <= 0 || seq <= 0 {
		return nil
	}
	snap, err := s.entryRef(user, seq).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("inbox entry %d of %s: %w", seq, user, ErrCursorExpired)
	}
	if err != nil {
		return fmt.Errorf("read inbox entry %d of %s: %w", seq, user, err)
	}
	e, err := decodeEntry(snap)
	if err != nil {
		return err
	}
	if s.expired(e) {
		return fmt.Errorf("inbox entry %d of %s: %w", seq, user, ErrCursorExpired)
	}
	return nil
}
