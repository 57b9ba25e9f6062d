package routing_test

import (
	"testing"

	"github.com/courierhq/courier/pkg/routing"
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
