package inbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ConversationsCollection holds, under users/{uid}, one summary per
// conversation of the user: users/{uid}/conversations/{conversationID}
// {conversation_id, last_seq, updated_at, read_seq}. The worker writes
// last_seq/updated_at in its commits, coalesced (summaryWriter): a busy
// group would otherwise rewrite every member's summary per message, far
// beyond the ~1 write/s one document sustains. So last_seq may lag the
// conversation's newest message by up to SummaryInterval; readers take the
// newest message, and the unread count, from indexed queries of the inbox
// itself (docs/firestore.md, "Conversations"). read_seq is the caller's read
// marker, moved forward only by MarkRead.
const ConversationsCollection = "conversations"

// SummaryInterval is the least time between two writes of one summary by
// one worker process.
const SummaryInterval = time.Second

type summaryDoc struct {
	ConversationID string    `firestore:"conversation_id"`
	LastSeq        int64     `firestore:"last_seq"`
	UpdatedAt      time.Time `firestore:"updated_at"`
	ReadSeq        int64     `firestore:"read_seq"`
}

func (s *Store) summaryRef(user, conv string) *firestore.DocumentRef {
	return s.fs.Collection(UsersCollection).Doc(user).Collection(ConversationsCollection).Doc(conv)
}

// summaryWriter remembers when this process last wrote each (user,
// conversation) summary, so that a batch writes a summary only when none
// was written for SummaryInterval: per batch (one write for all of a
// batch's messages) and in time (none for a while after).
type summaryWriter struct {
	mu   sync.Mutex
	last map[[2]string]time.Time
}

// maxRemembered bounds the memory of summaryWriter: past it, the map is
// forgotten, which costs one early write per summary, never a missed one.
const maxRemembered = 100_000

func (w *summaryWriter) due(user, conv string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := [2]string{user, conv}
	if t, ok := w.last[k]; ok && now.Sub(t) < SummaryInterval {
		return false
	}
	if w.last == nil || len(w.last) >= maxRemembered {
		w.last = map[[2]string]time.Time{}
	}
	w.last[k] = now
	return true
}

// forget undoes due's marks when the commit carrying them failed.
func (w *summaryWriter) forget(keys [][2]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		delete(w.last, k)
	}
}

// Conversation is one conversation of a user, as listed.
type Conversation struct {
	ID string
	// Last is the newest entry of the conversation in the user's inbox
	// (nil for a conversation whose entries all expired).
	Last        *Entry
	ReadSeq     int64
	UnreadCount int
	UpdatedAt   time.Time
	// order is the summary's last_seq: the listing's cursor.
	order int64
}

// ConversationPage is one page of a user's conversation list.
type ConversationPage struct {
	Conversations []Conversation
	// Next resumes the listing after this page ("" at the end).
	Next string
}

// ListConversations returns user's conversations, most recent first,
// after the listing cursor `after` (0: from the newest). Each carries its
// newest message and the user's unread count, read from the inbox itself
// (the summary only orders the list; see ConversationsCollection).
func (s *Store) ListConversations(ctx context.Context, user string, after int64, limit int) (ConversationPage, error) {
	q := s.fs.Collection(UsersCollection).Doc(user).Collection(ConversationsCollection).Query
	if after > 0 {
		q = q.Where("last_seq", "<", after)
	}
	docs, err := q.OrderBy("last_seq", firestore.Desc).Limit(limit + 1).Documents(ctx).GetAll()
	if err != nil {
		return ConversationPage{}, fmt.Errorf("list conversations of %s: %w", user, err)
	}
	more := len(docs) > limit
	docs = docs[:min(len(docs), limit)]
	page := ConversationPage{Conversations: make([]Conversation, len(docs))}
	errs := make([]error, len(docs))
	var wg sync.WaitGroup
	for i, d := range docs {
		var sd summaryDoc
		if err := d.DataTo(&sd); err != nil {
			return ConversationPage{}, fmt.Errorf("decode conversation %s: %w", d.Ref.Path, err)
		}
		c := &page.Conversations[i]
		c.ID, c.ReadSeq, c.UpdatedAt, c.order = d.Ref.ID, sd.ReadSeq, sd.UpdatedAt, sd.LastSeq
		wg.Go(func() {
			last, err := s.conversationQuery(user, c.ID).OrderBy("seq", firestore.Desc).Limit(1).Documents(ctx).GetAll()
			if err == nil && len(last) == 1 {
				var e Entry
				if e, err = decodeEntry(last[0]); err == nil {
					c.Last = &e
					c.order = max(c.order, e.Seq)
					c.UpdatedAt = e.Message.GetStoredAt().AsTime()
				}
			}
			if err == nil {
				c.UnreadCount, err = s.unread(ctx, user, c.ID, c.ReadSeq)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return ConversationPage{}, fmt.Errorf("list conversations of %s: %w", user, err)
	}
	// The summaries' last_seq may lag by up to SummaryInterval: order the
	// page by the newest entries actually found.
	slices.SortStableFunc(page.Conversations, func(a, b Conversation) int { return int(b.order - a.order) })
	if more && len(docs) > 0 {
		var sd summaryDoc
		_ = docs[len(docs)-1].DataTo(&sd)
		page.Next = EncodeCursor(sd.LastSeq)
	}
	return page, nil
}

func (s *Store) conversationQuery(user, conv string) firestore.Query {
	return s.fs.Collection(UsersCollection).Doc(user).Collection(InboxCollection).Where("conversation_id", "==", conv)
}

// unread counts the entries of conv in user's inbox after readSeq that the
// user did not send (one aggregation query; index conversation_id,
// outgoing, seq).
func (s *Store) unread(ctx context.Context, user, conv string, readSeq int64) (int, error) {
	q := s.conversationQuery(user, conv).Where("outgoing", "==", false).Where("seq", ">", readSeq)
	res, err := q.NewAggregationQuery().WithCount("n").Get(ctx)
	if err != nil {
		return 0, fmt.Errorf("count unread of %s in %s: %w", user, conv, err)
	}
	n, err := aggregateInt(res["n"])
	return int(n), err
}

// ConversationPageReq says which page of a conversation to read: the
// newest (both zero), the one just before Before, or just after After.
type ConversationPageReq struct {
	Before, After int64
	Limit         int
}

// ConversationMessages is one page of a conversation, oldest first.
type ConversationMessages struct {
	Entries []Entry
	// More: entries exist beyond the page in the direction read (older
	// for the newest page and Before, newer for After).
	More bool
}

// ListConversation returns a page of conv in user's inbox. A
// conversation the user is not in is simply empty: the query runs inside
// the user's own inbox.
func (s *Store) ListConversation(ctx context.Context, user, conv string, r ConversationPageReq) (ConversationMessages, error) {
	if err := s.checkRetained(ctx, user, max(r.Before, r.After)); err != nil {
		return ConversationMessages{}, err
	}
	q := s.conversationQuery(user, conv)
	switch {
	case r.After > 0:
		q = q.Where("seq", ">", r.After).OrderBy("seq", firestore.Asc)
	case r.Before > 0:
		q = q.Where("seq", "<", r.Before).OrderBy("seq", firestore.Desc)
	default:
		q = q.OrderBy("seq", firestore.Desc)
	}
	docs, err := q.Limit(r.Limit + 1).Documents(ctx).GetAll()
	if err != nil {
		return ConversationMessages{}, fmt.Errorf("list conversation %s of %s: %w", conv, user, err)
	}
	out := ConversationMessages{More: len(docs) > r.Limit, Entries: make([]Entry, 0, min(len(docs), r.Limit))}
	for _, d := range docs[:min(len(docs), r.Limit)] {
		e, err := decodeEntry(d)
		if err != nil {
			return ConversationMessages{}, err
		}
		out.Entries = append(out.Entries, e)
	}
	if r.After == 0 {
		slices.Reverse(out.Entries)
	}
	return out, nil
}

// ReadState is a user's read marker of one conversation.
type ReadState struct {
	ReadSeq int64
	Unread  int
	// Moved is true when this call moved the marker (false for a cursor at
	// or behind it); Prev is where it was.
	Moved bool
	Prev  int64
}

// MarkRead moves user's read marker of conv forward to seq: an older or
// equal position leaves it where it is. Concurrent calls settle on the
// largest (a transaction: read the marker, write it only forward).
func (s *Store) MarkRead(ctx context.Context, user, conv string, seq int64) (ReadState, error) {
	ref := s.summaryRef(user, conv)
	var st ReadState
	err := s.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		st = ReadState{}
		snap, err := tx.Get(ref)
		if err != nil && status.Code(err) != codes.NotFound {
			return err
		}
		var sd summaryDoc
		if snap.Exists() {
			if err := snap.DataTo(&sd); err != nil {
				return err
			}
		}
		st.ReadSeq, st.Prev = sd.ReadSeq, sd.ReadSeq
		if seq <= sd.ReadSeq {
			return nil
		}
		st.ReadSeq, st.Moved = seq, true
		return tx.Set(ref, map[string]any{"conversation_id": conv, "read_seq": seq}, firestore.MergeAll)
	})
	if err != nil {
		return ReadState{}, fmt.Errorf("mark %s read up to %d for %s: %w", conv, seq, user, err)
	}
	st.Unread, err = s.unread(ctx, user, conv, st.ReadSeq)
	return st, err
}

// ReadCount counts the recipients of a stored message whose read marker
// of its conversation reached the message (one batched read of their
// summaries).
func (s *Store) ReadCount(ctx context.Context, st Stored) (int, error) {
	conv := st.Message.GetConversationId()
	if conv == "" || len(st.Seqs) == 0 {
		return 0, nil
	}
	users := make([]string, 0, len(st.Seqs))
	refs := make([]*firestore.DocumentRef, 0, len(st.Seqs))
	for u := range st.Seqs {
		users = append(users, u)
		refs = append(refs, s.summaryRef(u, conv))
	}
	snaps, err := s.fs.GetAll(ctx, refs)
	if err != nil {
		return 0, fmt.Errorf("read markers of message %s: %w", st.Message.GetId(), err)
	}
	n := 0
	for i, snap := range snaps {
		if !snap.Exists() {
			continue
		}
		var sd summaryDoc
		if err := snap.DataTo(&sd); err != nil {
			return 0, fmt.Errorf("decode %s: %w", snap.Ref.Path, err)
		}
		if sd.ReadSeq >= st.Seqs[users[i]] {
			n++
		}
	}
	return n, nil
}
