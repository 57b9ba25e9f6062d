package handler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel/attribute"

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
	"github.com/courierhq/courier/services/pipeline-worker/internal/receiver"
)

// outcome is how a message ended, for its span and metrics; the receiver
// only needs to know ack or nack.
type outcome int

const (
	nack         outcome = iota // hand back to Pub/Sub for redelivery
	ack                         // processed
	deadLettered                // published to the dead-letter topic: ack
)

func (o outcome) String() string {
	switch o {
	case ack:
		return "ack"
	case deadLettered:
		return "dead_letter"
	}
	return "nack"
}

// Config tunes the policies.
type Config struct {
	// Subscription is the ingress subscription id (span names).
	Subscription string
	// MaxDeliveryAttempts is the subscription's dead-letter threshold. On
	// that attempt a transient failure that outlives the retry budget is
	// dead-lettered by the worker itself (reason "exhausted"): the Pub/Sub
	// emulator never dead-letters on ordered subscriptions, and our letter
	// carries the reason. 0 disables it.
	MaxDeliveryAttempts int
	Limits              wire.Limits
	Retry               backoff.Policy
	// AttemptTimeout bounds one attempt and one dead-letter publish.
	AttemptTimeout time.Duration
}

func (c Config) validate() error {
	if c.AttemptTimeout <= 0 || c.Retry.Initial <= 0 || c.Retry.Max < c.Retry.Initial {
		return errors.New("handler: AttemptTimeout and Retry.Initial must be more than 0, Retry.Max at least Retry.Initial")
	}
	return nil
}

// DeadLetterer sends a message to the dead-letter topic and returns once it
// is confirmed (DeadLetters).
type DeadLetterer interface {
	Send(ctx context.Context, m *pubsub.Message, l wire.Letter) error
}

// Processor is the worker's receiver.Handler: the one handler's attempt
// wrapped in its policies. It is safe for concurrent use.
type Processor struct {
	cfg      Config
	attempt  Attempt // the handler's, inside Recover and Timeout
	dl       DeadLetterer
	metrics  *metrics.Metrics
	log      *slog.Logger
	failures *firstFailures
	now      func() time.Time
}

var _ receiver.Handler = (*Processor)(nil)

// New returns a Processor making attempts with attempt (Handler.Attempt),
// wrapped in Recover and Timeout, or why cfg is unusable.
func New(cfg Config, attempt Attempt, dl DeadLetterer, m *metrics.Metrics, log *slog.Logger) (*Processor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Processor{
		cfg: cfg, attempt: Recover(log, Timeout(cfg.AttemptTimeout, attempt)), dl: dl, metrics: m, log: log,
		failures: newFirstFailures(10000),
		now:      time.Now,
	}, nil
}

// Handle processes ms, one sender's messages in delivery order (or a single
// message), and returns what to do with each; it never acks or nacks
// itself. Attempts run under work, which the receiver cancels only when it
// must abandon work (the drain deadline); once retrying is done (a graceful
// shutdown began) an attempt in progress finishes but no retry starts: the
// messages are nacked for another worker.
func (p *Processor) Handle(work, retrying context.Context, ms []*pubsub.Message) []receiver.Outcome {
	outs := make([]receiver.Outcome, len(ms))
	for i, o := range p.process(work, retrying, ms) {
		if o == nack {
			outs[i] = receiver.Nack
		} else {
			outs[i] = receiver.Ack // processed, or dead-lettered
		}
	}
	return outs
}

// process is Handle with how each message ended.
func (p *Processor) process(work, retrying context.Context, ms []*pubsub.Message) []outcome {
	start := p.now()
	run := make([]*Message, len(ms))
	for i, m := range ms {
		p.metrics.InFlight.Inc()
		if !m.PublishTime.IsZero() {
			p.metrics.Age.Observe(max(0, start.Sub(m.PublishTime).Seconds()))
		}
		sctx, span := pubsubx.StartProcess(work, p.cfg.Subscription, m)
		run[i] = &Message{m: m, ctx: sctx, span: span, out: nack,
			log: p.log.With("courier_message_id", m.Attributes[wire.AttrMessageID], "pubsub_message_id", m.ID,
				"delivery_attempt", pubsubx.DeliveryAttempt(m))}
	}
	if valid := p.decodeRun(run); len(valid) > 0 {
		p.retry(work, retrying, valid, start)
	}
	outs := make([]outcome, len(ms))
	end := p.now()
	for i, m := range run {
		outs[i] = m.out
		m.span.SetAttributes(attribute.String("courier.outcome", m.out.String()))
		m.span.End()
		p.metrics.Duration.WithLabelValues(m.out.String()).Observe(end.Sub(start).Seconds())
		p.metrics.InFlight.Dec()
	}
	return outs
}

// decodeRun decodes run and returns its valid messages. What can never be
// valid is dead-lettered at once and holds nothing up. If its dead letter
// cannot be published it is nacked, and so is everything behind it (left
// at nack, never attempted).
func (p *Processor) decodeRun(run []*Message) []*Message {
	var valid []*Message
	for _, m := range run {
		if err := decode(m, p.cfg.Limits); err != nil {
			if !p.fail(m, err) && m.out == nack {
				break
			}
			continue
		}
		valid = append(valid, m)
	}
	return valid
}
