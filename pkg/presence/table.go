package presence

import (
	"context"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Collection holds one document per user with sessions somewhere.
const Collection = "presence"

// Table reads and writes presence records.
type Table struct {
	fs *firestore.Client
}

// NewTable returns a Table on fs.
func NewTable(fs *firestore.Client) *Table { return &Table{fs: fs} }

func podField(pod string) firestore.FieldPath { return firestore.FieldPath{"pods", pod} }

// Join records that pod holds sessions of user. It returns once the record
// is committed: the caller reads the user's inbox only after that.
func (t *Table) Join(ctx context.Context, user, pod string) error {
	_, err := t.fs.Collection(Collection).Doc(user).Set(ctx,
		map[string]any{"pods": map[string]any{pod: firestore.ServerTimestamp}},
		firestore.Merge(podField(pod)))
	if err != nil {
		return fmt.Errorf("record presence of %s on %s: %w", user, pod, err)
	}
	return nil
}

// FieldLastSeen is when a pod last removed its record of the user (server
// time): the user's "last seen" once no pod holds them (pkg/online).
const FieldLastSeen = "last_seen"

// Leave removes the record that pod holds sessions of user, and stamps
// the user's last_seen.
func (t *Table) Leave(ctx context.Context, user, pod string) error {
	_, err := t.fs.Collection(Collection).Doc(user).Update(ctx, []firestore.Update{
		{FieldPath: podField(pod), Value: firestore.Delete}, {Path: FieldLastSeen, Value: firestore.ServerTimestamp}})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("remove presence of %s on %s: %w", user, pod, err)
	}
	return nil
}

// PodsOf returns, in one read, the pods holding sessions of each of users
// (sorted; users connected nowhere are absent), so that a batch of
// deliveries is routed with one request.
func (t *Table) PodsOf(ctx context.Context, users []string) (map[string][]string, error) {
	refs := make([]*firestore.DocumentRef, len(users))
	for i, u := range users {
		refs[i] = t.fs.Collection(Collection).Doc(u)
	}
	snaps, err := t.fs.GetAll(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("read presence of %d users: %w", len(users), err)
	}
	byUser := make(map[string][]string, len(snaps))
	for _, s := range snaps {
		if !s.Exists() {
			continue
		}
		m, _ := s.Data()["pods"].(map[string]any)
		var pods []string
		for p := range m {
			pods = append(pods, p)
		}
		if len(pods) > 0 {
			slices.Sort(pods)
			byUser[s.Ref.ID] = pods
		}
	}
	return byUser, nil
}

// PodsFor returns the pods holding any of users according to byUser
// (PodsOf), sorted and without repeats.
func PodsFor(byUser map[string][]string, users []string) []string {
	var pods []string
	for _, u := range users {
		pods = append(pods, byUser[u]...)
	}
	slices.Sort(pods)
	return slices.Compact(pods)
}

// LeaveAll removes every record of pod (a pod that stopped or died) and
// returns how many it removed.
func (t *Table) LeaveAll(ctx context.Context, pod string) (int, error) {
	users, err := t.LeavePod(ctx, pod, time.Time{})
	return len(users), err
}

// LeavePod removes the records of pod written before before (all of them
// when before is zero) and returns the users whose record it removed
// (their presence may have changed). A dead pod's records are older than
// its last heartbeat; a pod restarted under the same name writes newer
// ones, which stay.
func (t *Table) LeavePod(ctx context.Context, pod string, before time.Time) ([]string, error) {
	// Ordering by the field selects exactly the documents that have it.
	snaps, err := t.fs.Collection(Collection).OrderByPath(podField(pod), firestore.Asc).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("find presence records of %s: %w", pod, err)
	}
	var users []string
	for _, s := range snaps {
		var opts []firestore.Precondition
		if !before.IsZero() {
			joined, err := s.DataAtPath(podField(pod))
			if at, ok := joined.(time.Time); err != nil || !ok || !at.Before(before) {
				continue
			}
			// Not if the record changed since it was read (a rejoin).
			opts = append(opts, firestore.LastUpdateTime(s.UpdateTime))
		}
		if _, err := s.Ref.Update(ctx, []firestore.Update{{FieldPath: podField(pod), Value: firestore.Delete},
			{Path: FieldLastSeen, Value: firestore.ServerTimestamp}}, opts...); err != nil {
			if c := status.Code(err); c == codes.NotFound || c == codes.FailedPrecondition {
				continue
			}
			return users, fmt.Errorf("remove presence record of %s on %s: %w", s.Ref.ID, pod, err)
		}
		users = append(users, s.Ref.ID)
	}
	return users, nil
}
