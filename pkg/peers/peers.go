// Package peers answers who shares a conversation with whom, which decides
// who may watch whose presence and who a signal to a conversation reaches.
//
// Until conversations are stored on their own (issue 21), a user's
// conversations are read from the user's recent inbox: each message there
// is a conversation of its sender and its recipients, whose id is the
// derived one (DerivedID). So a user shares a conversation with everyone
// who sent them a message, or was a fellow recipient of one, among their
// last ScanLimit inbox entries, and with the recipients of up to ScanLimit
// messages they sent (when the Inbox can read those: SentInbox); a send to
// more than 16 users lists nobody and counts for nobody.
//
// Answers are cached per user for CacheTTL: a watch or a typing signal
// must not cost a Firestore read each time.
package peers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/signal"
)

// DerivedID is the id of the conversation of members when the sender names
// none: "d." + the first 32 hex digits of sha256 of the sorted, unique
// member ids joined by "\n" (the contract of issue 21; the JS client
// computes the same).
func DerivedID(members []string) string {
	m := slices.Clone(members)
	slices.Sort(m)
	m = slices.Compact(m)
	sum := sha256.Sum256([]byte(strings.Join(m, "\n")))
	return "d." + hex.EncodeToString(sum[:])[:32]
}

// Inbox reads who took part in a user's recent messages (inbox.Store).
type Inbox interface {
	RecentParties(ctx context.Context, user string, limit int) ([]inbox.Party, error)
}

// SentInbox also reads who took part in messages a user sent
// (inbox.Store): their own messages are not in their inbox.
type SentInbox interface {
	SentParties(ctx context.Context, user string, limit int) ([]inbox.Party, error)
}

// Options tune a Directory.
type Options struct {
	ScanLimit int           // inbox entries read per user (default 200)
	CacheTTL  time.Duration // how long an answer is reused (default 30s)
	MaxUsers  int           // users cached at once (default 10,000)
}

// Directory answers from users' recent inboxes, with a cache.
type Directory struct {
	in   Inbox
	opts Options
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]*view
}

// view is what one user's recent inbox says.
type view struct {
	at    time.Time
	peers map[string]bool
	convs map[string][]string // conversation id → members
}

// New returns a Directory reading in.
func New(in Inbox, o Options) *Directory {
	if o.ScanLimit <= 0 {
		o.ScanLimit = 200
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 30 * time.Second
	}
	if o.MaxUsers <= 0 {
		o.MaxUsers = 10_000
	}
	return &Directory{in: in, opts: o, now: time.Now, cache: map[string]*view{}}
}

func (d *Directory) view(ctx context.Context, user string) (*view, error) {
	now := d.now()
	d.mu.Lock()
	v := d.cache[user]
	d.mu.Unlock()
	if v != nil && now.Sub(v.at) < d.opts.CacheTTL {
		return v, nil
	}
	parties, err := d.in.RecentParties(ctx, user, d.opts.ScanLimit)
	if err != nil {
		return nil, err
	}
	if sent, ok := d.in.(SentInbox); ok {
		more, err := sent.SentParties(ctx, user, d.opts.ScanLimit)
		if err != nil {
			return nil, err
		}
		parties = append(parties, more...)
	}
	v = &view{at: now, peers: map[string]bool{}, convs: map[string][]string{}}
	for _, p := range parties {
		if len(p.To) == 0 {
			continue
		}
		members := append([]string{p.From}, p.To...)
		slices.Sort(members)
		members = slices.Compact(members)
		v.convs[DerivedID(members)] = members
		for _, m := range members {
			if m != user {
				v.peers[m] = true
			}
		}
	}
	d.mu.Lock()
	if len(d.cache) >= d.opts.MaxUsers {
		clear(d.cache) // crude but bounded; a miss costs one read
	}
	d.cache[user] = v
	d.mu.Unlock()
	return v, nil
}

// Members returns the members of conversation if user is one of them
// (signal.Conversations).
func (d *Directory) Members(ctx context.Context, user, conversation string) ([]string, error) {
	v, err := d.view(ctx, user)
	if err != nil {
		return nil, err
	}
	m, ok := v.convs[conversation]
	if !ok {
		return nil, signal.ErrNotMember
	}
	return m, nil
}

// Shares reports, for each of others, whether user shares a conversation
// with them (a user always "shares" with themself).
func (d *Directory) Shares(ctx context.Context, user string, others []string) (map[string]bool, error) {
	v, err := d.view(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(others))
	for _, o := range others {
		out[o] = o == user || v.peers[o]
	}
	return out, nil
}
