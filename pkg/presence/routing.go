package presence

import (
	"strings"
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
