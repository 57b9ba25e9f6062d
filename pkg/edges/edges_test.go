package edges_test

import (
	"slices"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/testenv"
)

func TestBeatListRemove(t *testing.T) {
	project := testenv.Project(t)
	s := edges.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)
	started := time.Now().Add(-time.Minute)
	before := time.Now().Add(-5 * time.Second) // tolerate clock skew with the emulator
	if err := s.Beat(ctx, "edge-a", "projects/p/subscriptions/courier-edge-edge-a", started); err != nil {
		t.Fatal(err)
	}
	if err := s.Beat(ctx, "edge-b", "projects/p/subscriptions/courier-edge-edge-b", started); err != nil {
		t.Fatal(err)
	}
	pods, err := s.Pods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := pods["edge-a"]
	if len(pods) != 2 || !ok || a.Name != "edge-a" || a.Subscription != "projects/p/subscriptions/courier-edge-edge-a" {
		t.Fatalf("pods = %+v", pods)
	}
	if a.Heartbeat.Before(before) || a.Heartbeat.After(time.Now().Add(5*time.Second)) {
		t.Errorf("heartbeat %s is not the server's now", a.Heartbeat)
	}
	if !a.StartedAt.Equal(started.UTC().Truncate(time.Microsecond)) {
		t.Errorf("started_at = %s, want %s", a.StartedAt, started)
	}
	if err := s.Remove(ctx, "edge-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "edge-a"); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	pods, err = s.Pods(ctx)
	if err != nil || len(pods) != 1 {
		t.Fatalf("after remove: %v %v", pods, err)
	}
}

// Removing a pod also removes its targeted-routing records, so a swept pod
// no longer attracts deliveries; other pods' records stay.
func TestRemoveForgetsThePodsRoutes(t *testing.T) {
	project := testenv.Project(t)
	fs := testenv.Firestore(t, project)
	s, routes := edges.New(fs), presence.NewTable(fs)
	ctx := testenv.Context(t, time.Minute)
	for _, j := range [][2]string{{"alice", "edge-a"}, {"bob", "edge-a"}, {"bob", "edge-b"}} {
		if err := routes.Join(ctx, j[0], j[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Beat(ctx, "edge-a", "sub", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "edge-a"); err != nil {
		t.Fatal(err)
	}
	byUser, err := routes.PodsOf(ctx, []string{"alice", "bob"})
	if pods := presence.PodsFor(byUser, []string{"alice", "bob"}); err != nil || !slices.Equal(pods, []string{"edge-b"}) {
		t.Fatalf("pods after removing edge-a: %v %v", pods, err)
	}
}
