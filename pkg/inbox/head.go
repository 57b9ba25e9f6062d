package inbox

import (
	"context"
	"fmt"

	"cloud.google.com/go/firestore"
)

// Head returns user's last inbox position (0 for an empty inbox). A reader
// that starts live at Head and later sees position Head+k knows that
// positions Head+1 .. Head+k-1 are already stored, since positions are
// handed out in commit order; the edge uses it to order live deliveries of
// a session opened without a cursor.
func (s *Store) Head(ctx context.Context, user string) (int64, error) {
	docs, err := s.fs.Collection(UsersCollection).Doc(user).Collection(InboxCollection).
		OrderBy("seq", firestore.Desc).Limit(1).Documents(ctx).GetAll() // Firestore has no descending key scan

	if err != nil {
		return 0, fmt.Errorf("read inbox head of %s: %w", user, err)
	}
	if len(docs) == 0 {
		return 0, nil
	}
	var e entryDoc
	if err := docs[0].DataTo(&e); err != nil {
		return 0, fmt.Errorf("decode inbox entry %s: %w", docs[0].Ref.Path, err)
	}
	return e.Seq, nil
}
