// Package receiver pulls the ingress subscription with unary Pull requests,
// holds the lease of every message in hand, hands messages to a handler
// (one sender's messages in runs: all of them in hand at once, in order, the
// next run after the previous one is settled) and acks or nacks each as the
// handler says.
//
// Why unary Pull and not the client library's StreamingPull (Receive): the
// worker owns each lease explicitly, and a lease nobody extends expires.
// On the Pub/Sub emulator a StreamingPull consumer killed with SIGKILL
// strands its leased messages for good (the emulator's stream cleanup
// fails), so a killed worker would lose them until the emulator restarts;
// with Pull the emulator, like GCP, redelivers them once their ack deadline
// passes. It also means no message is leased while it waits in a client
// buffer behind flow control: a Pull asks only for as many messages as
// there are free slots. docs/reliability.md has the measurements.
//
// On shutdown the receiver stops pulling (the Pulls in progress end within
// PullTimeout), nacks the messages not yet started, lets those in progress
// finish (or be nacked) within a drain deadline, sends the last acks and
// returns.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// Outcome is what the receiver does with a message once its handler
// returns.
type Outcome int

const (
	Ack  Outcome = iota // done (stored and fanned out, or dead-lettered)
	Nack                // hand back to Pub/Sub for redelivery
)

// Handler processes a run of messages: one ordering key's messages in
// delivery order, or one message without a key. It returns one outcome per
// message; after a Nack, every later message of the run that is not done
// must be nacked too.
//
// work is cancelled only when the work must be abandoned (the drain
// deadline); retrying ends when shutdown begins: an attempt in progress may
// finish under work, but no new retry should start once retrying is done.
type Handler interface {
	Handle(work, retrying context.Context, ms []*pubsub.Message) []Outcome
}

// API is the part of the Pub/Sub subscriber API the receiver calls; the
// SubscriptionAdminClient of a *pubsub.Client implements it.
type API interface {
	Pull(ctx context.Context, req *pubsubpb.PullRequest, opts ...gax.CallOption) (*pubsubpb.PullResponse, error)
	Acknowledge(ctx context.Context, req *pubsubpb.AcknowledgeRequest, opts ...gax.CallOption) error
	ModifyAckDeadline(ctx context.Context, req *pubsubpb.ModifyAckDeadlineRequest, opts ...gax.CallOption) error
}

// Config tunes the receiver.
type Config struct {
	// Subscription is the full subscription path
	// (projects/P/subscriptions/S).
	Subscription string
	// MaxOutstandingMessages and MaxOutstandingBytes bound the messages in
	// hand (pulled, not yet acked or nacked).
	MaxOutstandingMessages int
	MaxOutstandingBytes    int
	// Pullers is the number of Pull requests in flight at once.
	Pullers int
	// AckDeadline is the subscription's ack deadline: the lease a pulled
	// message starts with.
	AckDeadline time.Duration
	// ExtensionStep is the length of each lease extension, and
	// MaxExtension how long a message is held at most.
	ExtensionStep time.Duration
	MaxExtension  time.Duration
	// DrainTimeout bounds the wait for in-flight messages once shutdown
	// begins; after it their attempts are cancelled and they are nacked.
	DrainTimeout time.Duration
	// Restart spaces Pulls after errors (Budget is unused).
	Restart backoff.Policy
	// PullTimeout bounds one Pull; an empty answer at its end is normal
	// (the server holds a Pull open while there is nothing to deliver).
	// Shutdown waits for the Pulls in progress, so it is also the longest
	// a shutdown waits before draining.
	PullTimeout time.Duration
}

// validate rejects a configuration the receive loop cannot run with; the
// values themselves come from the worker's settings, not from here.
func (c Config) validate() error {
	var errs []error
	for name, v := range map[string]int{"MaxOutstandingMessages": c.MaxOutstandingMessages, "MaxOutstandingBytes": c.MaxOutstandingBytes, "Pullers": c.Pullers} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("receiver: %s %d, want at least 1", name, v))
		}
	}
	for name, d := range map[string]time.Duration{"PullTimeout": c.PullTimeout, "AckDeadline": c.AckDeadline, "ExtensionStep": c.ExtensionStep, "MaxExtension": c.MaxExtension} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("receiver: %s %s, want more than 0", name, d))
		}
	}
	if c.Subscription == "" {
		errs = append(errs, errors.New("receiver: no subscription"))
	}
	return errors.Join(errs...)
}

// Receiver runs the receive loop.
type Receiver struct {
	api     API
	h       Handler
	cfg     Config
	metrics *metrics.Metrics
	log     *slog.Logger

	flow   *flow
	leases *leases
	acks   *acker

	// Set by Run for the message goroutines.
	work     context.Context // attempts run under it; cancelled at the drain deadline
	retrying context.Context // Run's context: done when shutdown begins
	inFlight sync.WaitGroup  // one per message handed to a goroutine

	mu   sync.Mutex
	keys map[string][]*message // ordering key → messages waiting behind the one in progress
}

// message is one pulled message.
type message struct {
	ackID string
	size  int
	m     *pubsub.Message
}

// New returns a Receiver of cfg.Subscription through api, or why cfg is
// unusable.
func New(api API, h Handler, cfg Config, m *metrics.Metrics, log *slog.Logger) (*Receiver, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Receiver{
		api: api, h: h, cfg: cfg, metrics: m, log: log,
		flow: newFlow(cfg.MaxOutstandingMessages, cfg.MaxOutstandingBytes),
		leases: &leases{api: api, subscription: cfg.Subscription, step: cfg.ExtensionStep, maxExtension: cfg.MaxExtension,
			metrics: m, log: log, now: time.Now, held: map[string]*lease{}},
		acks: newAcker(api, cfg.Subscription, m, log),
		keys: map[string][]*message{},
	}, nil
}

// hardStopMargin is how long after the drain deadline Run gives up on the
// handlers returning.
const hardStopMargin = 5 * time.Second

// finalAckTimeout bounds sending the last acks at shutdown.
const finalAckTimeout = 3 * time.Second

// Run receives until ctx is done, then drains and returns nil. It returns
// an error only when a handler outlives the drain deadline by more than
// hardStopMargin and is abandoned (Pub/Sub redelivers its message).
func (r *Receiver) Run(ctx context.Context) error {
	// Attempts, lease extensions and acks run under contexts of their own:
	// cancelling ctx stops pulling, while the messages already in hand get
	// DrainTimeout to finish and their leases and acks keep flowing.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	r.work, r.retrying = work, ctx

	background, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() { r.leases.run(background, leaseTick(r.cfg)) })
	bg.Go(func() { r.acks.run(background, finalAckTimeout) })
	defer func() {
		stopBackground() // the acker sends what is left first
		bg.Wait()
	}()

	var pullers sync.WaitGroup
	for range r.cfg.Pullers {
		pullers.Go(func() { r.pullLoop(ctx) })
	}
	<-ctx.Done()
	r.log.Info("shutdown: stopped pulling; draining in-flight messages", "drain_timeout", r.cfg.DrainTimeout.String(),
		"in_hand", r.flow.outstanding(), "pull_timeout", r.cfg.PullTimeout.String())
	drain := time.AfterFunc(r.cfg.DrainTimeout, cancelWork)
	defer drain.Stop()
	drained := make(chan struct{})
	go func() {
		pullers.Wait() // no message is handed out after this
		r.inFlight.Wait()
		close(drained)
	}()
	giveUp := max(r.cfg.DrainTimeout, r.cfg.PullTimeout) + hardStopMargin
	hard := time.NewTimer(giveUp)
	defer hard.Stop()
	select {
	case <-drained:
		return nil
	case <-hard.C:
		return fmt.Errorf("in-flight messages still running %s after shutdown began; abandoning them (Pub/Sub redelivers them)", giveUp)
	}
}

// leaseTick is how often leases are checked: often enough that a lease is
// extended well before it runs out.
func leaseTick(cfg Config) time.Duration {
	return max(min(time.Second, cfg.AckDeadline/8, cfg.ExtensionStep/8), 10*time.Millisecond)
}

// pullLoop pulls until ctx is done. A failing Pull is retried after a
// capped backoff and reported by Check meanwhile.
//
// Shutdown never cancels a Pull in progress: a Pull cancelled while the
// server is answering it can take messages with it, leased to a request
// nobody reads, until their ack deadline passes (the emulator does this
// whenever the cancel arrives just after the request). Each Pull ends by
// itself within PullTimeout, and what it brings during shutdown is nacked
// at once.
func (r *Receiver) pullLoop(ctx context.Context) {
	perPull := max(1, r.cfg.MaxOutstandingMessages/r.cfg.Pullers)
	uncancelled := context.WithoutCancel(ctx)
	for failures := 0; ctx.Err() == nil; {
		reserved, err := r.flow.reserve(ctx, perPull)
		if err != nil {
			return
		}
		got, err := r.pull(uncancelled, reserved)
		r.flow.settle(reserved, len(got), sizeOf(got))
		r.dispatch(got) // nacks them if shutdown began meanwhile
		if err != nil {
			r.setErr(err)
			wait := r.cfg.Restart.Delay(failures, nil)
			failures++
			r.metrics.PullErrors.Inc()
			r.log.Error("pull failed; retrying", "err", err, "retry_in", wait.String(), "failures", failures)
			if !backoff.Sleep(ctx, wait) {
				return
			}
			continue
		}
		failures = 0
		r.setErr(nil)
	}
}

// pull asks for up to n messages and records their leases.
func (r *Receiver) pull(ctx context.Context, n int) ([]*message, error) {
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PullTimeout)
	defer cancel()
	resp, err := r.api.Pull(pctx, &pubsubpb.PullRequest{Subscription: r.cfg.Subscription, MaxMessages: int32(n)})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
			return nil, nil // nothing to deliver within PullTimeout
		}
		return nil, fmt.Errorf("pull %s: %w", r.cfg.Subscription, err)
	}
	got := make([]*message, 0, len(resp.GetReceivedMessages()))
	for _, rm := range resp.GetReceivedMessages() {
		pm := rm.GetMessage()
		m := &pubsub.Message{
			ID:          pm.GetMessageId(),
			Data:        pm.GetData(),
			Attributes:  pm.GetAttributes(),
			OrderingKey: pm.GetOrderingKey(),
		}
		if pt := pm.GetPublishTime(); pt != nil {
			m.PublishTime = pt.AsTime() // AsTime of nil would be 1970, not zero
		}
		if a := int(rm.GetDeliveryAttempt()); a > 0 {
			m.DeliveryAttempt = &a
		}
		r.leases.add(rm.GetAckId(), r.cfg.AckDeadline)
		got = append(got, &message{ackID: rm.GetAckId(), size: messageSize(pm), m: m})
	}
	return got, nil
}

// messageSize is the size a message counts for against MaxOutstandingBytes.
func messageSize(pm *pubsubpb.PubsubMessage) int {
	n := len(pm.GetData()) + len(pm.GetOrderingKey())
	for k, v := range pm.GetAttributes() {
		n += len(k) + len(v)
	}
	return n
}

func sizeOf(ms []*message) int {
	n := 0
	for _, m := range ms {
		n += m.size
	}
	return n
}

// dispatch starts work on pulled messages. Messages without an ordering
// key run at once, each in its own goroutine; a sender's messages (the
// ordering key is the sender) are handed over in runs, in the order Pub/Sub
// delivered them: all of the key's messages in hand at once, the next run
// only after the previous one is settled, so their inbox positions follow
// the send order and a run can share one commit.
func (r *Receiver) dispatch(ms []*message) {
	// Queue every keyed message of this Pull before starting any key, so a
	// key's messages from one Pull form one run.
	var start []string
	r.mu.Lock()
	for _, m := range ms {
		if r.shuttingDown() {
			r.mu.Unlock()
			r.settle(m, Nack)
			r.mu.Lock()
			continue
		}
		key := m.m.OrderingKey
		if key == "" {
			r.inFlight.Add(1)
			go func() {
				defer r.inFlight.Done()
				r.settle(m, r.h.Handle(r.work, r.retrying, []*pubsub.Message{m.m})[0])
			}()
			continue
		}
		waiting, running := r.keys[key]
		r.keys[key] = append(waiting, m)
		if !running {
			start = append(start, key)
		}
	}
	// Counted before the lock is released: Run's drain waits for them.
	r.inFlight.Add(len(start))
	r.mu.Unlock()
	for _, key := range start {
		go func() {
			defer r.inFlight.Done()
			r.runKey(key)
		}()
	}
}

// runKey hands the messages of one ordering key to the handler in runs
// until none is left: each run is every message of the key waiting at that
// moment, in order. When one is nacked, the ones queued behind the run are
// nacked too without being handled: Pub/Sub redelivers the key from the
// nacked message on, in order, so handling them now would put them ahead of
// it.
func (r *Receiver) runKey(key string) {
	for {
		r.mu.Lock()
		run := r.keys[key]
		if len(run) == 0 {
			delete(r.keys, key)
			r.mu.Unlock()
			return
		}
		r.keys[key] = nil // present: the key is running
		r.mu.Unlock()

		outs := make([]Outcome, len(run)) // zero values are replaced below
		if r.shuttingDown() {
			for i := range outs {
				outs[i] = Nack
			}
		} else {
			ms := make([]*pubsub.Message, len(run))
			for i, m := range run {
				ms[i] = m.m
			}
			outs = r.h.Handle(r.work, r.retrying, ms)
		}
		nacked := slices.Contains(outs, Nack)
		var rest []*message
		if nacked {
			r.mu.Lock()
			rest = r.keys[key]
			delete(r.keys, key)
			r.mu.Unlock()
		}
		for i, m := range run {
			r.settle(m, outs[i])
		}
		for _, later := range rest {
			r.settle(later, Nack)
		}
		if nacked {
			return
		}
	}
}

// settle acks or nacks m as out says and frees its slot.
func (r *Receiver) settle(m *message, out Outcome) {
	r.leases.remove(m.ackID)
	if out == Ack {
		r.acks.ack(m.ackID)
	} else {
		r.acks.nack(m.ackID)
	}
	r.flow.release(m.size)
}

func (r *Receiver) shuttingDown() bool { return r.retrying.Err() != nil }

// setErr records the last Pull's outcome in the receiving gauge.
func (r *Receiver) setErr(err error) {
	if err != nil {
		r.metrics.Receiving.Set(0)
	} else {
		r.metrics.Receiving.Set(1)
	}
}
