package fanout

import "testing"

func TestRouteFilter(t *testing.T) {
	if got, want := RouteFilter("ws-edge-7d9f"), "attributes:courier_route_ws_edge_7d9f OR NOT attributes:courier_routed"; got != want {
		t.Fatalf("RouteFilter = %q, want %q", got, want)
	}
}
