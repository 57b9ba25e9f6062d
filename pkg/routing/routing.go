// Package routing is targeted routing's decision: a delivery names the
// ws-edge pods that hold sessions of its recipients (as recorded in
// pkg/presence), so that it reaches only the pods that can use it.
//
// Without it every edge pod receives every delivery on its own subscription
// and drops those for users it does not hold; the edges' total CPU grows
// with the number of pods (docs/benchmarks.md). With it:
//
//   - an edge records, in Firestore, that it holds a user before that
//     session's first inbox read (presence.Table.Join), and removes the
//     record when the user's last session on the pod ends (Leave);
//   - the worker, after committing a batch of messages, reads their
//     recipients' records in one request (presence.Table.PodsOf) and marks
//     each delivery (Mark) with AttrRouted plus one RouteAttribute(pod) per
//     pod;
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
package routing

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
