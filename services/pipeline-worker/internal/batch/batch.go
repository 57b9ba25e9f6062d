// Package batch is the worker's group commit. The messages that are ready,
// from any number of senders, wait in one queue; one committer takes them
// in batches and stores each batch with one inbox commit, one batch at a
// time. While batch n commits, batch n+1 fills, so batches grow with the
// load by themselves, and a message arriving at an idle worker waits at
// most Linger for company.
//
// A run is one sender's consecutive messages, handed in together. A run
// keeps its order in the queue and so in every inbox (a batch may end in
// the middle of a run; the next batch continues it, after this one's
// commit). When one of a run's messages fails, the run's messages still
// queued are not committed: they fail with inbox.ErrNotAttempted, so no
// message ever takes a position ahead of an earlier message of its sender
// that could still be stored later.
//
// Why one batch at a time: two batches of this process that shared a
// recipient would race for that recipient's next positions (one of them
// fails its preconditions and reads again); committing them one after the
// other costs nothing under load, since the next batch is simply bigger.
//
// It only commits: what happens after (the fan-out, targeted routing's
// presence read once per batch) is package fanout's, which tells a batch by
// Result.Batch.
package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/pubsubx"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/classify"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

const tracerName = "github.com/courierhq/courier/services/pipeline-worker/internal/batch"

// Committer stores a batch (inbox.Committer).
type Committer interface {
	Commit(ctx context.Context, envs []*courierv1.Envelope) []inbox.Result
}

// Config sets when a batch closes.
type Config struct {
	// A batch holds at most MaxMessages messages, MaxWrites Firestore
	// writes and MaxBytes bytes of commit request (inbox.WriteSize), but
	// always at least one message.
	MaxMessages int
	MaxWrites   int
	MaxBytes    int
	// Linger is how long the oldest queued message may wait for others
	// when fewer than a full batch are queued and the committer is idle.
	Linger time.Duration
	// Timeout bounds one batch's commit.
	Timeout time.Duration
}

// validate rejects limits the committer cannot work with; the values come
// from the worker's settings, not from here.
func (c Config) validate() error {
	if c.MaxMessages < 1 || c.MaxWrites < 1 || c.MaxBytes < 1 || c.Timeout <= 0 || c.Linger < 0 {
		return fmt.Errorf("batch: limits %+v: every maximum must be at least 1, the timeout more than 0", c)
	}
	return nil
}

// Item is one message of a run.
type Item struct {
	// Ctx carries the message's span: the batch's spans link to it. Its
	// cancellation does not matter here (Commit's ctx does).
	Ctx context.Context
	Env *courierv1.Envelope
}

// Result is the outcome of one item.
type Result struct {
	inbox.Result
	// Batch is the batch that committed it (nil when it failed): the
	// messages of one batch share it.
	Batch *Batch
}

// Batch is one committed batch as the steps after the commit see it.
type Batch struct {
	// Size is the number of messages the batch held.
	Size   int
	lead   context.Context
	stored []*courierv1.Envelope
}

// Lead carries the span of the batch's first message: spans about the
// whole batch (its commit, a presence read) are its children.
func (b *Batch) Lead() context.Context { return b.lead }

// Recipients returns the distinct users the batch's stored messages are
// delivered to (recipients and senders, whose copies go live to their other
// sessions), in order of first appearance.
func (b *Batch) Recipients() []string {
	var users []string
	seen := map[string]bool{}
	for _, e := range b.stored {
		for _, u := range inbox.InboxUsers(e) {
			if !seen[u] {
				seen[u] = true
				users = append(users, u)
			}
		}
	}
	return users
}

// Batcher is the queue and its committer.
type Batcher struct {
	cfg    Config
	c      Committer
	m      *metrics.Metrics
	log    *slog.Logger
	tracer trace.Tracer
	now    func() time.Time

	mu    sync.Mutex
	queue []*entry
	wake  chan struct{} // holds one pending wake-up of the committer
}

// run is the state of one Commit call.
type run struct {
	results []Result
	settled []bool
	left    int           // items without a result
	done    chan struct{} // closed when left reaches 0
	gone    bool          // the caller stopped waiting
}

type entry struct {
	run    *run
	i      int // index in the run
	item   Item
	writes int
	bytes  int
	queued time.Time
}

// New returns a Batcher committing with c, or why cfg is unusable.
func New(cfg Config, c Committer, m *metrics.Metrics, log *slog.Logger) (*Batcher, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("batch: no committer")
	}
	return &Batcher{cfg: cfg, c: c, m: m, log: log, tracer: otel.Tracer(tracerName), now: time.Now,
		wake: make(chan struct{}, 1)}, nil
}

// Commit queues one run (one sender's messages, in order) and waits until
// each is committed or failed, or until ctx is done: then the
// run's messages still queued are dropped, and those without a result get
// ctx's error (a batch already committing finishes without telling them).
// The results are in the order of items.
func (b *Batcher) Commit(ctx context.Context, items []Item) []Result {
	if len(items) == 0 {
		return nil
	}
	r := &run{results: make([]Result, len(items)), settled: make([]bool, len(items)), left: len(items), done: make(chan struct{})}
	now := b.now()
	b.mu.Lock()
	for i, it := range items {
		w, by := inbox.WriteSize(it.Env)
		b.queue = append(b.queue, &entry{run: r, i: i, item: it, writes: w, bytes: by, queued: now})
	}
	b.mu.Unlock()
	b.signal()

	select {
	case <-r.done:
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.left > 0 {
		r.gone = true
		b.queue = slices.DeleteFunc(b.queue, func(e *entry) bool { return e.run == r })
		for i, ok := range r.settled {
			if !ok {
				r.results[i].Err = fmt.Errorf("wait for the commit of message %s: %w", items[i].Env.MessageId, ctx.Err())
			}
		}
	}
	return slices.Clone(r.results)
}

func (b *Batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// settle records e's result; b.mu must be held.
func (b *Batcher) settle(e *entry, res Result) {
	r := e.run
	if r.gone || r.settled[e.i] {
		return
	}
	r.results[e.i], r.settled[e.i] = res, true
	if r.left--; r.left == 0 {
		close(r.done)
	}
}

// stop fails the queued messages of r after a failure of one of its
// messages; b.mu must be held.
func (b *Batcher) stop(r *run, cause error) {
	err := fmt.Errorf("%w: an earlier message of its sender failed: %v", inbox.ErrNotAttempted, cause)
	b.queue = slices.DeleteFunc(b.queue, func(e *entry) bool {
		if e.run != r {
			return false
		}
		b.settle(e, Result{Result: inbox.Result{Err: err}})
		return true
	})
}

// Run commits batches until ctx is done, then fails whatever is still
// queued with ctx's error.
func (b *Batcher) Run(ctx context.Context) {
	for {
		batch, ok := b.next(ctx)
		if !ok {
			b.mu.Lock()
			for _, e := range b.queue {
				b.settle(e, Result{Result: inbox.Result{Err: fmt.Errorf("worker stopping: %w", context.Cause(ctx))}})
			}
			b.queue = nil
			b.mu.Unlock()
			return
		}
		results := b.commit(ctx, batch)
		b.mu.Lock()
		for k, e := range batch {
			if results[k].Err != nil {
				b.settle(e, results[k])
				b.stop(e.run, results[k].Err)
			}
		}
		for k, e := range batch {
			if results[k].Err == nil {
				b.settle(e, results[k])
			}
		}
		b.mu.Unlock()
	}
}

// next waits for the next batch: a full one as soon as there is one, else
// what is queued once the oldest message has waited Linger. It returns
// false when ctx is done.
func (b *Batcher) next(ctx context.Context) ([]*entry, bool) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.mu.Lock()
		var wait time.Duration
		if len(b.queue) > 0 {
			n, full := b.fit()
			wait = b.queue[0].queued.Add(b.cfg.Linger).Sub(b.now())
			if full || wait <= 0 {
				batch := slices.Clone(b.queue[:n])
				b.queue = slices.Clone(b.queue[n:]) // a fresh array: the taken entries are not retained
				b.mu.Unlock()
				return batch, true
			}
		}
		b.mu.Unlock()
		var linger <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			linger = timer.C
		}
		select {
		case <-b.wake:
		case <-linger:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// fit returns how many queued messages (from the front) make the next
// batch, and whether that batch is full, i.e. nothing more could join it.
// b.mu must be held.
func (b *Batcher) fit() (int, bool) {
	n, writes, bytes := 0, 0, 0
	for _, e := range b.queue {
		if n > 0 && (n+1 > b.cfg.MaxMessages || writes+e.writes > b.cfg.MaxWrites || bytes+e.bytes > b.cfg.MaxBytes) {
			return n, true
		}
		n, writes, bytes = n+1, writes+e.writes, bytes+e.bytes
	}
	return n, n >= b.cfg.MaxMessages || writes >= b.cfg.MaxWrites || bytes >= b.cfg.MaxBytes
}

// commit stores one batch. Its span is a child of the first message's
// span and links every message's.
func (b *Batcher) commit(ctx context.Context, batch []*entry) []Result {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	envs := make([]*courierv1.Envelope, len(batch))
	links := make([]trace.Link, len(batch))
	writes := 0
	for k, e := range batch {
		envs[k] = e.item.Env
		links[k] = trace.LinkFromContext(e.item.Ctx, pubsubx.KeyCourierMessageID.String(e.item.Env.MessageId))
		writes += e.writes
	}
	ctx, span := b.tracer.Start(trace.ContextWithSpan(ctx, trace.SpanFromContext(batch[0].item.Ctx)), "firestore commit batch",
		trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("db.system.name", "gcp.firestore"),
			attribute.Int("courier.batch.messages", len(batch)), attribute.Int("courier.batch.writes", writes)))
	defer span.End()
	b.m.BatchMessages.Observe(float64(len(batch)))
	committed := b.safeCommit(ctx, envs)
	results := make([]Result, len(batch))
	done := &Batch{Size: len(batch), lead: batch[0].item.Ctx}
	failed := 0
	for k, r := range committed {
		results[k] = Result{Result: r}
		if r.Err != nil {
			failed++
			continue
		}
		results[k].Batch = done
		done.stored = append(done.stored, envs[k])
	}
	if failed > 0 {
		span.SetAttributes(attribute.Int("courier.batch.failed", failed))
		span.SetStatus(codes.Error, fmt.Sprintf("%d of %d messages not stored", failed, len(batch)))
		b.log.WarnContext(ctx, "batch commit failed for some messages", "messages", len(batch), "failed", failed,
			"err", firstErr(committed))
	}
	return results
}

// safeCommit commits envs; a panic fails every message of the batch with a
// transient *classify.PanicError instead of ending the process.
func (b *Batcher) safeCommit(ctx context.Context, envs []*courierv1.Envelope) (res []inbox.Result) {
	defer func() {
		if r := recover(); r != nil {
			err := &classify.PanicError{Value: r, Stack: debug.Stack()}
			res = make([]inbox.Result, len(envs))
			for i := range res {
				res[i].Err = err
			}
		}
	}()
	return b.c.Commit(ctx, envs)
}

func firstErr(rs []inbox.Result) error {
	for _, r := range rs {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}
