// Package edges records, in Firestore, which ws-edge pods are alive, so
// that `courierctl sweep` can tell an orphaned edge subscription (its pod
// died without deleting it) from a live one.
//
// Pub/Sub cannot carry this signal itself: the expiration policy deletes an
// idle subscription only after a day on GCP and never on the emulator, and
// the emulator refuses to update subscription labels, so a heartbeat label
// would work in production only.
//
// Layout: edges/{pod} {subscription, heartbeat (server time), started_at}.
//
// Ordering contract: an edge records its first heartbeat before it creates
// its subscription, and sweep lists subscriptions before it reads the
// heartbeats, so a subscription sweep sees always has a heartbeat sweep can
// see.
package edges

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/presence"
)

// Collection holds one document per edge pod.
const Collection = "edges"

// Pod is one edge pod's record.
type Pod struct {
	Name         string    `firestore:"-"`
	Subscription string    `firestore:"subscription"`
	Heartbeat    time.Time `firestore:"heartbeat"`
	StartedAt    time.Time `firestore:"started_at"`
}

// Store reads and writes edge pod records.
type Store struct {
	fs *firestore.Client
}

// New returns a Store on fs.
func New(fs *firestore.Client) *Store { return &Store{fs: fs} }

// Beat records that pod is alive now (Firestore's clock), owning
// subscription.
func (s *Store) Beat(ctx context.Context, pod, subscription string, startedAt time.Time) error {
	_, err := s.fs.Collection(Collection).Doc(pod).Set(ctx, map[string]any{
		"subscription": subscription,
		"heartbeat":    firestore.ServerTimestamp,
		"started_at":   startedAt.UTC(),
	})
	if err != nil {
		return fmt.Errorf("record heartbeat of edge %s: %w", pod, err)
	}
	return nil
}

// Remove deletes pod's record (graceful stop, or sweep of an orphan), and
// first the pod's targeted-routing records of the users it held
// (pkg/presence), so a failure leaves the heartbeat for the next sweep.
func (s *Store) Remove(ctx context.Context, pod string) error {
	if _, err := presence.NewTable(s.fs).LeaveAll(ctx, pod); err != nil {
		return fmt.Errorf("remove edge %s: %w", pod, err)
	}
	_, err := s.fs.Collection(Collection).Doc(pod).Delete(ctx)
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("remove edge %s: %w", pod, err)
	}
	return nil
}

// Pods returns every recorded pod by name.
func (s *Store) Pods(ctx context.Context) (map[string]Pod, error) {
	// One document per pod: small enough to read at once.
	snaps, err := s.fs.Collection(Collection).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("list edges: %w", err)
	}
	out := make(map[string]Pod, len(snaps))
	for _, snap := range snaps {
		var p Pod
		if err := snap.DataTo(&p); err != nil {
			return nil, fmt.Errorf("decode edge %s: %w", snap.Ref.ID, err)
		}
		p.Name = snap.Ref.ID
		out[p.Name] = p
	}
	return out, nil
}
