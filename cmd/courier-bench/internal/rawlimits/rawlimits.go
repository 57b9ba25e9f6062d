// Package rawlimits measures what the emulators themselves allow, with the
// message shape Courier uses (a courier.v1.Envelope of a 200-byte payload
// to 2 recipients; a message document and two inbox entries): the ceiling
// every Courier number is compared with.
//
// Pub/Sub: one hop, publish → receive, once with the client library's
// defaults and once with Courier's settings (the gateway's publisher:
// ordering key per sender, 5 ms batching; an ordered subscription; the
// edge's receive settings: 2 streams, 1000 outstanding). Throughput is a
// burst published as fast as the client takes it; latency is taken at a
// steady open-loop rate.
//
// Firestore: one atomic commit (one Commit RPC, a WriteBatch) of 3 documents
// per message from as many writers as the worker runs at once, and the same
// documents in batched commits of a few hundred.
package rawlimits

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
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/cmd/courier-bench/internal/openloop"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stats"
	"github.com/courierhq/courier/pkg/harness/wsclient"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// PubSubConfig sizes the Pub/Sub measurement.
type PubSubConfig struct {
	Burst       int           // messages published at once for throughput
	SteadyRate  float64       // msg/s for the latency sample
	SteadyFor   time.Duration // how long the steady sample runs
	Drain       time.Duration // how long to wait for the last messages
	PayloadSize int
}

// PubSubResult is one settings variant.
type PubSubResult struct {
	Settings   string  `json:"settings"` // "defaults" or "courier"
	Burst      int     `json:"burst_messages"`
	Throughput float64 `json:"throughput_msg_s"` // burst: first publish → last receive
	SteadyRate float64 `json:"steady_rate_msg_s"`
	// Latency is publish (due time) → receive at SteadyRate: one hop.
	Latency stats.Percentiles `json:"latency"`
	Sent    int               `json:"sent"`
	// Received counts distinct messages; Duplicates extra copies; Lost what
	// never arrived within the drain time.
	Received   int `json:"received"`
	Duplicates int `json:"duplicates"`
	Lost       int `json:"lost"`
}

// Envelope builds the benchmark's message shape: payload of size bytes to
// two recipients.
func Envelope(seq int64, sender string, to []string, size int) *courierv1.Envelope {
	return &courierv1.Envelope{
		MessageId: fmt.Sprintf("bench-%016x-%d", rand.Uint64(), seq), Sender: sender, Recipients: to,
		Payload: wsclient.Payload(seq, size), ContentType: "application/json",
		SentAt: timestamppb.New(time.Now().UTC().Truncate(time.Microsecond)),
	}
}

// PubSub measures one variant ("defaults" or "courier") on a topic and
// subscription of its own in project.
func PubSub(ctx context.Context, client *pubsub.Client, project, variant string, c PubSubConfig) (PubSubResult, error) {
	courier := variant == "courier"
	id := fmt.Sprintf("raw-%s-%d", variant, time.Now().UnixNano())
	topic := "projects/" + project + "/topics/" + id
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		return PubSubResult{}, fmt.Errorf("create topic %s: %w", id, err)
	}
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + project + "/subscriptions/" + id, Topic: topic, AckDeadlineSeconds: 60,
		EnableMessageOrdering: courier,
	}); err != nil {
		return PubSubResult{}, fmt.Errorf("create subscription %s: %w", id, err)
	}
	pub := client.Publisher(id)
	defer pub.Stop()
	if courier {
		pub.EnableMessageOrdering = true
		pub.PublishSettings.DelayThreshold = 5 * time.Millisecond
	}
	sub := client.Subscriber(id)
	if courier {
		sub.ReceiveSettings.NumGoroutines = 2
		sub.ReceiveSettings.MaxOutstandingMessages = 1000
	}

	steadyN := int(c.SteadyRate * c.SteadyFor.Seconds())
	total := steadyN + c.Burst
	due := make([]time.Time, total) // written before the message is published
	var mu sync.Mutex
	counts := make([]uint8, total)
	var lat []time.Duration
	var received atomic.Int64
	var lastRecv atomic.Int64
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	recvDone := make(chan error, 1)
	go func() {
		recvDone <- sub.Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			now := time.Now()
			m.Ack()
			i, err := strconv.Atoi(m.Attributes["bench_seq"])
			if err != nil || i < 0 || i >= total {
				return
			}
			mu.Lock()
			counts[i]++
			first := counts[i] == 1
			if first && i < steadyN {
				lat = append(lat, now.Sub(due[i]))
			}
			mu.Unlock()
			if first {
				received.Add(1)
				lastRecv.Store(now.UnixNano())
			}
		})
	}()

	to := []string{"u1", "u2"}
	var pubErr atomic.Value
	publish := func(i int) *pubsub.PublishResult {
		sender := "s" + strconv.Itoa(i%200)
		data, _ := proto.Marshal(Envelope(int64(i), sender, to, c.PayloadSize))
		m := &pubsub.Message{Data: data, Attributes: map[string]string{"bench_seq": strconv.Itoa(i)}}
		if courier {
			m.OrderingKey = sender
		}
		return pub.Publish(ctx, m)
	}
	// Steady, open loop: latency from the due time.
	openloop.Run(ctx, c.SteadyRate, steadyN, 10000, func(i int, at time.Time) {
		mu.Lock()
		due[i] = at
		mu.Unlock()
		if _, err := publish(i).Get(ctx); err != nil {
			pubErr.Store(err)
		}
	})
	waitFor(ctx, func() bool { return received.Load() >= int64(steadyN) }, c.Drain)

	// Burst: everything handed to the client at once.
	burstStart := time.Now()
	results := make([]*pubsub.PublishResult, 0, c.Burst)
	for i := steadyN; i < total; i++ {
		results = append(results, publish(i))
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			pubErr.Store(err)
		}
	}
	waitFor(ctx, func() bool { return received.Load() >= int64(total) }, c.Drain)
	stop()
	<-recvDone
	if err, ok := pubErr.Load().(error); ok && err != nil {
		return PubSubResult{}, fmt.Errorf("publish (%s): %w", variant, err)
	}

	mu.Lock()
	defer mu.Unlock()
	r := PubSubResult{Settings: variant, Burst: c.Burst, SteadyRate: c.SteadyRate, Sent: total, Latency: stats.Summarize(lat)}
	burstGot := 0
	for i, n := range counts {
		switch {
		case n == 0:
			r.Lost++
		default:
			r.Received++
			r.Duplicates += int(n) - 1
			if i >= steadyN {
				burstGot++
			}
		}
	}
	if burstGot > 0 {
		r.Throughput = stats.Rate(burstGot, time.Unix(0, lastRecv.Load()).Sub(burstStart))
	}
	_ = client.SubscriptionAdminClient.DeleteSubscription(context.Background(), &pubsubpb.DeleteSubscriptionRequest{Subscription: "projects/" + project + "/subscriptions/" + id})
	return r, nil
}

// waitFor polls cond every 20 ms until it holds or within has passed.
func waitFor(ctx context.Context, cond func() bool, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// FirestoreConfig sizes the Firestore measurement.
type FirestoreConfig struct {
	Writers      int           // concurrent per-message committers (the worker's outstanding messages)
	For          time.Duration // how long each throughput sample runs
	SteadyRate   float64       // msg/s for the per-commit latency sample
	BatchDocs    int           // documents per batched commit
	BatchWriters int
	PayloadSize  int
	Users        int // recipients are drawn from this many users
}

// FirestoreResult holds both commit shapes.
type FirestoreResult struct {
	Writers int `json:"writers"`
	// PerMessage: one commit of 3 documents per message, Writers at once.
	PerMessage float64 `json:"per_message_msg_s"`
	// PerMessageLatency is commit latency at SteadyRate (open loop, from
	// the due time).
	SteadyRate        float64           `json:"steady_rate_msg_s"`
	PerMessageLatency stats.Percentiles `json:"per_message_latency"`
	BatchDocs         int               `json:"batch_docs"`
	BatchWriters      int               `json:"batch_writers"`
	// Batched: messages/s (3 documents each) in commits of BatchDocs.
	Batched        float64           `json:"batched_msg_s"`
	BatchedDocs    float64           `json:"batched_docs_s"`
	BatchedLatency stats.Percentiles `json:"batched_commit_latency"`
	Errors         int               `json:"errors"`
}

type writer struct {
	fs    *firestore.Client
	users int
	size  int
	seq   atomic.Int64
}

// addMessage adds one message's 3 documents to b, laid out as pkg/inbox
// lays them out.
func (w *writer) addMessage(b *firestore.WriteBatch) {
	i := w.seq.Add(1)
	r1 := rand.IntN(w.users)
	r2 := (r1 + 1 + rand.IntN(w.users-1)) % w.users
	id := fmt.Sprintf("raw-%016x", rand.Uint64())
	payload := wsclient.Payload(i, w.size)
	now := time.Now().UTC()
	to := []string{"u" + strconv.Itoa(r1), "u" + strconv.Itoa(r2)}
	b.Create(w.fs.Collection("messages").Doc(id), map[string]any{
		"from": "s" + strconv.Itoa(int(i%200)), "to": to, "payload": payload, "content_type": "application/json",
		"sent_at": now, "stored_at": now, "seqs": map[string]int64{to[0]: i, to[1]: i},
	})
	for _, u := range to {
		b.Create(w.fs.Collection("users").Doc(u).Collection("inbox").Doc(fmt.Sprintf("%020d", i)), map[string]any{
			"message_id": id, "seq": i, "from": "s", "to": to, "payload": payload, "content_type": "application/json",
			"sent_at": now, "stored_at": now,
		})
	}
}

// Firestore measures per-message and batched commits.
func Firestore(ctx context.Context, fs *firestore.Client, c FirestoreConfig) (FirestoreResult, error) {
	w := &writer{fs: fs, users: c.Users, size: c.PayloadSize}
	r := FirestoreResult{Writers: c.Writers, SteadyRate: c.SteadyRate, BatchDocs: c.BatchDocs, BatchWriters: c.BatchWriters}
	var errs atomic.Int64
	commit := func(msgs int) (time.Duration, bool) {
		// WriteBatch on purpose: exactly one Commit RPC, the raw cost of
		// one atomic write (the worker's transaction adds round trips).
		b := fs.Batch() //nolint:staticcheck
		for range msgs {
			w.addMessage(b)
		}
		t0 := time.Now()
		_, err := b.Commit(ctx)
		if err != nil {
			errs.Add(1)
			return 0, false
		}
		return time.Since(t0), true
	}
	closedLoop := func(writers, msgsPerCommit int) (float64, stats.Percentiles) {
		var mu sync.Mutex
		var lat []time.Duration
		var done atomic.Int64
		end := time.Now().Add(c.For)
		start := time.Now()
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for time.Now().Before(end) && ctx.Err() == nil {
					d, ok := commit(msgsPerCommit)
					if ok {
						done.Add(int64(msgsPerCommit))
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		return stats.Rate(int(done.Load()), time.Since(start)), stats.Summarize(lat)
	}
	// Warm-up, not measured: the emulator's JVM makes its first writes
	// slow (over a second each).
	for range 20 {
		commit(1)
	}
	closedLoop(c.Writers, 1)
	r.PerMessage, _ = closedLoop(c.Writers, 1)

	var mu sync.Mutex
	var lat []time.Duration
	openloop.Run(ctx, c.SteadyRate, int(c.SteadyRate*c.For.Seconds()), 10000, func(_ int, due time.Time) {
		if _, ok := commit(1); ok {
			mu.Lock()
			lat = append(lat, time.Since(due))
			mu.Unlock()
		}
	})
	r.PerMessageLatency = stats.Summarize(lat)

	per := max(c.BatchDocs/3, 1)
	r.Batched, r.BatchedLatency = closedLoop(c.BatchWriters, per)
	r.BatchedDocs = r.Batched * 3
	r.Errors = int(errs.Load())
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	return r, nil
}
