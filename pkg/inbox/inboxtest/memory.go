// Package inboxtest is the inbox store's test kit: Memory, an in-memory
// store that behaves like the Firestore one (inbox.Store and its
// Committer), Run, the contract suite that both pass, and Faulty, which
// wraps Memory for tests that inject failures.
//
// Unit tests of the services use Memory wherever they need a working store;
// emulator-backed tests use inbox.Store. Only tests import this package
// (TestOnlyTestsImportTheKit in pkg/testenv checks it).
package inboxtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Store is what the services use of an inbox store. *inbox.Store and
// *Memory satisfy it.
type Store interface {
	List(ctx context.Context, user string, after int64, limit int) ([]inbox.Entry, error)
	ListPage(ctx context.Context, user string, after int64, lim inbox.PageLimit) (inbox.Page, error)
	Head(ctx context.Context, user string) (int64, error)
	Get(ctx context.Context, id string) (inbox.Stored, error)
	MarkDeliveredBatch(ctx context.Context, acks []inbox.Ack) []error
	DeliveryState(ctx context.Context, id string, listUsers bool) (users []string, count int, err error)
	Acknowledged(ctx context.Context, id, user string) (bool, error)
}

// Committer commits batches of messages, as the pipeline-worker does
// (*inbox.Committer, or Memory.NewCommitter).
type Committer interface {
	Commit(ctx context.Context, envs []*courierv1.Envelope) []inbox.Result
}

// maxDocumentBytes is Firestore's limit on one document; a message whose
// inbox entry would exceed it is refused with InvalidArgument, as Firestore
// refuses it.
const maxDocumentBytes = 1 << 20

// Memory is an inbox store held in memory. It keeps the Firestore store's
// contract (Run): idempotent commits, gap-free positions 1..n per user in
// commit order, the recipient-list rule on entries, acks only from
// recipients. Every value it returns is a copy. It is
// safe for concurrent use; each commit is atomic.
type Memory struct {
	mu       sync.Mutex
	now      func() time.Time
	messages map[string]*message
	inboxes  map[string][]*courierv1.Message // user → entry at position i+1
	reads    map[[2]string]int64             // (user, conversation) → read marker
}

type message struct {
	m    *courierv1.Message // as Get returns it: the whole recipient list, no to_count
	seqs map[string]int64
	// senderSeq is the sender's copy (inbox.Stored.SenderSeq).
	senderSeq int64
	acks      map[string]time.Time // messages/{id}/deliveries
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{now: time.Now, messages: map[string]*message{}, inboxes: map[string][]*courierv1.Message{}}
}

// NewCommitter returns a batch committer on s; see inbox.Committer.
func (s *Memory) NewCommitter() Committer { return committerFunc(s.commit) }

type committerFunc func(ctx context.Context, envs []*courierv1.Envelope) []inbox.Result

func (f committerFunc) Commit(ctx context.Context, envs []*courierv1.Envelope) []inbox.Result {
	return f(ctx, envs)
}

func (s *Memory) commit(ctx context.Context, envs []*courierv1.Envelope) []inbox.Result {
	res := make([]inbox.Result, len(envs))
	if err := ctx.Err(); err != nil {
		for i := range res {
			res[i].Err = fmt.Errorf("commit batch of %d messages: %w", len(envs), err)
		}
		return res
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC().Truncate(time.Microsecond)
	for i, env := range envs {
		if old, ok := s.messages[env.MessageId]; ok {
			res[i] = inbox.Result{Stored: old.stored()}
			continue
		}
		if n := entryBytes(env); n > maxDocumentBytes {
			res[i].Err = fmt.Errorf("commit message %s: %w", env.MessageId,
				status.Errorf(codes.InvalidArgument, "inbox entry of %d bytes exceeds the maximum document size", n))
			continue
		}
		msg := &message{
			m: &courierv1.Message{
				Id: env.MessageId, From: env.Sender, To: slices.Clone(env.Recipients), Payload: slices.Clone(env.Payload),
				ContentType: env.ContentType,
				SentAt:      timestamppb.New(env.SentAt.AsTime().Truncate(time.Microsecond)), StoredAt: timestamppb.New(now),
				ConversationId: wire.ConversationOf(env),
			},
			seqs: make(map[string]int64, len(env.Recipients)),
		}
		entry := inbox.Shown(msg.m)
		entry.ToCount = int32(len(env.Recipients))
		for _, u := range env.Recipients {
			s.inboxes[u] = append(s.inboxes[u], entry)
			msg.seqs[u] = int64(len(s.inboxes[u]))
		}
		// The sender's copy, as the Firestore committer writes it.
		if !slices.Contains(env.Recipients, env.Sender) {
			own := proto.Clone(entry).(*courierv1.Message)
			own.Outgoing = true
			s.inboxes[env.Sender] = append(s.inboxes[env.Sender], own)
			msg.senderSeq = int64(len(s.inboxes[env.Sender]))
		}
		s.messages[env.MessageId] = msg
		res[i] = inbox.Result{Stored: msg.stored(), Created: true}
	}
	return res
}

// entryBytes estimates the size of env's inbox entry the way Firestore
// counts a document: its values plus a margin for names and numbers.
func entryBytes(env *courierv1.Envelope) int {
	n := len(env.Payload) + len(env.ContentType) + len(env.Sender) + len(env.MessageId) + 320
	if len(env.Recipients) <= inbox.MaxListedRecipients {
		for _, u := range env.Recipients {
			n += len(u) + 1
		}
	}
	return n
}

func (m *message) stored() inbox.Stored {
	return inbox.Stored{Message: proto.Clone(m.m).(*courierv1.Message), Seqs: maps.Clone(m.seqs), SenderSeq: m.senderSeq}
}

// List returns up to limit entries of user's inbox after position after.
func (s *Memory) List(ctx context.Context, user string, after int64, limit int) ([]inbox.Entry, error) {
	if limit < 0 {
		return nil, fmt.Errorf("list inbox of %s: %w", user, status.Error(codes.InvalidArgument, "limit is negative"))
	}
	p, err := s.ListPage(ctx, user, after, inbox.PageLimit{Items: limit})
	return p.Entries, err
}

// ListPage returns user's inbox after position after, bounded by lim; see
// inbox.Store.ListPage (both cut pages with inbox.Pager).
func (s *Memory) ListPage(ctx context.Context, user string, after int64, lim inbox.PageLimit) (inbox.Page, error) {
	if err := ctx.Err(); err != nil {
		return inbox.Page{}, fmt.Errorf("list inbox of %s: %w", user, err)
	}
	p := inbox.NewPager(lim)
	if lim.Items <= 0 {
		return p.Page(), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	entries := s.inboxes[user]
	for seq := max(after, 0) + 1; seq <= int64(len(entries)); seq++ {
		if !p.Add(inbox.Entry{Seq: seq, Message: proto.Clone(entries[seq-1]).(*courierv1.Message)}) {
			break
		}
	}
	return p.Page(), nil
}

// Head returns user's last inbox position (0 for an empty inbox).
func (s *Memory) Head(ctx context.Context, user string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("read inbox head of %s: %w", user, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.inboxes[user])), nil
}

// Get returns one stored message, or inbox.ErrNotFound.
func (s *Memory) Get(ctx context.Context, id string) (inbox.Stored, error) {
	if err := ctx.Err(); err != nil {
		return inbox.Stored{}, fmt.Errorf("get message %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok {
		return inbox.Stored{}, inbox.ErrNotFound
	}
	return m.stored(), nil
}

// MarkDeliveredBatch records acks: inbox.ErrNotFound for an unknown message
// or a user who is not its recipient.
func (s *Memory) MarkDeliveredBatch(ctx context.Context, acks []inbox.Ack) []error {
	errs := make([]error, len(acks))
	if err := ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("record %d acks: %w", len(acks), err)
		}
		return errs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	for i, a := range acks {
		m, ok := s.messages[a.MessageID]
		if !ok {
			errs[i] = inbox.ErrNotFound
			continue
		}
		if _, recipient := m.seqs[a.User]; !recipient {
			errs[i] = inbox.ErrNotFound
			continue
		}
		if m.acks == nil {
			m.acks = map[string]time.Time{}
		}
		m.acks[a.User] = now
	}
	return errs
}

// DeliveryState says who acknowledged message id; see
// inbox.Store.DeliveryState. Like Firestore's, a listing reads at most
// inbox.MaxListedRecipients+1 acks (callers list only small sends).
func (s *Memory) DeliveryState(ctx context.Context, id string, listUsers bool) ([]string, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("acks of message %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var acked []string
	if m, ok := s.messages[id]; ok {
		acked = slices.Sorted(maps.Keys(m.acks))
	}
	if !listUsers {
		return nil, len(acked), nil
	}
	users := acked[:min(len(acked), inbox.MaxListedRecipients+1)]
	return users, len(users), nil
}

// Acknowledged reports whether user acknowledged message id; see
// inbox.Store.Acknowledged.
func (s *Memory) Acknowledged(ctx context.Context, id, user string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("ack of message %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok {
		return false, nil
	}
	_, acked := m.acks[user]
	return acked, nil
}

// ListConversations lists user's conversations; see
// inbox.Store.ListConversations (here the summary is never stale).
func (s *Memory) ListConversations(ctx context.Context, user string, after int64, limit int) (inbox.ConversationPage, error) {
	if err := ctx.Err(); err != nil {
		return inbox.ConversationPage{}, fmt.Errorf("list conversations of %s: %w", user, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byID := map[string]*inbox.Conversation{}
	var all []*inbox.Conversation
	entries := s.inboxes[user]
	for i := len(entries) - 1; i >= 0; i-- {
		m, seq := entries[i], int64(i+1)
		id := m.GetConversationId()
		if id == "" {
			continue
		}
		c, ok := byID[id]
		if !ok {
			e := inbox.Entry{Seq: seq, Message: proto.Clone(m).(*courierv1.Message)}
			c = &inbox.Conversation{ID: id, Last: &e, ReadSeq: s.reads[[2]string{user, id}], UpdatedAt: m.GetStoredAt().AsTime()}
			byID[id] = c
			all = append(all, c)
		}
		if !m.GetOutgoing() && seq > c.ReadSeq {
			c.UnreadCount++
		}
	}
	page := inbox.ConversationPage{Conversations: []inbox.Conversation{}}
	for _, c := range all {
		if after > 0 && c.Last.Seq >= after {
			continue
		}
		if len(page.Conversations) == limit {
			page.Next = inbox.EncodeCursor(page.Conversations[limit-1].Last.Seq)
			break
		}
		page.Conversations = append(page.Conversations, *c)
	}
	return page, nil
}

// ListConversation pages one conversation of user's inbox; see
// inbox.Store.ListConversation.
func (s *Memory) ListConversation(ctx context.Context, user, conv string, r inbox.ConversationPageReq) (inbox.ConversationMessages, error) {
	if err := ctx.Err(); err != nil {
		return inbox.ConversationMessages{}, fmt.Errorf("list conversation %s of %s: %w", conv, user, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []inbox.Entry
	for i, m := range s.inboxes[user] {
		if m.GetConversationId() == conv {
			match = append(match, inbox.Entry{Seq: int64(i + 1), Message: proto.Clone(m).(*courierv1.Message)})
		}
	}
	var out inbox.ConversationMessages
	switch {
	case r.After > 0:
		i := slices.IndexFunc(match, func(e inbox.Entry) bool { return e.Seq > r.After })
		if i < 0 {
			i = len(match)
		}
		match = match[i:]
		out.More = len(match) > r.Limit
		out.Entries = match[:min(len(match), r.Limit)]
	default:
		if r.Before > 0 {
			i := slices.IndexFunc(match, func(e inbox.Entry) bool { return e.Seq >= r.Before })
			if i >= 0 {
				match = match[:i]
			}
		}
		out.More = len(match) > r.Limit
		out.Entries = match[max(0, len(match)-r.Limit):]
	}
	if out.Entries == nil {
		out.Entries = []inbox.Entry{}
	}
	return out, nil
}

// MarkRead moves user's read marker of conv forward; see
// inbox.Store.MarkRead.
func (s *Memory) MarkRead(ctx context.Context, user, conv string, seq int64) (inbox.ReadState, error) {
	if err := ctx.Err(); err != nil {
		return inbox.ReadState{}, fmt.Errorf("mark %s read for %s: %w", conv, user, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reads == nil {
		s.reads = map[[2]string]int64{}
	}
	k := [2]string{user, conv}
	st := inbox.ReadState{ReadSeq: s.reads[k], Prev: s.reads[k]}
	if seq > st.ReadSeq {
		s.reads[k], st.ReadSeq, st.Moved = seq, seq, true
	}
	for i, m := range s.inboxes[user] {
		if m.GetConversationId() == conv && !m.GetOutgoing() && int64(i+1) > st.ReadSeq {
			st.Unread++
		}
	}
	return st, nil
}

// ReadCount counts the recipients whose read marker reached st; see
// inbox.Store.ReadCount.
func (s *Memory) ReadCount(ctx context.Context, st inbox.Stored) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("read markers of %s: %w", st.Message.GetId(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for u, seq := range st.Seqs {
		if s.reads[[2]string{u, st.Message.GetConversationId()}] >= seq {
			n++
		}
	}
	return n, nil
}
