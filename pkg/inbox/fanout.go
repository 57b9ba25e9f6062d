package inbox

import (
	"context"
	"fmt"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fannedOutField on messages/{id} records when the pipeline-worker published
// the message's delivery to the fan-out topic. Commit alone cannot tell a
// redelivered envelope whose delivery went out (publish nothing) from one
// whose worker died between the commit and the publish (publish now).
const fannedOutField = "fanned_out_at"

// MarkFannedOut records that the delivery of message id was published.
func (s *Store) MarkFannedOut(ctx context.Context, id string) error {
	_, err := s.fs.Collection(MessagesCollection).Doc(id).Update(ctx,
		[]firestore.Update{{Path: fannedOutField, Value: s.now().UTC()}})
	if status.Code(err) == codes.NotFound {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("mark message %s fanned out: %w", id, err)
	}
	return nil
}

// FannedOut reports whether MarkFannedOut was recorded for message id.
func (s *Store) FannedOut(ctx context.Context, id string) (bool, error) {
	snap, err := s.fs.Collection(MessagesCollection).Doc(id).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("read message %s: %w", id, err)
	}
	_, ok := snap.Data()[fannedOutField]
	return ok, nil
}
