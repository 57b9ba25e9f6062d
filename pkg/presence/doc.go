// Package presence is users' presence: which ws-edge pods hold sessions of
// which users, and targeted routing's decision built on it.
//
//   - The record (Table): presence/{user} {pods: {<pod>: joined_at}} in
//     Firestore.
//   - The pod's side (Recorder): a pod's session registry reports a user's
//     first session there and the user's last one leaving; the Recorder
//     turns those events into Join and Leave, one user's writes in order,
//     and lets a session wait until its user's record is committed.
//   - The decision (Mark, Filter, RoutedTo): the worker marks each delivery
//     with the pods holding its recipients; each pod's subscription filter
//     lets through the deliveries routed to it and the unrouted ones.
//
// Which pods are alive is not here: pkg/edges keeps the pods' heartbeats
// for `courierctl sweep` (a record of the pod, not of a user).
//
// # Targeted routing
//
// Without it every edge pod receives every delivery on its own subscription
// and drops those for users it does not hold; the edges' total CPU grows
// with the number of pods (docs/benchmarks.md). With it:
//
//   - an edge records that it holds a user before that session's first
//     inbox read (Recorder, Table.Join), and removes the record when the
//     user's last session on the pod ends (Table.Leave);
//   - the worker, after committing a batch of messages, reads their
//     recipients' records in one request (Table.PodsOf) and marks each
//     delivery (Mark) with AttrRouted plus one RouteAttribute(pod) per pod;
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
// records with the pod's subscription (pkg/edges, Table.LeaveAll).
package presence
