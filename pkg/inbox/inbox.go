// Package inbox is Courier's Firestore repository: stored messages and each
// user's inbox. The pipeline-worker commits messages; the gateway and the
// edge read inboxes and messages.
//
// Layout (docs/firestore.md has the why):
//
//	messages/{messageID}                 the message, its recipients' inbox positions, delivery marks
//	users/{userID}                       {seq}: the last inbox position given out
//	users/{userID}/inbox/{seq:020d}      a copy of the message at inbox position seq
//
// Inbox positions are gap-free and in commit order per user: the commit
// transaction reads users/{userID}.seq and writes seq+1, so two commits that
// touch the same user serialize, and a position is never handed out before
// every smaller position of that user is committed. A reader holding
// position k therefore never misses an entry later committed below k.
package inbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

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
}

// New returns a Store on fs.
//
// Commits that touch the same recipient contend on users/{id}; Firestore
// aborts one of two such transactions and the client retries it with
// backoff. We allow more attempts than the client's default 5 because a
// popular recipient is the normal case, not a fault.
func New(fs *firestore.Client) *Store { return &Store{fs: fs, now: time.Now, maxAttempts: 20} }

// messageDoc is messages/{id}.
type messageDoc struct {
	From           string               `firestore:"from"`
	To             []string             `firestore:"to"`
	Payload        []byte               `firestore:"payload"`
	ContentType    string               `firestore:"content_type"`
	SentAt         time.Time            `firestore:"sent_at"`
	StoredAt       time.Time            `firestore:"stored_at"`
	IdempotencyKey string               `firestore:"idempotency_key,omitempty"`
	Seqs           map[string]int64     `firestore:"seqs"`
	Delivered      map[string]time.Time `firestore:"delivered,omitempty"`
}

// entryDoc is users/{uid}/inbox/{seq}.
type entryDoc struct {
	MessageID   string    `firestore:"message_id"`
	Seq         int64     `firestore:"seq"`
	From        string    `firestore:"from"`
	To          []string  `firestore:"to"`
	Payload     []byte    `firestore:"payload"`
	ContentType string    `firestore:"content_type"`
	SentAt      time.Time `firestore:"sent_at"`
	StoredAt    time.Time `firestore:"stored_at"`
}

type userDoc struct {
	Seq int64 `firestore:"seq"`
}

// Stored is a committed message with each recipient's inbox position.
type Stored struct {
	Message   *courierv1.Message
	Seqs      map[string]int64
	Delivered map[string]time.Time
}

// Delivery returns the fan-out delivery for s.
func (s Stored) Delivery() *courierv1.Delivery {
	d := &courierv1.Delivery{Message: s.Message}
	for _, uid := range s.Message.To {
		d.Recipients = append(d.Recipients, &courierv1.RecipientCursor{UserId: uid, Cursor: EncodeCursor(s.Seqs[uid])})
	}
	return d
}

// State is "delivered" once any recipient acknowledged it on a WebSocket,
// "stored" before.
func (s Stored) State() string {
	if len(s.Delivered) > 0 {
		return "delivered"
	}
	return "stored"
}

// Entry is one inbox entry.
type Entry struct {
	Message *courierv1.Message
	Seq     int64
}

// Cursor is the opaque cursor that resumes after e.
func (e Entry) Cursor() string { return EncodeCursor(e.Seq) }

func inboxID(seq int64) string { return fmt.Sprintf("%020d", seq) }

// Commit stores env's message and one inbox entry per recipient in one
// transaction. It is idempotent on the message id: when the message already
// exists nothing is written and the stored version is returned with
// created=false, so a redelivered envelope yields the same delivery.
func (s *Store) Commit(ctx context.Context, env *courierv1.Envelope) (st Stored, created bool, err error) {
	msgRef := s.fs.Collection(MessagesCollection).Doc(env.MessageId)
	userRefs := make([]*firestore.DocumentRef, len(env.Recipients))
	for i, uid := range env.Recipients {
		userRefs[i] = s.fs.Collection(UsersCollection).Doc(uid)
	}
	err = s.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		created = false
		snap, err := tx.Get(msgRef)
		if err == nil {
			st, err = decodeStored(snap)
			return err
		}
		if status.Code(err) != codes.NotFound {
			return fmt.Errorf("read message %s: %w", env.MessageId, err)
		}
		users, err := tx.GetAll(userRefs)
		if err != nil {
			return fmt.Errorf("read recipients of %s: %w", env.MessageId, err)
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		doc := messageDoc{
			From: env.Sender, To: env.Recipients, Payload: env.Payload, ContentType: env.ContentType,
			SentAt: env.SentAt.AsTime(), StoredAt: now, IdempotencyKey: env.IdempotencyKey,
			Seqs: make(map[string]int64, len(users)),
		}
		for i, u := range users {
			var ud userDoc
			if u.Exists() {
				if err := u.DataTo(&ud); err != nil {
					return fmt.Errorf("decode user %s: %w", env.Recipients[i], err)
				}
			}
			seq := ud.Seq + 1
			doc.Seqs[env.Recipients[i]] = seq
			if err := tx.Set(userRefs[i], userDoc{Seq: seq}); err != nil {
				return err
			}
			entry := entryDoc{
				MessageID: env.MessageId, Seq: seq, From: doc.From, To: doc.To, Payload: doc.Payload,
				ContentType: doc.ContentType, SentAt: doc.SentAt, StoredAt: now,
			}
			if err := tx.Create(userRefs[i].Collection(InboxCollection).Doc(inboxID(seq)), entry); err != nil {
				return err
			}
		}
		if err := tx.Create(msgRef, doc); err != nil {
			return err
		}
		st = storedFrom(env.MessageId, doc)
		created = true
		return nil
	}, firestore.MaxAttempts(s.maxAttempts))
	if err != nil {
		return Stored{}, false, fmt.Errorf("commit message %s: %w", env.MessageId, err)
	}
	return st, created, nil
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
// oldest first.
func (s *Store) List(ctx context.Context, user string, after int64, limit int) ([]Entry, error) {
	q := s.fs.Collection(UsersCollection).Doc(user).Collection(InboxCollection).
		OrderBy(firestore.DocumentID, firestore.Asc).
		StartAfter(inboxID(after)).
		Limit(limit)
	docs, err := q.Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("list inbox of %s: %w", user, err)
	}
	out := make([]Entry, 0, len(docs))
	for _, d := range docs {
		var e entryDoc
		if err := d.DataTo(&e); err != nil {
			return nil, fmt.Errorf("decode inbox entry %s: %w", d.Ref.Path, err)
		}
		out = append(out, Entry{Seq: e.Seq, Message: &courierv1.Message{
			Id: e.MessageID, From: e.From, To: e.To, Payload: e.Payload, ContentType: e.ContentType,
			SentAt: timestamppb.New(e.SentAt), StoredAt: timestamppb.New(e.StoredAt),
		}})
	}
	return out, nil
}

// MarkDelivered records that user acknowledged message id on a session. It
// is a no-op for a user who is not a recipient (a client cannot mark what
// it never received) and returns ErrNotFound for an unknown message.
func (s *Store) MarkDelivered(ctx context.Context, id, user string) error {
	ref := s.fs.Collection(MessagesCollection).Doc(id)
	return s.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if status.Code(err) == codes.NotFound {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read message %s: %w", id, err)
		}
		var doc messageDoc
		if err := snap.DataTo(&doc); err != nil {
			return fmt.Errorf("decode message %s: %w", id, err)
		}
		if _, ok := doc.Seqs[user]; !ok {
			return ErrNotFound
		}
		if _, done := doc.Delivered[user]; done {
			return nil
		}
		return tx.Update(ref, []firestore.Update{{FieldPath: firestore.FieldPath{"delivered", user}, Value: s.now().UTC()}})
	})
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
		},
		Seqs:      doc.Seqs,
		Delivered: doc.Delivered,
	}
}
