package inbox

import (
	"context"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DeliveriesCollection holds, under messages/{id}, one document per
// recipient who acknowledged the message on a WebSocket:
// messages/{id}/deliveries/{userID} {delivered_at}. One document per
// recipient rather than a field of the message: a message to 1,000 users
// acknowledged within a second would otherwise be 1,000 writes to one
// document, far past what one Firestore document sustains (about one write
// a second). Acks kept before this layout, in the message's "delivered"
// map, are moved here once by `courierctl migrate-acks` (migrate.go).
const DeliveriesCollection = "deliveries"

type deliveryDoc struct {
	DeliveredAt time.Time `firestore:"delivered_at"`
}

// Ack is one recipient's acknowledgement of one message.
type Ack struct {
	MessageID, User string
}

// MarkDeliveredBatch records acks in two round trips whatever their number
// (up to 500): one read of the messages they name, one write. The result
// holds one error per ack: ErrNotFound for an unknown message or a user who
// is not its recipient (a client cannot mark what it never received),
// otherwise the write's error. Repeating an ack changes nothing but its
// time.
func (s *Store) MarkDeliveredBatch(ctx context.Context, acks []Ack) []error {
	errs := make([]error, len(acks))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	var refs []*firestore.DocumentRef
	index := map[string]int{}
	for _, a := range acks {
		if _, ok := index[a.MessageID]; !ok {
			index[a.MessageID] = len(refs)
			refs = append(refs, s.fs.Collection(MessagesCollection).Doc(a.MessageID))
		}
	}
	snaps, err := s.fs.GetAll(ctx, refs)
	if err != nil {
		return fail(fmt.Errorf("read %d acknowledged messages: %w", len(refs), err))
	}
	now := s.now().UTC()
	batch := s.fs.Batch()
	writes := 0
	for i, a := range acks {
		snap := snaps[index[a.MessageID]]
		if !snap.Exists() {
			errs[i] = ErrNotFound
			continue
		}
		var seqs struct {
			Seqs map[string]int64 `firestore:"seqs"`
		}
		if err := snap.DataTo(&seqs); err != nil {
			errs[i] = fmt.Errorf("decode message %s: %w", a.MessageID, err)
			continue
		}
		if _, ok := seqs.Seqs[a.User]; !ok {
			errs[i] = ErrNotFound
			continue
		}
		batch.Set(snap.Ref.Collection(DeliveriesCollection).Doc(a.User), deliveryDoc{DeliveredAt: now})
		writes++
	}
	if writes == 0 {
		return errs
	}
	if _, err := batch.Commit(ctx); err != nil {
		return fail(fmt.Errorf("record %d acks: %w", writes, err))
	}
	if s.onAcked != nil {
		for i, a := range acks {
			if errs[i] != nil {
				continue
			}
			if st, err := decodeStored(snaps[index[a.MessageID]]); err == nil {
				s.onAcked(a.User, st)
			}
		}
	}
	return errs
}

// OnAcked makes MarkDeliveredBatch call f for every ack it recorded, with
// the message it read anyway (the edge turns them into delivered
// receipts). It returns s.
func (s *Store) OnAcked(f func(user string, st Stored)) *Store {
	s.onAcked = f
	return s
}

// Acknowledged reports whether user acknowledged message id. A recipient is shown only its own state, so this is one read
// whatever the size of the send.
func (s *Store) Acknowledged(ctx context.Context, id, user string) (bool, error) {
	_, err := s.fs.Collection(MessagesCollection).Doc(id).Collection(DeliveriesCollection).Doc(user).Get(ctx)
	switch {
	case status.Code(err) == codes.NotFound:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read %s's ack of message %s: %w", user, id, err)
	}
	return true, nil
}

// DeliveryState says who acknowledged message id: how many recipients, and
// which (sorted) when listUsers is set — callers ask only for sends whose
// recipient list is shown (MaxListedRecipients), so the list stays small.
func (s *Store) DeliveryState(ctx context.Context, id string, listUsers bool) (users []string, count int, err error) {
	col := s.fs.Collection(MessagesCollection).Doc(id).Collection(DeliveriesCollection)
	if !listUsers {
		res, err := col.NewAggregationQuery().WithCount("n").Get(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("count acks of message %s: %w", id, err)
		}
		n, err := aggregateInt(res["n"])
		if err != nil {
			return nil, 0, fmt.Errorf("count acks of message %s: %w", id, err)
		}
		return nil, int(n), nil
	}
	docs, err := col.Limit(MaxListedRecipients + 1).Documents(ctx).GetAll()
	if err != nil && status.Code(err) != codes.NotFound {
		return nil, 0, fmt.Errorf("list acks of message %s: %w", id, err)
	}
	for _, d := range docs {
		users = append(users, d.Ref.ID)
	}
	// Document ids come back in order; sorted says so for any reader.
	slices.Sort(users)
	return users, len(users), nil
}

func aggregateInt(v any) (int64, error) {
	switch n := v.(type) {
	case int64:
		return n, nil
	case interface{ GetIntegerValue() int64 }:
		return n.GetIntegerValue(), nil
	}
	return 0, fmt.Errorf("unexpected count %T", v)
}
