// Package peers answers who shares a conversation with whom, which decides
// who may watch whose presence and who a signal to a conversation reaches.
//
// Two sources, both in the user's own documents:
//
//   - Stored conversations (issue 21, when the Inbox is also a
//     Conversations, as inbox.Store is): a user shares a conversation with
//     other when the summary of their one-to-one conversation (the derived
//     id of {user, other}: users/{user}/conversations/{id}) exists, however
//     old it is, one batched read for all the users asked about; and a
//     conversation's members are those its newest entry in the user's inbox
//     names (the stored message's whole recipient list for a send over the
//     recipient-list bound).
//   - The recent view: the senders and recipients of the user's last
//     ScanLimit inbox entries and of up to ScanLimit messages they sent
//     (SentInbox). It covers groups (one-to-one summaries say nothing of
//     them) and messages stored before conversations and sender copies
//     existed. A send to more than 16 users lists nobody here and counts
//     for nobody.
//
// Answers are cached per user for CacheTTL: a watch or a typing signal
// must not cost a Firestore read each time.
package peers

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/signal"
	"github.com/courierhq/courier/pkg/wire"
)

// Inbox reads who took part in a user's recent messages (inbox.Store).
type Inbox interface {
	RecentParties(ctx context.Context, user string, limit int) ([]inbox.Party, error)
}

// SentInbox also reads who took part in messages a user sent
// (inbox.Store): messages stored before sender copies are not in the
// sender's inbox.
type SentInbox interface {
	SentParties(ctx context.Context, user string, limit int) ([]inbox.Party, error)
}

// Conversations reads a user's stored conversations (inbox.Store): exact
// answers, whatever the conversation's age.
type Conversations interface {
	// ConversationsExist reports which of ids user has a summary of.
	ConversationsExist(ctx context.Context, user string, ids []string) (map[string]bool, error)
	// ConversationMembers returns conv's members as its newest entry in
	// user's inbox names them; nil when user has no entry of it.
	ConversationMembers(ctx context.Context, user, conv string) ([]string, error)
}

// Options tune a Directory.
type Options struct {
	ScanLimit int           // inbox entries read per user (default 200)
	CacheTTL  time.Duration // how long an answer is reused (default 30s)
	MaxUsers  int           // users cached at once (default 10,000)
}

// Directory answers from users' conversations and recent inboxes, with a
// cache.
type Directory struct {
	in   Inbox
	opts Options
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]*view
}

// view is what is known of one user, read at `at`: the recent view, and
// the stored answers asked since (under Directory.mu).
type view struct {
	at    time.Time
	peers map[string]bool
	convs map[string][]string // conversation id → members

	oneToOne map[string]bool     // other → their one-to-one summary exists
	members  map[string][]string // conversation id → stored members (nil: not a member)
}

// maxAnswers bounds the stored answers cached per user (each map of a
// view): past it they are forgotten, which costs a read, never a wrong
// answer.
const maxAnswers = 1_000

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
	v = &view{at: now, peers: map[string]bool{}, convs: map[string][]string{},
		oneToOne: map[string]bool{}, members: map[string][]string{}}
	for _, p := range parties {
		if len(p.To) == 0 {
			continue
		}
		members := append([]string{p.From}, p.To...)
		slices.Sort(members)
		members = slices.Compact(members)
		id := p.ConversationID
		if id == "" {
			id = wire.DeriveConversationID(members)
		}
		// Newest first (RecentParties): a named conversation's members
		// are its newest message's.
		if _, seen := v.convs[id]; !seen {
			v.convs[id] = members
		}
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
// (signal.Conversations): from the conversation's newest entry in user's
// inbox, else from the recent view.
func (d *Directory) Members(ctx context.Context, user, conversation string) ([]string, error) {
	v, err := d.view(ctx, user)
	if err != nil {
		return nil, err
	}
	if cs, ok := d.in.(Conversations); ok {
		d.mu.Lock()
		m, known := v.members[conversation]
		d.mu.Unlock()
		if !known {
			if m, err = cs.ConversationMembers(ctx, user, conversation); err != nil {
				return nil, err
			}
			if !slices.Contains(m, user) {
				m = nil
			}
			d.mu.Lock()
			if len(v.members) >= maxAnswers {
				clear(v.members)
			}
			v.members[conversation] = m
			d.mu.Unlock()
		}
		if m != nil {
			return m, nil
		}
	}
	m, ok := v.convs[conversation]
	if !ok {
		return nil, signal.ErrNotMember
	}
	return m, nil
}

// Shares reports, for each of others, whether user shares a conversation
// with them (a user always "shares" with themself): the recent view, and
// for everyone it does not name, their one-to-one conversation's summary
// (one batched read).
func (d *Directory) Shares(ctx context.Context, user string, others []string) (map[string]bool, error) {
	v, err := d.view(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(others))
	ask := map[string]string{} // derived id → other
	d.mu.Lock()
	for _, o := range others {
		ok, known := v.oneToOne[o]
		out[o] = o == user || v.peers[o] || ok
		if !out[o] && !known {
			ask[wire.DeriveConversationID([]string{user, o})] = o
		}
	}
	d.mu.Unlock()
	cs, stored := d.in.(Conversations)
	if !stored || len(ask) == 0 {
		return out, nil
	}
	ids := make([]string, 0, len(ask))
	for id := range ask {
		ids = append(ids, id)
	}
	exist, err := cs.ConversationsExist(ctx, user, ids)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(v.oneToOne)+len(ask) > maxAnswers {
		clear(v.oneToOne)
	}
	for id, o := range ask {
		v.oneToOne[o] = exist[id]
		out[o] = exist[id]
	}
	return out, nil
}
