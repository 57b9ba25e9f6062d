package routing_test

import (
	"slices"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/routing"
	"github.com/courierhq/courier/pkg/testenv"
)

func TestAttributesAndFilter(t *testing.T) {
	if got, want := routing.Filter("ws-edge-7d9f"), "attributes:courier_route_ws_edge_7d9f OR NOT attributes:courier_routed"; got != want {
		t.Fatalf("filter %q, want %q", got, want)
	}
	attrs := map[string]string{"courier_message_id": "m1"}
	if !routing.RoutedTo(attrs, "a") {
		t.Fatal("an unrouted delivery is meant for every pod")
	}
	routing.Mark(attrs, []string{"edge-a", "edge-b"})
	if attrs["courier_routed"] != "1" || attrs["courier_route_edge_a"] != "1" || attrs["courier_route_edge_b"] != "1" {
		t.Fatalf("attributes %v", attrs)
	}
	if !routing.RoutedTo(attrs, "edge-a") || routing.RoutedTo(attrs, "edge-c") {
		t.Fatal("RoutedTo disagrees with the routes")
	}
	nowhere := map[string]string{}
	routing.Mark(nowhere, nil)
	if routing.RoutedTo(nowhere, "edge-a") {
		t.Fatal("a delivery routed to no pod reached one")
	}
}

// Join, Leave, Pods and LeaveAll on the Firestore emulator.
func TestTable(t *testing.T) {
	project := testenv.Project(t)
	tab := routing.NewTable(testenv.Firestore(t, project))
	ctx := testenv.Context(t, 30*time.Second)

	pods := func(users ...string) []string {
		t.Helper()
		got, err := tab.Pods(ctx, users)
		if err != nil {
			t.Fatal(err)
		}
		return got
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
