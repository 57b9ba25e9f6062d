// Package fanout owns this pod's subscription to the deliveries topic: it
// creates the subscription at start, records the pod's heartbeat (for
// `courierctl sweep`), receives deliveries, encodes each one's frame once and
// hands it to the sequencer of each recipient this pod holds, and deletes the
// subscription at stop.
//
// The topic also carries ephemeral events (wire.SchemaEphemeral: signals,
// presence, receipts, read markers). Handle dispatches on courier_schema:
// an ephemeral event's frame goes straight to the local sessions of its
// users, past the sequencer (it has no inbox position), at most once.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/pkg/ephemeral"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/periodic"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

// Heartbeats records that this pod is alive (pkg/edges).
type Heartbeats interface {
	Beat(ctx context.Context, pod, subscription string, startedAt time.Time) error
	Remove(ctx context.Context, pod string) error
}

// Sequencer takes the deliveries of the recipients this pod holds and
// hands them, in inbox order, to their sessions (sequencer.Set).
type Sequencer interface {
	Deliver(user string, it frame.Item) bool
	HasUser(user string) bool
}

// Sessions writes an ephemeral frame to every local session of user,
// without blocking, and says to how many sessions it was queued and how
// many dropped it (a full ephemeral queue).
type Sessions interface {
	SendEphemeral(user string, frame []byte) (queued, dropped int)
	// Presence takes a presence event's frame, for the local sessions that
	// watch its user; watched reports whether any does.
	Presence(user string, frame []byte)
	Watched(user string) bool
}

// Config configures the subscription.
type Config struct {
	Topology topology.Config
	Pod      string
	// Filter is the subscription's Pub/Sub filter ("" for none); see
	// presence.Filter.
	Filter string
	// HeartbeatInterval is how often the pod records that it is alive.
	HeartbeatInterval time.Duration
	// NumGoroutines is the number of StreamingPull streams (default 2).
	NumGoroutines int
	// MaxOutstanding bounds deliveries being handled at once (default 1000).
	MaxOutstanding int
}

// Fanout receives this pod's deliveries.
type Fanout struct {
	client  *pubsub.Client
	beats   Heartbeats
	started time.Time
	cfg     Config
	seq     Sequencer
	eph     Sessions
	m       *metrics.Metrics
	log     *slog.Logger
	subID   string
	subName string
	ready   atomic.Bool
	tracer  trace.Tracer
}

// New returns a Fanout; call Ensure before Run.
func New(client *pubsub.Client, beats Heartbeats, cfg Config, seq Sequencer, eph Sessions, m *metrics.Metrics, log *slog.Logger) *Fanout {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Minute
	}
	if cfg.NumGoroutines <= 0 {
		cfg.NumGoroutines = 2
	}
	if cfg.MaxOutstanding <= 0 {
		cfg.MaxOutstanding = 1000
	}
	id := cfg.Topology.EdgeSubscriptionID(cfg.Pod)
	return &Fanout{
		client: client, beats: beats, started: time.Now(), cfg: cfg, seq: seq, eph: eph, m: m, log: log,
		subID: id, subName: cfg.Topology.SubscriptionPath(id),
		tracer: otel.Tracer("github.com/courierhq/courier/services/ws-edge/internal/fanout"),
	}
}

// SubscriptionName is the full path of this pod's subscription.
func (f *Fanout) SubscriptionName() string { return f.subName }

// Ready reports whether the subscription exists (Ensure succeeded).
func (f *Fanout) Ready() bool { return f.ready.Load() }

// Ensure records this pod's heartbeat, then creates its subscription, or
// adopts the one a previous run under the same pod name left behind. A
// leftover that cannot be brought in line (other immutable settings, or
// fields the emulator cannot update) is replaced: its backlog is only a
// copy of what clients resume from Firestore anyway.
func (f *Fanout) Ensure(ctx context.Context) error {
	// Heartbeat first: sweep must never see this subscription without it.
	if err := f.beats.Beat(ctx, f.cfg.Pod, f.subName, f.started); err != nil {
		return err
	}
	want := f.cfg.Topology.EdgeSubscription(f.cfg.Pod, f.cfg.Filter)
	a, err := topology.EnsureSubscription(ctx, f.client, want)
	if err != nil || a.Result == "drift" {
		f.log.Warn("replacing the leftover edge subscription", "subscription", f.subName, "detail", a.Detail, "err", err)
		if err := topology.DeleteSubscription(ctx, f.client, f.subName); err != nil {
			return err
		}
		if a, err = topology.EnsureSubscription(ctx, f.client, want); err != nil {
			return fmt.Errorf("create edge subscription: %w", err)
		}
	}
	f.log.Info("edge subscription ready", "subscription", f.subName, "result", a.Result, "filter", f.cfg.Filter)
	f.ready.Store(true)
	return nil
}

// Delete removes this pod's subscription and its heartbeat. Call it after
// Run has returned: deleting a subscription while Receive runs on it makes
// Receive fail.
func (f *Fanout) Delete(ctx context.Context) error {
	f.ready.Store(false)
	if err := topology.DeleteSubscription(ctx, f.client, f.subName); err != nil {
		return err
	}
	f.log.Info("edge subscription deleted", "subscription", f.subName)
	return f.beats.Remove(ctx, f.cfg.Pod)
}

// Run receives deliveries until ctx ends, calling Receive again after a
// capped, jittered backoff when it fails (and recreating the subscription
// when it is gone, e.g. swept while this pod was paused). It also records
// the heartbeat. It returns nil once ctx ends.
func (f *Fanout) Run(ctx context.Context) error {
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		f.heartbeat(ctx)
	}()
	defer func() { <-hbDone }()

	restart := backoff.Policy{Initial: 200 * time.Millisecond, Max: 15 * time.Second}
	failures := 0
	for {
		sub := f.client.Subscriber(f.subID)
		sub.ReceiveSettings.NumGoroutines = f.cfg.NumGoroutines
		sub.ReceiveSettings.MaxOutstandingMessages = f.cfg.MaxOutstanding
		started := time.Now()
		err := sub.Receive(ctx, f.Handle)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			failures = 0 // it had been working: start the schedule over
		}
		wait := restart.Delay(failures, nil)
		failures++
		f.m.ReceiveErrors.Inc()
		f.log.Warn("receive ended; retrying", "subscription", f.subName, "err", err, "backoff", wait.String())
		if status.Code(err) == codes.NotFound {
			if err := f.Ensure(ctx); err != nil {
				f.log.Warn("recreate edge subscription", "err", err)
			}
		}
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

func (f *Fanout) heartbeat(ctx context.Context) {
	periodic.Run(ctx, f.cfg.HeartbeatInterval, func(ctx context.Context) {
		if err := f.beats.Beat(ctx, f.cfg.Pod, f.subName, f.started); err != nil && ctx.Err() == nil {
			f.log.Warn("edge heartbeat", "err", err)
		}
	})
}

// Handle processes one message of the topic by its courier_schema: a
// delivery (handleDelivery), an ephemeral event (handleEphemeral), or
// anything else, acked and counted: it is not ours, and redelivering it
// could not help.
func (f *Fanout) Handle(ctx context.Context, msg *pubsub.Message) {
	switch msg.Attributes[wire.AttrSchema] {
	case wire.SchemaDelivery, "":
		// No schema: a delivery from a publisher that does not set one
		// (DecodeDelivery still checks it).
		f.handleDelivery(ctx, msg)
	case wire.SchemaEphemeral:
		f.handleEphemeral(ctx, msg)
	default:
		f.m.UnknownSchema.Inc()
		msg.Ack()
	}
}

// handleEphemeral writes an ephemeral event's frame to the local sessions
// of its users and acks at once: never ordered, never stored, never
// retried (a session whose ephemeral queue is full drops it).
func (f *Fanout) handleEphemeral(ctx context.Context, msg *pubsub.Message) {
	msg.Ack()
	if msg.Attributes[wire.AttrEphemeralKind] == wire.KindPresence {
		f.handlePresence(ctx, msg)
		return
	}
	if !wire.MayConcern(msg.Attributes, f.seq.HasUser) {
		f.m.Ephemeral.WithLabelValues("other", "no_local_session").Inc()
		return
	}
	e, err := wire.DecodeEphemeral(msg.Data)
	if err != nil {
		f.m.Ephemeral.WithLabelValues("other", "bad_data").Inc()
		f.log.WarnContext(ctx, "dropping an undecodable ephemeral event", "pubsub_message_id", msg.ID, "err", err)
		return
	}
	kind := ephemeral.KindLabel(e.GetKind())
	queued, dropped := 0, 0
	for _, u := range e.GetUsers() {
		q, d := f.eph.SendEphemeral(u, e.GetFrame())
		queued += q
		dropped += d
	}
	if queued > 0 {
		f.m.Ephemeral.WithLabelValues(kind, "written").Add(float64(queued))
	}
	if dropped > 0 {
		f.m.Ephemeral.WithLabelValues(kind, "dropped_queue_full").Add(float64(dropped))
	}
	if queued+dropped == 0 {
		f.m.Ephemeral.WithLabelValues(kind, "no_local_session").Inc()
	}
}

// handlePresence hands a presence event (about its one user) to the
// sessions here that watch that user.
func (f *Fanout) handlePresence(ctx context.Context, msg *pubsub.Message) {
	e, err := wire.DecodeEphemeral(msg.Data)
	if err != nil || len(e.GetUsers()) != 1 {
		f.m.Ephemeral.WithLabelValues("presence", "bad_data").Inc()
		f.log.WarnContext(ctx, "dropping an undecodable presence event", "pubsub_message_id", msg.ID, "err", err)
		return
	}
	user := e.GetUsers()[0]
	if !f.eph.Watched(user) {
		f.m.Ephemeral.WithLabelValues("presence", "no_local_session").Inc()
		return
	}
	f.eph.Presence(user, e.GetFrame())
}

// handleDelivery processes one delivery: it encodes the message's frame
// once and hands it to the sequencer of every recipient this pod holds,
// then acks. Deliveries for users this pod does not hold, and undecodable
// ones, are acked and dropped: redelivering them could not help.
func (f *Fanout) handleDelivery(ctx context.Context, msg *pubsub.Message) {
	received := time.Now()
	f.m.Received.Inc()
	if !presence.RoutedTo(msg.Attributes, f.cfg.Pod) {
		f.m.RoutedElsewhere.Inc()
		if f.cfg.Filter != "" {
			// Targeted routing: drop what this pod's subscription filter
			// keeps away on GCP. There the filter already did it; the
			// emulator applies no filter, and this makes it behave the
			// same, so the tests see GCP's semantics (a session the routing
			// missed must get the message from its inbox read).
			f.m.Dropped.WithLabelValues("routed_elsewhere").Inc()
			msg.Ack()
			return
		}
	}
	// Cheap check first: most deliveries concern users on other pods.
	if !wire.MayConcern(msg.Attributes, f.seq.HasUser) {
		f.m.Dropped.WithLabelValues("no_local_session").Inc()
		msg.Ack()
		return
	}
	ctx, span := pubsubx.StartProcess(ctx, f.subID, msg)
	defer span.End()
	d, err := wire.DecodeDelivery(msg.Data)
	if err != nil {
		f.m.Dropped.WithLabelValues("bad_data").Inc()
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, "bad delivery")
		f.log.ErrorContext(ctx, "dropping undecodable delivery", "pubsub_message_id", msg.ID, "err", err)
		msg.Ack()
		return
	}
	// The fan-out span covers handing the message to every local
	// recipient's sequencer, so to their sessions' queues: it ends where the
	// fan-out ends, here. Each session's write is measured on its own, from
	// FannedOut (session_write_latency_seconds): a span per socket would
	// make a group message of 1,000 recipients 1,000 spans.
	_, write := f.tracer.Start(ctx, "websocket write", trace.WithAttributes(
		pubsubx.KeyCourierMessageID.String(d.Message.GetId()),
		attribute.String("network.protocol.name", "websocket"),
	))
	defer write.End()
	m, err := frame.NewMessage(d.Message)
	if err != nil {
		write.RecordError(err)
		f.m.Dropped.WithLabelValues("bad_data").Inc()
		f.log.ErrorContext(ctx, "encode frame", "err", err)
		msg.Ack()
		return
	}
	write.SetAttributes(attribute.Int("messaging.message.body.size", m.Size()))
	m.Received = received
	if !msg.PublishTime.IsZero() {
		f.m.PubSubHop.Observe(received.Sub(msg.PublishTime).Seconds())
	}
	m.FannedOut = time.Now()
	users := 0
	var own *frame.Message // the sender's copy: the same message, marked outgoing
	for _, rc := range d.Recipients {
		item := frame.Item{M: m}
		if rc.GetOutgoing() {
			if own == nil {
				if own, err = frame.NewOutgoing(d.Message, m); err != nil {
					f.m.Dropped.WithLabelValues("bad_data").Inc()
					f.log.ErrorContext(ctx, "encode frame", "err", err)
					continue
				}
			}
			item.M = own
		}
		seq, err := inbox.DecodeCursor(rc.GetCursor())
		if err == nil && seq == 0 {
			err = errors.New("empty cursor")
		}
		if err != nil {
			f.m.Dropped.WithLabelValues("bad_data").Inc()
			f.log.ErrorContext(ctx, "dropping recipient with a bad cursor", "message_id", d.Message.Id, "user", rc.GetUserId(), "err", err)
			continue
		}
		item.Seq = seq
		if f.seq.Deliver(rc.GetUserId(), item) {
			users++
		}
	}
	if users == 0 {
		f.m.Dropped.WithLabelValues("no_local_session").Inc()
	}
	span.SetAttributes(attribute.Int("courier.edge.local_recipients", users))
	write.SetAttributes(attribute.Int("courier.edge.local_recipients", users))
	msg.Ack()
}
