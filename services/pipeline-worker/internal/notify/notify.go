// Package notify is the offline-notification hook: after a message is
// stored and its delivery published, one small JSON event per recipient
// with no open session anywhere goes to the notify topic (NOTIFY_TOPIC,
// `courier-notify`), for a push service (FCM, APNs) to consume:
//
//	{"user","message_id","conversation_id","from","sent_at","preview"?}
//
// It never delays nor fails the durable path: the fan-out offers each
// published message to a bounded queue without waiting (a full queue
// drops, counted), and one goroutine reads the recipients' presence once
// per batch of queued messages — after their commit, like targeted routing
// — then publishes the events fire and forget. At most once: a lost event
// is not retried (the message itself is safe in the inbox).
//
// Preview: only when the sender opted in, by a top-level string
// "notify_preview" in the message's JSON payload; it is clipped to
// MaxPreview bytes. Without it the event carries no content at all.
package notify

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/pkg/clip"
	"github.com/courierhq/courier/pkg/online"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// MaxPreview bounds an event's preview, in bytes.
const MaxPreview = 140

// maxBatch bounds the messages whose recipients are read in one request.
const maxBatch = 100

// Event is one notification, as published (JSON).
type Event struct {
	User           string `json:"user"`
	MessageID      string `json:"message_id"`
	ConversationID string `json:"conversation_id"`
	From           string `json:"from"`
	SentAt         string `json:"sent_at"`
	Preview        string `json:"preview,omitempty"`
}

// Presence tells which users are online (online.Reader).
type Presence interface {
	States(ctx context.Context, users []string) (map[string]online.State, error)
}

// Notifier publishes the events.
type Notifier struct {
	pub     *pubsub.Publisher
	pres    Presence
	queue   chan *courierv1.Envelope
	timeout time.Duration
	m       *metrics.Metrics
	log     *slog.Logger
}

// New returns a Notifier publishing on topic of client, queueing at most
// queue messages; timeout bounds one presence read.
func New(client *pubsub.Client, topic string, pres Presence, queue int, timeout time.Duration, m *metrics.Metrics, log *slog.Logger) *Notifier {
	p := client.Publisher(topic)
	p.PublishSettings.DelayThreshold = 10 * time.Millisecond
	return &Notifier{pub: p, pres: pres, queue: make(chan *courierv1.Envelope, queue), timeout: timeout, m: m, log: log}
}

// Offer queues a stored and published message without blocking; a full
// queue drops it (counted per recipient).
func (n *Notifier) Offer(env *courierv1.Envelope) {
	select {
	case n.queue <- env:
	default:
		n.m.Notify.WithLabelValues("dropped").Add(float64(len(env.GetRecipients())))
	}
}

// Run publishes events until ctx ends, then flushes the publisher.
func (n *Notifier) Run(ctx context.Context) error {
	defer n.pub.Stop()
	for {
		var batch []*courierv1.Envelope
		select {
		case <-ctx.Done():
			return nil
		case env := <-n.queue:
			batch = append(batch, env)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case env := <-n.queue:
				batch = append(batch, env)
			default:
				break fill
			}
		}
		n.handle(ctx, batch)
	}
}

// handle reads the presence of the batch's recipients once and publishes
// an event for each recipient who is offline.
func (n *Notifier) handle(ctx context.Context, batch []*courierv1.Envelope) {
	var users []string
	for _, env := range batch {
		users = append(users, env.GetRecipients()...)
	}
	slices.Sort(users)
	users = slices.Compact(users)
	rctx, cancel := context.WithTimeout(ctx, n.timeout)
	states, err := n.pres.States(rctx, users)
	cancel()
	if err != nil {
		n.m.Notify.WithLabelValues("error").Add(float64(len(users)))
		n.log.Warn("notify: presence unreadable; no events for this batch", "messages", len(batch), "err", err)
		return
	}
	for _, env := range batch {
		for _, ev := range Events(env, func(u string) bool { return states[u].Online }) {
			data, _ := json.Marshal(ev)
			res := n.pub.Publish(ctx, &pubsub.Message{Data: data, Attributes: map[string]string{
				"courier_user": ev.User, "courier_message_id": ev.MessageID, "content_type": "application/json"}})
			go func() {
				if _, err := res.Get(context.Background()); err != nil {
					n.m.Notify.WithLabelValues("error").Inc()
					n.log.Warn("notify: publish failed", "message_id", ev.MessageID, "user", ev.User, "err", err)
					return
				}
				n.m.Notify.WithLabelValues("published").Inc()
			}()
		}
		for _, u := range env.GetRecipients() {
			if states[u].Online && u != env.GetSender() {
				n.m.Notify.WithLabelValues("online").Inc()
			}
		}
	}
}

// Events are the events of env: one per recipient who is not online and
// is not the sender (a sender's own copy notifies nobody).
func Events(env *courierv1.Envelope, online func(user string) bool) []Event {
	var out []Event
	conv := wire.ConversationOf(env)
	preview := Preview(env.GetPayload())
	for _, u := range env.GetRecipients() {
		if u == env.GetSender() || online(u) {
			continue
		}
		out = append(out, Event{User: u, MessageID: env.GetMessageId(), ConversationID: conv, From: env.GetSender(),
			SentAt: env.GetSentAt().AsTime().UTC().Format(time.RFC3339Nano), Preview: preview})
	}
	return out
}

// Preview is the sender's opt-in preview: the payload's top-level string
// "notify_preview", clipped to MaxPreview bytes; "" without it.
func Preview(payload []byte) string {
	var p struct {
		Preview *string `json:"notify_preview"`
	}
	if json.Unmarshal(payload, &p) != nil || p.Preview == nil {
		return ""
	}
	return clip.Text(*p.Preview, MaxPreview)
}
