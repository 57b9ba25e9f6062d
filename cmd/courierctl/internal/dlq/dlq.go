// Package dlq lets an SRE list, inspect, replay and purge the dead letters
// of Courier's ingress: the messages the pipeline-worker (or Pub/Sub's own
// dead-letter policy) gave up on, kept on the dead-letter subscription.
//
// It pulls with the synchronous Pull API and holds what it pulled while it
// works: list and show hand everything back untouched (a zero ack deadline,
// so the letters stay), replay acks a letter only after its republish to the
// ingress topic is confirmed, purge acks everything.
package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// DeadLetter is one dead letter as an SRE sees it.
type DeadLetter struct {
	// ID is the dead letter's Pub/Sub message id (what show and replay take;
	// the Courier message id works too).
	ID        string    `json:"id"`
	MessageID string    `json:"courier_message_id,omitempty"`
	DeadAt    time.Time `json:"dead_lettered_at"`
	// Reason is the worker's reason, or "max_delivery_attempts" when
	// Pub/Sub's own policy forwarded it.
	Reason       string     `json:"reason"`
	Error        string     `json:"error,omitempty"`
	Attempts     int        `json:"attempts"`
	Source       string     `json:"source_subscription,omitempty"`
	FirstFailure *time.Time `json:"first_failure_time,omitempty"`
	OrderingKey  string     `json:"ordering_key,omitempty"`
	// Attributes are the original message's attributes (trace context
	// included), without the ones dead-lettering added.
	Attributes map[string]string `json:"attributes"`
	// Envelope is the payload decoded, when it decodes.
	Envelope    *EnvelopeView `json:"envelope,omitempty"`
	DecodeError string        `json:"decode_error,omitempty"`
	// Data is the raw message data when it does not decode as an envelope.
	Data []byte `json:"data,omitempty"`

	raw   *pubsubpb.PubsubMessage
	ackID string
	wire  wire.DeadLetter
}

// EnvelopeView is a decoded courier.v1.Envelope.
type EnvelopeView struct {
	MessageID      string          `json:"message_id"`
	Sender         string          `json:"sender"`
	Recipients     []string        `json:"recipients"`
	ContentType    string          `json:"content_type,omitempty"`
	SentAt         *time.Time      `json:"sent_at,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	// PayloadText is set instead of Payload when the payload is not JSON.
	PayloadText string `json:"payload_text,omitempty"`
}

// ReasonPubSub is the reason shown for letters Pub/Sub forwarded by itself.
const ReasonPubSub = wire.ReasonPubSub

// Options tune the Inspector.
type Options struct {
	// Wait is how long a final, blocking pull waits for more letters before
	// the scan decides it has seen them all (a non-blocking pull may come
	// back empty on GCP while letters exist). Default 1s.
	Wait time.Duration
	// Limit caps how many letters one command pulls. Default 1000.
	Limit int
}

// Inspector works on one project's dead-letter subscription.
type Inspector struct {
	client  *pubsub.Client
	cfg     topology.Config
	opts    Options
	sub     string
	ingress *pubsub.Publisher
}

// New returns an Inspector for cfg's dead-letter subscription.
func New(client *pubsub.Client, cfg topology.Config, opts Options) *Inspector {
	if opts.Wait <= 0 {
		opts.Wait = time.Second
	}
	if opts.Limit <= 0 {
		opts.Limit = 1000
	}
	return &Inspector{client: client, cfg: cfg, opts: opts, sub: cfg.SubscriptionPath(cfg.DeadLetterSubscription)}
}

// Close flushes the replay publisher.
func (i *Inspector) Close() {
	if i.ingress != nil {
		i.ingress.Stop()
	}
}

// holdFor is the ack deadline set on pulled letters while a command works
// on them; they come back by themselves if the command dies.
const holdFor = 10 * time.Minute

// scan pulls up to the limit of letters and holds them. The caller must
// release or ack every one.
func (i *Inspector) scan(ctx context.Context) ([]*DeadLetter, error) {
	var out []*DeadLetter
	seen := map[string]bool{}
	for len(out) < i.opts.Limit {
		batch, err := i.pull(ctx, min(1000, i.opts.Limit-len(out)), true)
		if err == nil && len(batch) == 0 {
			// Make sure: wait a little for letters a non-blocking pull missed.
			wctx, cancel := context.WithTimeout(ctx, i.opts.Wait)
			batch, err = i.pull(wctx, min(1000, i.opts.Limit-len(out)), false)
			cancel()
			if isDeadline(err) && ctx.Err() == nil {
				err = nil // the wait ended with nothing more
			}
		}
		if err != nil {
			_ = i.release(context.WithoutCancel(ctx), out)
			return nil, fmt.Errorf("pull %s: %w", i.sub, err)
		}
		if len(batch) == 0 {
			break
		}
		var ackIDs []string
		for _, d := range batch {
			ackIDs = append(ackIDs, d.ackID)
			if seen[d.ID] {
				continue // redelivered within the scan: already held
			}
			seen[d.ID] = true
			out = append(out, d)
		}
		if err := i.modAck(ctx, ackIDs, holdFor); err != nil {
			_ = i.release(context.WithoutCancel(ctx), out)
			return nil, err
		}
	}
	slices.SortStableFunc(out, func(a, b *DeadLetter) int { return a.DeadAt.Compare(b.DeadAt) })
	return out, nil
}

func isDeadline(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || status.Code(err) == grpccodes.DeadlineExceeded
}

func (i *Inspector) pull(ctx context.Context, n int, immediately bool) ([]*DeadLetter, error) {
	resp, err := i.client.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{
		// ReturnImmediately is deprecated on GCP (it may answer empty while
		// letters exist), hence the blocking confirmation pull in scan; the
		// emulator honours it, which keeps commands fast there.
		Subscription: i.sub, MaxMessages: int32(n), ReturnImmediately: immediately,
	})
	if err != nil {
		return nil, err
	}
	out := make([]*DeadLetter, 0, len(resp.ReceivedMessages))
	for _, rm := range resp.ReceivedMessages {
		out = append(out, FromMessage(rm.GetMessage(), rm.GetAckId()))
	}
	return out, nil
}

func (i *Inspector) modAck(ctx context.Context, ackIDs []string, d time.Duration) error {
	for chunk := range slices.Chunk(ackIDs, 1000) {
		if err := i.client.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
			Subscription: i.sub, AckIds: chunk, AckDeadlineSeconds: int32(d / time.Second),
		}); err != nil {
			return fmt.Errorf("modify ack deadline on %s: %w", i.sub, err)
		}
	}
	return nil
}

// release hands letters back so they stay on the subscription.
func (i *Inspector) release(ctx context.Context, letters []*DeadLetter) error {
	return i.modAck(ctx, ackIDsOf(letters), 0)
}

func (i *Inspector) ack(ctx context.Context, letters []*DeadLetter) error {
	for chunk := range slices.Chunk(ackIDsOf(letters), 1000) {
		if err := i.client.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{
			Subscription: i.sub, AckIds: chunk,
		}); err != nil {
			return fmt.Errorf("acknowledge on %s: %w", i.sub, err)
		}
	}
	return nil
}

func ackIDsOf(letters []*DeadLetter) []string {
	ids := make([]string, 0, len(letters))
	for _, d := range letters {
		ids = append(ids, d.ackID)
	}
	return ids
}

// List returns the dead letters (up to the limit), oldest first, and leaves
// them on the subscription.
func (i *Inspector) List(ctx context.Context) ([]*DeadLetter, error) {
	letters, err := i.scan(ctx)
	if err != nil {
		return nil, err
	}
	return letters, i.release(context.WithoutCancel(ctx), letters)
}

// ErrNotFound is returned by Show for an id that matches no dead letter.
var ErrNotFound = errors.New("no such dead letter")

// Show returns the dead letter whose Pub/Sub or Courier message id is id,
// and leaves it on the subscription.
func (i *Inspector) Show(ctx context.Context, id string) (*DeadLetter, error) {
	letters, err := i.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range letters {
		if d.matches(id) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
}

func (d *DeadLetter) matches(id string) bool { return d.ID == id || d.MessageID == id }

// ReplayResult is what happened to one letter.
type ReplayResult struct {
	ID          string `json:"id"`
	MessageID   string `json:"courier_message_id,omitempty"`
	NewID       string `json:"republished_as,omitempty"` // Pub/Sub id on the ingress topic
	Err         error  `json:"-"`
	ErrorString string `json:"error,omitempty"`
}

// Replay republishes the letters matching ids (every letter when all) to the
// ingress topic with their original attributes and ordering key, in a new
// trace linked to the original one, and acks each letter once its republish
// is confirmed. Letters not asked for, and those whose republish failed,
// stay. ids that match nothing are reported with ErrNotFound.
func (i *Inspector) Replay(ctx context.Context, ids []string, all bool) ([]ReplayResult, error) {
	letters, err := i.scan(ctx)
	if err != nil {
		return nil, err
	}
	var chosen, rest []*DeadLetter
	found := map[string]bool{}
	for _, d := range letters {
		pick := all
		for _, id := range ids {
			if d.matches(id) {
				pick, found[id] = true, true
			}
		}
		if pick {
			chosen = append(chosen, d)
		} else {
			rest = append(rest, d)
		}
	}
	bg := context.WithoutCancel(ctx)
	if err := i.release(bg, rest); err != nil {
		return nil, err
	}
	var results []ReplayResult
	for _, id := range ids {
		if !found[id] {
			results = append(results, ReplayResult{ID: id, Err: fmt.Errorf("%w: %s", ErrNotFound, id)})
		}
	}
	if i.ingress == nil {
		i.ingress = i.client.Publisher(i.cfg.IngressTopic)
		i.ingress.EnableMessageOrdering = true
	}
	// In dead-letter order, so one sender's replays keep their order.
	for _, d := range chosen {
		r := ReplayResult{ID: d.ID, MessageID: d.MessageID}
		if ctx.Err() != nil {
			r.Err = ctx.Err()
		} else {
			r.NewID, r.Err = i.replayOne(ctx, d)
		}
		if r.Err == nil {
			r.Err = i.ack(bg, []*DeadLetter{d})
		} else {
			_ = i.release(bg, []*DeadLetter{d})
		}
		results = append(results, r)
	}
	for n := range results {
		if results[n].Err != nil {
			results[n].ErrorString = results[n].Err.Error()
		}
	}
	return results, nil
}

const tracerName = "github.com/courierhq/courier/cmd/courierctl/internal/dlq"

func (i *Inspector) replayOne(ctx context.Context, d *DeadLetter) (string, error) {
	msg := ReplayMessage(d)
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			pubsubx.KeyCourierMessageID.String(d.MessageID),
			attribute.String("courier.replay_of", d.ID),
			attribute.String("courier.dead_letter.reason", d.Reason),
		),
	}
	// The replay starts a new trace linked to the original one, so the
	// original trace stays whole and the replay can still be found from it.
	if sc := trace.SpanContextFromContext(pubsubx.Extract(context.Background(), d.raw.GetAttributes())); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
			attribute.String("courier.link", "replay_of"),
		}}))
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, "dlq replay", opts...)
	defer span.End()
	id, err := pubsubx.Publish(ctx, i.ingress, msg, d.MessageID)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "republish failed")
		return "", fmt.Errorf("republish %s: %w", d.ID, err)
	}
	return id, nil
}

// ReplayMessage is the ingress message that replays d (wire.EncodeReplay).
func ReplayMessage(d *DeadLetter) *pubsub.Message {
	return wire.EncodeReplay(d.ID, d.raw.GetData(), d.wire)
}

// Purge acks every dead letter (up to the limit) and returns how many.
func (i *Inspector) Purge(ctx context.Context) (int, error) {
	letters, err := i.scan(ctx)
	if err != nil {
		return 0, err
	}
	if err := i.ack(context.WithoutCancel(ctx), letters); err != nil {
		return 0, err
	}
	return len(letters), nil
}

// FromMessage reads a pulled dead letter (wire.DecodeDeadLetter).
func FromMessage(m *pubsubpb.PubsubMessage, ackID string) *DeadLetter {
	w := wire.DecodeDeadLetter(m.GetData(), m.GetAttributes())
	d := &DeadLetter{
		ID: m.GetMessageId(), MessageID: w.MessageID, DeadAt: m.GetPublishTime().AsTime(),
		Reason: w.Reason, Error: w.Error, Attempts: w.Attempts, Source: w.Source, FirstFailure: w.FirstFailure,
		OrderingKey: w.OrderingKey, Attributes: w.Attributes, DecodeError: w.DecodeError,
		raw: m, ackID: ackID, wire: w,
	}
	if w.Envelope != nil {
		d.Envelope = viewOf(w.Envelope)
	} else {
		d.Data = m.GetData()
	}
	return d
}

func viewOf(env *courierv1.Envelope) *EnvelopeView {
	v := &EnvelopeView{
		MessageID: env.GetMessageId(), Sender: env.GetSender(), Recipients: env.GetRecipients(),
		ContentType: env.GetContentType(), IdempotencyKey: env.GetIdempotencyKey(),
	}
	if v.Recipients == nil {
		v.Recipients = []string{}
	}
	if env.GetSentAt() != nil {
		t := env.GetSentAt().AsTime().UTC()
		v.SentAt = &t
	}
	if p := env.GetPayload(); json.Valid(p) {
		v.Payload = json.RawMessage(p)
	} else {
		v.PayloadText = string(p)
	}
	return v
}
