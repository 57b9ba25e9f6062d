// Package nullpipe is the end-to-end ceiling on the emulators: the same
// path as Courier's without any Courier code. Messages are published to an
// ingress topic on an open-loop schedule; a "worker" pulls them, stores each
// batch of them in one Firestore commit (a message document and two inbox
// entries per message, as pkg/inbox lays them out), publishes each to a
// fan-out topic and acks; two "edges" pull the fan-out topic through
// subscriptions of their own. A message is delivered when both have it;
// latency is from its due time to each edge's receipt. Courier ÷ null at
// the same offered rate, on the same emulators in the same run, is what
// Courier's own code costs.
package nullpipe

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/cmd/courier-bench/internal/openloop"
	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stats"
	"github.com/courierhq/courier/pkg/harness/wsclient"
)

// Config sizes the phase.
type Config struct {
	Ladder      []float64 // offered msg/s: the end-to-end pairs ladder's
	StepFor     time.Duration
	Drain       time.Duration
	PayloadSize int
	Users       int
	// BatchMax messages (3 documents each) per commit, gathered for at
	// most Linger: the pipeline-worker's defaults (200 messages, 500
	// writes: 166 messages of 3 documents; 2 ms).
	BatchMax    int
	Linger      time.Duration
	MaxInFlight int
	P99Bound    time.Duration
}

// Step is one offered rate.
type Step struct {
	Rate      float64           `json:"offered_msg_s"`
	Seconds   float64           `json:"seconds"`
	Published int               `json:"published"`
	Delivered int               `json:"delivered"` // both edges got it
	Lost      int               `json:"lost"`
	Skipped   int               `json:"skipped"`
	Achieved  float64           `json:"delivered_msg_s"`
	Latency   stats.Percentiles `json:"latency"` // due → each edge's receipt
	Commits   int               `json:"commits"`
	CommitErr int               `json:"commit_errors"`
	Usage     procs.Usage       `json:"usage"`
	Broken    string            `json:"broken,omitempty"`
}

// Result is the phase.
type Result struct {
	Steps     []Step  `json:"steps"`
	Sustained float64 `json:"sustained_msg_s"`
}

type pipe struct {
	c       Config
	fs      *firestore.Client
	due     []atomic.Int64
	got     []atomic.Int32 // 2 per message: one per edge
	at      []atomic.Int64 // 2 per message: first receipt
	commits atomic.Int64
	errs    atomic.Int64
}

// Run runs the ladder on project (which it provisions) of the emulators
// the clients point at.
func Run(ctx context.Context, ps *pubsub.Client, fs *firestore.Client, project string, meter procs.Meter, c Config, progress func(string)) (Result, error) {
	id := fmt.Sprintf("null-%d", time.Now().UnixNano())
	topics := []string{id + "-ingress", id + "-fanout"}
	for _, t := range topics {
		if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + project + "/topics/" + t}); err != nil {
			return Result{}, fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	subs := map[string]string{id + "-worker": topics[0], id + "-edge-1": topics[1], id + "-edge-2": topics[1]}
	for s, t := range subs {
		if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
			Name: "projects/" + project + "/subscriptions/" + s, Topic: "projects/" + project + "/topics/" + t, AckDeadlineSeconds: 60,
		}); err != nil {
			return Result{}, fmt.Errorf("create subscription %s: %w", s, err)
		}
	}
	total := 0
	for _, r := range c.Ladder {
		total += int(r * c.StepFor.Seconds())
	}
	p := &pipe{c: c, fs: fs, due: make([]atomic.Int64, total), got: make([]atomic.Int32, 2*total), at: make([]atomic.Int64, 2*total)}

	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	ingress := ps.Publisher(topics[0])
	ingress.PublishSettings.DelayThreshold = time.Millisecond
	defer ingress.Stop()
	fanout := ps.Publisher(topics[1])
	fanout.PublishSettings.DelayThreshold = time.Millisecond // WORKER_PUBLISH_DELAY
	defer fanout.Stop()

	// The worker: Receive hands messages to a batcher, which commits and
	// publishes each batch, then acks it.
	in := make(chan *pubsub.Message, 4096)
	worker := ps.Subscriber(id + "-worker")
	worker.ReceiveSettings.NumGoroutines = 4
	worker.ReceiveSettings.MaxOutstandingMessages = 1000
	wg.Go(func() {
		_ = worker.Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			select {
			case in <- m:
			case <-rctx.Done():
			}
		})
	})
	for range 4 { // batches commit in parallel, as the worker's do
		wg.Go(func() { p.batcher(rctx, in, fanout) })
	}
	for k := range 2 {
		sub := ps.Subscriber(fmt.Sprintf("%s-edge-%d", id, k+1))
		sub.ReceiveSettings.NumGoroutines = 2 // the edge's default
		sub.ReceiveSettings.MaxOutstandingMessages = 1000
		wg.Go(func() {
			_ = sub.Receive(rctx, func(_ context.Context, m *pubsub.Message) {
				now := time.Now()
				m.Ack()
				i, err := strconv.Atoi(m.Attributes["bench_seq"])
				if err != nil || i < 0 || i >= total {
					return
				}
				if p.got[2*i+k].Add(1) == 1 {
					p.at[2*i+k].Store(now.UnixNano())
				}
			})
		})
	}

	var res Result
	next := 0
	for _, rate := range c.Ladder {
		n := int(rate * c.StepFor.Seconds())
		lo := next
		next += n
		mark := meter.Start()
		c0, e0 := p.commits.Load(), p.errs.Load()
		ok := make([]atomic.Bool, n)
		start, skipped := openloop.Run(ctx, rate, n, c.MaxInFlight, func(i int, due time.Time) {
			s := lo + i
			p.due[s].Store(due.UnixNano())
			m := &pubsub.Message{Data: wsclient.Payload(int64(s), c.PayloadSize), Attributes: map[string]string{"bench_seq": strconv.Itoa(s)}}
			if _, err := ingress.Publish(ctx, m).Get(ctx); err == nil {
				ok[i].Store(true)
			}
		})
		done := func() bool {
			for i := range n {
				if ok[i].Load() && (p.got[2*(lo+i)].Load() == 0 || p.got[2*(lo+i)+1].Load() == 0) {
					return false
				}
			}
			return true
		}
		deadline := time.Now().Add(c.Drain)
		for !done() && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
		st := Step{Rate: rate, Seconds: c.StepFor.Seconds(), Skipped: skipped, Usage: mark.Stop(),
			Commits: int(p.commits.Load() - c0), CommitErr: int(p.errs.Load() - e0)}
		var lat []time.Duration
		var last int64
		for i := range n {
			if !ok[i].Load() {
				continue
			}
			st.Published++
			s := lo + i
			both := true
			for k := range 2 {
				if a := p.at[2*s+k].Load(); a != 0 {
					lat = append(lat, time.Duration(a-p.due[s].Load()))
					last = max(last, a)
				} else {
					both = false
				}
			}
			if both {
				st.Delivered++
			} else {
				st.Lost++
			}
		}
		st.Latency = stats.Summarize(lat)
		if last > 0 {
			st.Achieved = stats.Rate(st.Delivered, time.Unix(0, last).Sub(start))
		}
		switch {
		case st.Lost > 0:
			st.Broken = fmt.Sprintf("lost %d", st.Lost)
		case st.Skipped > 0 || st.Published < n-st.Skipped:
			st.Broken = fmt.Sprintf("publisher fell behind (%d skipped, %d not published)", st.Skipped, n-st.Skipped-st.Published)
		case st.Latency.P99 > float64(c.P99Bound.Milliseconds()):
			st.Broken = fmt.Sprintf("p99 %.0f ms > %d ms", st.Latency.P99, c.P99Bound.Milliseconds())
		default:
			res.Sustained = rate
		}
		res.Steps = append(res.Steps, st)
		progress(fmt.Sprintf("null pipeline %.0f msg/s: delivered %d/%d, p50 %.0f ms, p99 %.0f ms, %d commits, load client %.2f cores, machine %.0f%% busy %s",
			rate, st.Delivered, st.Published, st.Latency.P50, st.Latency.P99, st.Commits, st.Usage.LoadClient, 100*st.Usage.BusyFraction, st.Broken))
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if st.Lost*2 > st.Published {
			break // overloaded: the next rung would only measure its backlog
		}
	}
	return res, nil
}

// batcher gathers up to BatchMax messages (or what arrived within Linger
// of the first), commits them in one Firestore batch, publishes each to
// the fan-out topic, and acks them once published; a failed commit nacks.
func (p *pipe) batcher(ctx context.Context, in <-chan *pubsub.Message, fanout *pubsub.Publisher) {
	batch := make([]*pubsub.Message, 0, p.c.BatchMax)
	for {
		batch = batch[:0]
		select {
		case m := <-in:
			batch = append(batch, m)
		case <-ctx.Done():
			return
		}
		timer := time.NewTimer(p.c.Linger)
	gather:
		for len(batch) < p.c.BatchMax {
			select {
			case m := <-in:
				batch = append(batch, m)
			case <-timer.C:
				break gather
			case <-ctx.Done():
				timer.Stop()
				return
			}
		}
		timer.Stop()
		b := p.fs.Batch() //nolint:staticcheck // one Commit RPC, as the worker's batch
		now := time.Now().UTC()
		for _, m := range batch {
			seq := m.Attributes["bench_seq"]
			r1 := rand.IntN(p.c.Users)
			to := []string{"n" + strconv.Itoa(r1), "n" + strconv.Itoa((r1+1)%p.c.Users)}
			id := "null-" + seq
			b.Set(p.fs.Collection("messages").Doc(id), map[string]any{
				"from": "s", "to": to, "payload": m.Data, "content_type": "application/json", "sent_at": now, "stored_at": now,
			})
			for _, u := range to {
				b.Set(p.fs.Collection("users").Doc(u).Collection("inbox").Doc(seq), map[string]any{
					"message_id": id, "from": "s", "to": to, "payload": m.Data, "content_type": "application/json", "sent_at": now,
				})
			}
		}
		if _, err := b.Commit(ctx); err != nil {
			p.errs.Add(1)
			for _, m := range batch {
				m.Nack()
			}
			continue
		}
		p.commits.Add(1)
		results := make([]*pubsub.PublishResult, len(batch))
		for i, m := range batch {
			results[i] = fanout.Publish(ctx, &pubsub.Message{Data: m.Data, Attributes: m.Attributes})
		}
		for i, r := range results {
			if _, err := r.Get(ctx); err == nil {
				batch[i].Ack()
			} else {
				batch[i].Nack()
			}
		}
	}
}
