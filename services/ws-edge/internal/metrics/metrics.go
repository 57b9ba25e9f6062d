// Package metrics declares the edge's Prometheus metrics in one place, on a
// registry the caller provides, so several edges in one test process do not
// collide on the default registry. Counters on the per-frame path are
// bound to their labels once here, not looked up per frame.
package metrics

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
)

// Metrics are the edge's collectors; every name starts with courier_ws_edge_.
type Metrics struct {
	// Sessions is the number of open WebSocket sessions on this pod.
	Sessions prometheus.Gauge
	// Connects counts accepted WebSocket sessions.
	Connects prometheus.Counter
	// Rejected counts refused sessions, before the upgrade or at the auth
	// frame, by reason (unauthorized, auth_timeout, auth_backlog, origin,
	// bad_cursor, user_limit, pod_limit, draining, presence).
	Rejected *prometheus.CounterVec
	// Disconnects counts ended sessions by WebSocket close code.
	Disconnects *prometheus.CounterVec
	// Received counts deliveries pulled from this pod's subscription.
	Received prometheus.Counter
	// Queued counts frames handed to sessions (a delivery to a user with
	// two local sessions counts two).
	Queued prometheus.Counter
	// Written counts message frames written to sockets, by source: live, or
	// replay (read from the inbox: a resume, a catch-up or a gap fill).
	Written                 *prometheus.CounterVec
	WrittenLive, WrittenInb prometheus.Counter
	// Dropped counts deliveries or frames not written, by reason
	// (no_local_session, bad_data, duplicate, session_closed,
	// routed_elsewhere, catch_up: queued frames a session dropped to read
	// them from the inbox instead).
	Dropped                                *prometheus.CounterVec
	DroppedDuplicate, DroppedClosed, DropC prometheus.Counter
	// QueueOverflows counts send queues that overflowed: the session was
	// behind, dropped its queue and caught up from the inbox.
	QueueOverflows prometheus.Counter
	// CatchUps counts sessions that switched to catching up from the inbox
	// (a queue overflow, or positions missing from what they received).
	CatchUps prometheus.Counter
	// Stalled counts sessions closed with 1008 because a socket write made
	// no progress for WS_WRITE_TIMEOUT (the client does not read).
	Stalled prometheus.Counter
	// DeliveryLatency is the time from the message's sent_at (gateway
	// acceptance) to the socket write of a live delivery.
	DeliveryLatency prometheus.Histogram
	// SessionWriteLatency is, per session, the time from the fan-out
	// handing a live delivery to the user's sessions to that session's
	// socket write of it (ordering, the queue and the write itself).
	SessionWriteLatency prometheus.Histogram
	// The edge's latency in parts (docs/benchmarks.md attributes the
	// group fan-out's p99 with them): PubSubHop from the delivery's
	// Pub/Sub publish time to this pod's handler (per delivery);
	// ReorderWait from the handler to the hand-over to the sessions, i.e.
	// the wait behind a missing position (per live frame and user);
	// QueueWait from the hand-over to the start of the socket write that
	// carries it (per live frame and session); SocketWrite one socket
	// write (per write).
	PubSubHop, ReorderWait, QueueWait, SocketWrite prometheus.Histogram
	// FramesPerWrite is how many frames one socket write carried (more
	// than one only for batch=1 sessions with a backlog).
	FramesPerWrite prometheus.Histogram
	// BadFrames counts malformed or unknown client frames.
	BadFrames prometheus.Counter
	// Acks counts client ack frames by result (ok, not_found, rejected,
	// rate_limited, error, queue_full).
	Acks *prometheus.CounterVec
	// ReceiveErrors counts Receive calls that ended with an error (each is
	// retried after a backoff).
	ReceiveErrors prometheus.Counter
	// RoutedElsewhere counts deliveries received although targeted routing
	// sent them to other pods only (the pod then drops them). On GCP the
	// subscription filter keeps them away (it stays 0); the emulator applies
	// no filter, so there it measures what the filter saves.
	RoutedElsewhere prometheus.Counter

	// Ordering (package sequencer): deliveries offered to users' buffers by
	// result (released, held, duplicate, dropped); gaps seen (a position
	// missing while later ones arrived); gaps closed by the late delivery
	// itself; originals that arrived after their gap was read (the window
	// was too short); gaps given up after failed reads; the lateness of
	// late deliveries; and the current reorder window.
	Offered                              *prometheus.CounterVec
	offered                              map[string]prometheus.Counter
	Gaps, GapsFilledLive, GapsFilledLate prometheus.Counter
	GapsGivenUp                          prometheus.Counter
	Lateness                             prometheus.Histogram
	ReorderWindow                        prometheus.Gauge
	InboxReads                           *prometheus.CounterVec
	inboxReads                           map[string]prometheus.Counter

	// Ephemeral events (pkg/ephemeral: signals, presence, receipts, read
	// markers) by kind (signal, presence, receipt, read, other) and result:
	// written (a frame queued on a local session; one per session),
	// dropped_queue_full (a session's ephemeral queue was full: never
	// retried), no_local_session (none of its users here), bad_data.
	Ephemeral *prometheus.CounterVec
	// Signals counts client signal frames by result: sent (taken by the
	// publisher), bad, too_large, rate_limited, unavailable.
	Signals *prometheus.CounterVec
	// PresenceOps counts presence work by op: "write" (this pod's record of
	// a user written or removed), "read" (a read of users'
	// states: a watch, a change), "sweep" (records of a dead pod removed).
	// The records' own writes are Join/Leave (pkg/presence), at most about
	// two per user per offline delay per pod.
	PresenceOps *prometheus.CounterVec
	// UnknownSchema counts fan-out messages of a courier_schema this edge
	// does not know (acked and dropped: not ours, or from a newer version).
	UnknownSchema prometheus.Counter
}

// partBuckets resolve the latency parts from a tenth of a millisecond (a
// socket write) to seconds (an overloaded queue).
var partBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .02, .03, .05, .075, .1, .15, .2, .3, .4, .5, .75, 1, 2.5, 5, 10}

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	const ns = "courier_ws_edge_"
	m := &Metrics{
		Sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "sessions", Help: "Open WebSocket sessions."}),
		Connects: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "connects_total", Help: "Accepted WebSocket sessions."}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "rejected_total", Help: "WebSocket upgrade requests refused before the upgrade, by reason.",
		}, []string{"reason"}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "disconnects_total", Help: "Ended sessions by WebSocket close code (1000-1015, else other).",
		}, []string{"code"}),
		Received: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "deliveries_received_total", Help: "Deliveries pulled from this pod's subscription."}),
		Queued:   prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "frames_queued_total", Help: "Frames handed to sessions by fan-out."}),
		Written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "deliveries_written_total", Help: "Message frames written to sockets, by source (live, replay: read from the inbox).",
		}, []string{"source"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "deliveries_dropped_total", Help: "Deliveries or frames not written, by reason.",
		}, []string{"reason"}),
		QueueOverflows: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "queue_overflows_total",
			Help: "Send queues that overflowed; the session caught up from the inbox."}),
		CatchUps: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "catchups_total",
			Help: "Sessions that switched to catching up from the inbox."}),
		Stalled: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "stalled_total",
			Help: "Sessions closed with 1008 because the client did not read (a socket write made no progress for WS_WRITE_TIMEOUT)."}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    ns + "delivery_latency_seconds",
			Help:    "From the message's sent_at to the socket write of a live delivery.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		SessionWriteLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    ns + "session_write_latency_seconds",
			Help:    "Per session: from the fan-out handing a live delivery to the user's sessions to this session's socket write of it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		PubSubHop: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "pubsub_hop_seconds",
			Help: "From a delivery's Pub/Sub publish time to this pod's handler.", Buckets: partBuckets}),
		ReorderWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "reorder_wait_seconds",
			Help: "From the handler to the hand-over to the user's sessions (the wait behind a missing position), per live frame and user.", Buckets: partBuckets}),
		QueueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "queue_wait_seconds",
			Help: "From the hand-over to the start of the socket write that carries the frame, per live frame and session.", Buckets: partBuckets}),
		SocketWrite: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "socket_write_seconds",
			Help: "One socket write.", Buckets: partBuckets}),
		FramesPerWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: ns + "frames_per_write", Help: "Frames carried by one socket write.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		BadFrames:     prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "bad_frames_total", Help: "Malformed or unknown client frames."}),
		Acks:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "acks_total", Help: "Client ack frames by result."}, []string{"result"}),
		ReceiveErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "receive_errors_total", Help: "Subscription Receive calls that failed and were retried."}),
		RoutedElsewhere: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "deliveries_routed_elsewhere_total",
			Help: "Deliveries received although targeted routing sent them to other pods only (a subscription filter keeps them away on GCP)."}),
		Offered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "ordering_total",
			Help: "Live deliveries offered to a user's reorder buffer, by result (released, held, duplicate, dropped)."}, []string{"result"}),
		Gaps: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "gaps_total",
			Help: "Gaps seen: a user's position missing while later ones arrived."}),
		GapsFilledLive: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "gaps_filled_live_total",
			Help: "Late deliveries that arrived within the reorder window (no inbox read)."}),
		GapsFilledLate: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "gaps_filled_late_total",
			Help: "Deliveries that arrived after their gap had been read from the inbox (the window was too short)."}),
		GapsGivenUp: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "gaps_given_up_total",
			Help: "Gaps whose inbox read failed; what waited behind them was released and sessions caught up themselves."}),
		Lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: ns + "delivery_lateness_seconds", Help: "How long a late delivery's successors waited for it on this pod.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30},
		}),
		ReorderWindow: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "reorder_window_seconds",
			Help: "How long a missing position is waited for before it is read from the inbox (adapts to lateness)."}),
		InboxReads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "inbox_reads_total",
			Help: "Inbox reads by purpose (resume, catchup, gap, head) and result (ok, shared: joined an identical read in flight, error)."},
			[]string{"purpose", "result"}),
		Ephemeral: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "ephemeral_total",
			Help: "Ephemeral events (signals, presence, receipts, read markers) by kind and result (written: per session, dropped_queue_full, no_local_session, bad_data)."},
			[]string{"kind", "result"}),
		Signals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "signals_total",
			Help: "Client signal frames by result (sent, bad, too_large, rate_limited, unavailable)."}, []string{"result"}),
		PresenceOps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "presence_ops_total",
			Help: "Presence work by op (write: a record of this pod written or removed; read: users' states read for a watch or after a change; sweep: records of dead pods removed)."}, []string{"op"}),
		UnknownSchema: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "unknown_schema_total",
			Help: "Fan-out messages of an unknown courier_schema, acked and dropped."}),
	}
	m.WrittenLive, m.WrittenInb = m.Written.WithLabelValues("live"), m.Written.WithLabelValues("replay")
	m.DroppedDuplicate, m.DroppedClosed = m.Dropped.WithLabelValues("duplicate"), m.Dropped.WithLabelValues("session_closed")
	m.DropC = m.Dropped.WithLabelValues("catch_up")
	for _, r := range []string{"sent", "bad", "too_large", "rate_limited", "unavailable"} {
		m.Signals.WithLabelValues(r)
	}
	for _, op := range []string{"write", "read", "sweep"} {
		m.PresenceOps.WithLabelValues(op)
	}
	m.offered = map[string]prometheus.Counter{}
	for _, r := range []string{"released", "held", "duplicate", "dropped"} {
		m.offered[r] = m.Offered.WithLabelValues(r)
	}
	m.inboxReads = map[string]prometheus.Counter{}
	for _, p := range []inboxreader.Purpose{inboxreader.Resume, inboxreader.CatchUp, inboxreader.Gap, inboxreader.Head} {
		for _, r := range []string{"ok", "shared", "error"} {
			m.inboxReads[string(p)+"/"+r] = m.InboxReads.WithLabelValues(string(p), r)
		}
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.Sessions, m.Connects, m.Rejected, m.Disconnects, m.Received,
		m.Queued, m.Written, m.Dropped, m.QueueOverflows, m.CatchUps, m.Stalled, m.DeliveryLatency, m.SessionWriteLatency, m.FramesPerWrite,
		m.PubSubHop, m.ReorderWait, m.QueueWait, m.SocketWrite,
		m.BadFrames, m.Acks, m.ReceiveErrors, m.RoutedElsewhere, m.Offered, m.Gaps, m.GapsFilledLive,
		m.GapsFilledLate, m.GapsGivenUp, m.Lateness, m.ReorderWindow, m.InboxReads, m.Ephemeral, m.Signals, m.PresenceOps, m.UnknownSchema} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

// Discard returns metrics registered nowhere, for unit tests.
func Discard() *Metrics {
	m, _ := New(prometheus.NewRegistry())
	return m
}

// Disconnect counts one ended session with its close code. The code may be
// the client's own (its close frame), so only the codes RFC 6455 registers
// get a series of their own; any other is "other", which keeps the series
// bounded whatever clients send.
func (m *Metrics) Disconnect(code int) {
	m.Disconnects.WithLabelValues(CloseCodeLabel(code)).Inc()
}

// CloseCodeLabel is the disconnects_total label of a close code: the code
// for 1000-1015 (RFC 6455's registered codes), "other" for anything else.
func CloseCodeLabel(code int) string {
	if code >= 1000 && code <= 1015 && code != 1004 {
		return strconv.Itoa(code)
	}
	return "other"
}

// Ordered counts one offer to a reorder buffer.
func (m *Metrics) Ordered(result string) { m.offered[result].Inc() }

// InboxRead counts one inbox read (inboxreader.Observer).
func (m *Metrics) InboxRead(p inboxreader.Purpose, shared bool, err error) {
	r := "ok"
	switch {
	case err != nil:
		r = "error"
	case shared:
		r = "shared"
	}
	m.inboxReads[string(p)+"/"+r].Inc()
}
