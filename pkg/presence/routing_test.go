package presence_test

import (
	"testing"

	"github.com/courierhq/courier/pkg/presence"
)

func TestAttributesAndFilter(t *testing.T) {
	if got, want := presence.Filter("ws-edge-7d9f"), "attributes:courier_route_ws_edge_7d9f OR NOT attributes:courier_routed"; got != want {
		t.Fatalf("filter %q, want %q", got, want)
	}
	attrs := map[string]string{"courier_message_id": "m1"}
	if !presence.RoutedTo(attrs, "a") {
		t.Fatal("an unrouted delivery is meant for every pod")
	}
	presence.Mark(attrs, []string{"edge-a", "edge-b"})
	if attrs["courier_routed"] != "1" || attrs["courier_route_edge_a"] != "1" || attrs["courier_route_edge_b"] != "1" {
		t.Fatalf("attributes %v", attrs)
	}
	if !presence.RoutedTo(attrs, "edge-a") || presence.RoutedTo(attrs, "edge-c") {
		t.Fatal("RoutedTo disagrees with the routes")
	}
	nowhere := map[string]string{}
	presence.Mark(nowhere, nil)
	if presence.RoutedTo(nowhere, "edge-a") {
		t.Fatal("a delivery routed to no pod reached one")
	}
}
