package presence_test

import (
	"slices"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/testenv"
)

// Join, Leave, PodsOf and LeaveAll on the Firestore emulator.
func TestTable(t *testing.T) {
	project := testenv.Project(t)
	tab := presence.NewTable(testenv.Firestore(t, project))
	ctx := testenv.Context(t, 30*time.Second)

	pods := func(users ...string) []string {
		t.Helper()
		byUser, err := tab.PodsOf(ctx, users)
		if err != nil {
			t.Fatal(err)
		}
		return presence.PodsFor(byUser, users)
	}
	if got := pods("alice", "bob"); len(got) != 0 {
		t.Fatalf("pods of nobody: %v", got)
	}
	for _, j := range [][2]string{{"alice", "edge-a"}, {"alice", "edge-b"}, {"bob", "edge-b"}, {"carol", "edge-c"}, {"alice", "edge-a"}} {
		if err := tab.Join(ctx, j[0], j[1]); err != nil {
			t.Fatal(err)
		}
	}
	if got := pods("alice", "bob"); !slices.Equal(got, []string{"edge-a", "edge-b"}) {
		t.Fatalf("pods of alice and bob: %v", got)
	}
	if got := pods("carol", "dave"); !slices.Equal(got, []string{"edge-c"}) {
		t.Fatalf("pods of carol and dave: %v", got)
	}

	if err := tab.Leave(ctx, "alice", "edge-a"); err != nil {
		t.Fatal(err)
	}
	if err := tab.Leave(ctx, "dave", "edge-a"); err != nil { // never joined
		t.Fatalf("leaving without a record: %v", err)
	}
	if got := pods("alice"); !slices.Equal(got, []string{"edge-b"}) {
		t.Fatalf("pods of alice after leaving edge-a: %v", got)
	}

	n, err := tab.LeaveAll(ctx, "edge-b")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("LeaveAll removed %d records, want 2 (alice, bob)", n)
	}
	if got := pods("alice", "bob", "carol"); !slices.Equal(got, []string{"edge-c"}) {
		t.Fatalf("pods after edge-b left: %v", got)
	}
}

// LeavePod with a time removes only the records written before it (a dead
// pod's), not those of a pod restarted under the same name, and names the
// users it removed.
func TestLeavePodBefore(t *testing.T) {
	tab := presence.NewTable(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, 30*time.Second)
	if err := tab.Join(ctx, "old", "edge-a"); err != nil {
		t.Fatal(err)
	}
	users, err := tab.LeavePod(ctx, "edge-a", time.Now().Add(-time.Hour))
	if err != nil || len(users) != 0 {
		t.Fatalf("records older than an hour ago: %v %v", users, err)
	}
	users, err = tab.LeavePod(ctx, "edge-a", time.Now().Add(time.Hour))
	if err != nil || !slices.Equal(users, []string{"old"}) {
		t.Fatalf("records older than now: %v %v", users, err)
	}
	byUser, err := tab.PodsOf(ctx, []string{"old"})
	if err != nil || len(byUser) != 0 {
		t.Fatalf("after LeavePod: %v %v", byUser, err)
	}
}
