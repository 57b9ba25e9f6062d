package inbox

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Head returns user's last inbox position (0 for an empty inbox). A reader
// that starts live at Head and later sees position Head+k knows that
// positions Head+1 .. Head+k-1 are already stored, since positions are
// handed out in commit order; the edge uses it to order live deliveries of
// a session opened without a cursor.
func (s *Store) Head(ctx context.Context, user string) (int64, error) {
	snap, err := s.fs.Collection(UsersCollection).Doc(user).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read inbox head of %s: %w", user, err)
	}
	var u userDoc
	if err := snap.DataTo(&u); err != nil {
		return 0, fmt.Errorf("decode user %s: %w", user, err)
	}
	return u.Seq, nil
}
