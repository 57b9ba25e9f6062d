// Package inbox is Courier's Firestore repository: stored messages and each
// user's inbox. The pipeline-worker commits messages; the gateway and the
// edge read inboxes and messages.
//
// Layout (docs/firestore.md has the why):
//
//	messages/{messageID}                 the message and its recipients' inbox positions
//	messages/{messageID}/deliveries/{u}  u acknowledged it on a WebSocket (delivered.go)
//	users/{userID}/inbox/{seq:020d}      a copy of the message at inbox position seq
//
// A commit (Committer) writes a batch of messages and one inbox entry per
// recipient in one atomic write, and it takes no locks: for each recipient
// it knows a position k that exists (its highest position, from a plain
// query or from its own last commit) and creates entries k+1, k+2, … with a
// precondition that fails if they exist. We avoid read-write transactions
// on purpose: their locks outlive a writer killed mid-commit (the Firestore
// emulator held them for minutes in our worker-kill test), stalling every
// later commit to the same users.
//
// Positions are gap-free and appear in order per user: entry k+1 is only
// ever created by a writer that knew entry k to exist, so a user's entries
// always form the prefix 1..n, and a reader holding position k never misses
// an entry later committed below k.
package inbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Collection names.
const (
	MessagesCollection = "messages"
	UsersCollection    = "users"
	InboxCollection    = "inbox"
)

// ErrNotFound is returned for a message that does not exist.
var ErrNotFound = errors.New("not found")

// Store reads and writes messages and inboxes in Firestore.
type Store struct {
	fs          *firestore.Client
	now         func() time.Time
	maxAttempts int
	// retention is INBOX_RETENTION: how long inbox entries are kept (0:
	// forever). Writers stamp entries' expire_at with it; readers refuse
	// cursors behind it (ErrCursorExpired).
	retention time.Duration
}

// WithRetention makes s keep inbox entries for d (0: forever): commits
// stamp each entry's expire_at (the Firestore TTL field), and reads answer
// ErrCursorExpired for a position behind what is retained. It returns s.
func (s *Store) WithRetention(d time.Duration) *Store {
	s.retention = d
	return s
}

func (s *Store) expireAt(now time.Time) *time.Time {
	if s.retention <= 0 {
		return nil
	}
	t := now.Add(s.retention)
	return &t
}

// New returns a Store on fs.
//
// Concurrent commits to one recipient race for the same next position; the
// loser re-reads the head and tries the following one, up to maxAttempts.
func New(fs *firestore.Client) *Store { return &Store{fs: fs, now: time.Now, maxAttempts: 50} }

// messageDoc is messages/{id}.
type messageDoc struct {
	From           string           `firestore:"from"`
	To             []string         `firestore:"to"`
	Payload        []byte           `firestore:"payload"`
	ContentType    string           `firestore:"content_type"`
	SentAt         time.Time        `firestore:"sent_at"`
	StoredAt       time.Time        `firestore:"stored_at"`
	IdempotencyKey string           `firestore:"idempotency_key,omitempty"`
	Seqs           map[string]int64 `firestore:"seqs"`
	// ConversationID is absent on messages stored before conversations.
	ConversationID string `firestore:"conversation_id,omitempty"`
	// SenderSeq is the position of the sender's copy in the sender's own
	// inbox: 0 when the sender is also a recipient (their entry is the
	// recipient's) and on messages stored before sender copies. Kept apart
	// from Seqs, which lists recipients only: acks and delivery counts
	// check membership there, and the sender is not a recipient.
	SenderSeq int64 `firestore:"sender_seq,omitempty"`
}

// entryDoc is users/{uid}/inbox/{seq}.
type entryDoc struct {
	MessageID string `firestore:"message_id"`
	Seq       int64  `firestore:"seq"`
	From      string `firestore:"from"`
	// To is the whole recipient list for a send to at most
	// MaxListedRecipients users, and empty for a larger one (see Shown);
	// entries written before the rule hold the whole list.
	To          []string  `firestore:"to"`
	ToCount     int       `firestore:"to_count,omitempty"`
	Payload     []byte    `firestore:"payload"`
	ContentType string    `firestore:"content_type"`
	SentAt      time.Time `firestore:"sent_at"`
	StoredAt    time.Time `firestore:"stored_at"`
	// ConversationID is indexed with seq (docs/firestore.indexes.json):
	// a conversation's page is one query in the user's inbox.
	ConversationID string `firestore:"conversation_id,omitempty"`
	// Outgoing marks the sender's own copy.
	// Always written (false on recipients' entries) so unread counts can
	// filter on it: Firestore cannot query a missing field.
	Outgoing bool `firestore:"outgoing"`
	// ExpireAt is the Firestore TTL field (INBOX_RETENTION): absent when
	// entries are kept forever.
	ExpireAt *time.Time `firestore:"expire_at,omitempty"`
}

// Stored is a committed message with each recipient's inbox position.
type Stored struct {
	Message *courierv1.Message
	Seqs    map[string]int64
	// SenderSeq is the sender's copy's position in the sender's inbox (0:
	// none, see messageDoc.SenderSeq).
	SenderSeq int64
}

// Delivery returns the fan-out delivery for s: one cursor per recipient
// and, when the message has a sender's copy, the sender's (outgoing), so
// the sender's other sessions get it live.
func (s Stored) Delivery() *courierv1.Delivery {
	d := &courierv1.Delivery{Message: Shown(s.Message)}
	for _, uid := range s.Message.To {
		d.Recipients = append(d.Recipients, &courierv1.RecipientCursor{UserId: uid, Cursor: EncodeCursor(s.Seqs[uid])})
	}
	if s.SenderSeq > 0 {
		d.Recipients = append(d.Recipients, &courierv1.RecipientCursor{UserId: s.Message.From, Cursor: EncodeCursor(s.SenderSeq), Outgoing: true})
	}
	return d
}

// InboxUsers are the users whose inboxes a message is written to: its
// recipients and, unless among them, its sender (the sender's copy).
func InboxUsers(env *courierv1.Envelope) []string {
	if slices.Contains(env.Recipients, env.Sender) {
		return env.Recipients
	}
	return append(slices.Clip(env.Recipients), env.Sender)
}

// Entry is one inbox entry.
type Entry struct {
	Message *courierv1.Message
	Seq     int64
	// ExpireAt is when retention lets Firestore delete the entry (nil:
	// kept forever).
	ExpireAt *time.Time
}

// Cursor is the opaque cursor that resumes after e.
func (e Entry) Cursor() string { return EncodeCursor(e.Seq) }

func inboxID(seq int64) string { return fmt.Sprintf("%020d", seq) }

func newMessageDoc(env *courierv1.Envelope, now time.Time) messageDoc {
	return messageDoc{
		ConversationID: wire.ConversationOf(env),
		From:           env.Sender, To: env.Recipients, Payload: env.Payload, ContentType: env.ContentType,
		// Firestore keeps microseconds: the Stored returned by a commit
		// says exactly what a later read returns.
		SentAt: env.SentAt.AsTime().Truncate(time.Microsecond), StoredAt: now, IdempotencyKey: env.IdempotencyKey,
		Seqs: make(map[string]int64, len(env.Recipients)),
	}
}

func newEntryDoc(id string, seq int64, doc messageDoc, outgoing bool, expireAt *time.Time) entryDoc {
	return entryDoc{
		MessageID: id, Seq: seq, From: doc.From, To: listedRecipients(doc.To), ToCount: len(doc.To), Payload: doc.Payload,
		ContentType: doc.ContentType, SentAt: doc.SentAt, StoredAt: doc.StoredAt,
		ConversationID: doc.ConversationID, Outgoing: outgoing, ExpireAt: expireAt,
	}
}

func (s *Store) entryRef(user string, seq int64) *firestore.DocumentRef {
	return s.fs.Collection(UsersCollection).Doc(user).Collection(InboxCollection).Doc(inboxID(seq))
}

// Get returns one stored message.
func (s *Store) Get(ctx context.Context, id string) (Stored, error) {
	snap, err := s.fs.Collection(MessagesCollection).Doc(id).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return Stored{}, ErrNotFound
	}
	if err != nil {
		return Stored{}, fmt.Errorf("get message %s: %w", id, err)
	}
	return decodeStored(snap)
}

// List returns up to limit entries of user's inbox after position after,
// oldest first, with no byte bound (ListPage has one).
func (s *Store) List(ctx context.Context, user string, after int64, limit int) ([]Entry, error) {
	if limit < 0 {
		return nil, fmt.Errorf("list inbox of %s: limit %d is negative", user, limit)
	}
	p, err := s.ListPage(ctx, user, after, PageLimit{Items: limit})
	return p.Entries, err
}

func decodeEntry(d *firestore.DocumentSnapshot) (Entry, error) {
	var e entryDoc
	if err := d.DataTo(&e); err != nil {
		return Entry{}, fmt.Errorf("decode inbox entry %s: %w", d.Ref.Path, err)
	}
	return Entry{Seq: e.Seq, Message: &courierv1.Message{
		Id: e.MessageID, From: e.From, To: e.To, ToCount: int32(max(e.ToCount, len(e.To))), Payload: e.Payload, ContentType: e.ContentType,
		SentAt: timestamppb.New(e.SentAt), StoredAt: timestamppb.New(e.StoredAt),
		ConversationId: entryConversation(e), Outgoing: e.Outgoing,
	}, ExpireAt: e.ExpireAt}, nil
}

func decodeStored(snap *firestore.DocumentSnapshot) (Stored, error) {
	var doc messageDoc
	if err := snap.DataTo(&doc); err != nil {
		return Stored{}, fmt.Errorf("decode message %s: %w", snap.Ref.ID, err)
	}
	return storedFrom(snap.Ref.ID, doc), nil
}

func storedFrom(id string, doc messageDoc) Stored {
	return Stored{
		Message: &courierv1.Message{
			Id: id, From: doc.From, To: doc.To, Payload: doc.Payload, ContentType: doc.ContentType,
			SentAt: timestamppb.New(doc.SentAt), StoredAt: timestamppb.New(doc.StoredAt),
			ConversationId: messageConversation(doc),
		},
		Seqs:      doc.Seqs,
		SenderSeq: doc.SenderSeq,
	}
}

// entryConversation is an entry's conversation; an entry stored before
// conversations existed gets the derived id when it lists its recipients
// (so an old one-to-one chat and a new one are the same conversation), none
// otherwise.
func entryConversation(e entryDoc) string {
	if e.ConversationID != "" || len(e.To) == 0 {
		return e.ConversationID
	}
	return wire.DeriveConversationID(append([]string{e.From}, e.To...))
}

func messageConversation(doc messageDoc) string {
	if doc.ConversationID != "" {
		return doc.ConversationID
	}
	return wire.DeriveConversationID(append([]string{doc.From}, doc.To...))
}
