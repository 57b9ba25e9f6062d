// Package routing is targeted routing: which ws-edge pods hold sessions of
// which users, so that a delivery reaches only the pods that can use it.
//
// Without it every edge pod receives every delivery on its own subscription
// and drops those for users it does not hold; the edges' total CPU grows
// with the number of pods (docs/benchmarks.md). With it:
//
//   - an edge records, in Firestore, that it holds a user before that
//     session's first inbox read (Join), and removes the record when the
//     user's last session on the pod ends (Leave);
//   - the worker, after committing a batch of messages, reads their
//     recipients' records in one request (PodsOf) and marks each delivery with AttrRouted plus one
//     RouteAttribute(pod) per pod;
//   - each pod's subscription filter (Filter) lets through the deliveries
//     routed to it and the unrouted ones.
//
// Why no message is lost to a stale read: the worker reads presence after
// its commit, the edge writes presence before its inbox read. Either the
// worker's read sees the edge's record (the delivery is routed there), or
// it ran before the record was written, and then the commit came before the
// session's inbox read, which therefore returns the message (resume) or
// starts above it (live-only sessions begin at the inbox head). Firestore
// reads are strongly consistent, so "before" in time is "visible".
//
// A record left behind by a pod that died only costs a delivery routed to
// a subscription that no longer exists; `courierctl sweep` removes such
// records with the pod's subscription.
//
// Layout: presence/{user} {pods: {<pod>: joined_at}}.
package routing

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Routing attributes of a delivery. A delivery with AttrRouted reaches only
// the pods it names with RouteAttribute; one without it reaches every pod.
const (
	AttrRouted      = "courier_routed"
	AttrRoutePrefix = "courier_route_"
)

// RouteAttribute is the attribute naming pod as a target. Pod names are
// [a-z0-9-]; dashes become underscores so the key is a plain identifier in
// filter expressions (no two valid pod names map to the same key).
func RouteAttribute(pod string) string {
	return AttrRoutePrefix + strings.ReplaceAll(pod, "-", "_")
}

// Filter is pod's subscription filter: routed deliveries reach only the
// pods they name, unrouted ones every pod.
func Filter(pod string) string {
	return "attributes:" + RouteAttribute(pod) + " OR NOT attributes:" + AttrRouted
}

// Mark sets the routing attributes of a delivery to pods on attrs. With no
// pod (no recipient is connected anywhere) the delivery is routed nowhere:
// it stays in the inboxes for the next sync.
func Mark(attrs map[string]string, pods []string) {
	attrs[AttrRouted] = "1"
	for _, p := range pods {
		attrs[RouteAttribute(p)] = "1"
	}
}

// RoutedTo reports whether a delivery with attrs is meant for pod: it is
// unrouted, or routed to pod.
func RoutedTo(attrs map[string]string, pod string) bool {
	if _, routed := attrs[AttrRouted]; !routed {
		return true
	}
	_, ok := attrs[RouteAttribute(pod)]
	return ok
}

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

// Leave removes the record that pod holds sessions of user.
func (t *Table) Leave(ctx context.Context, user, pod string) error {
	_, err := t.fs.Collection(Collection).Doc(user).Update(ctx, []firestore.Update{{FieldPath: podField(pod), Value: firestore.Delete}})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("remove presence of %s on %s: %w", user, pod, err)
	}
	return nil
}

// Pods returns the pods holding sessions of any of users, sorted, in one
// read.
func (t *Table) Pods(ctx context.Context, users []string) ([]string, error) {
	byUser, err := t.PodsOf(ctx, users)
	if err != nil {
		return nil, err
	}
	return PodsFor(byUser, users), nil
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
	// Ordering by the field selects exactly the documents that have it.
	snaps, err := t.fs.Collection(Collection).OrderByPath(podField(pod), firestore.Asc).Documents(ctx).GetAll()
	if err != nil {
		return 0, fmt.Errorf("find presence records of %s: %w", pod, err)
	}
	n := 0
	for _, s := range snaps {
		if _, err := s.Ref.Update(ctx, []firestore.Update{{FieldPath: podField(pod), Value: firestore.Delete}}); err != nil && status.Code(err) != codes.NotFound {
			return n, fmt.Errorf("remove presence record of %s on %s: %w", s.Ref.ID, pod, err)
		}
		n++
	}
	return n, nil
}
