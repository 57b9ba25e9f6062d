// Package worker measures the pipeline-worker alone: envelopes are
// published straight to the ingress topic exactly as the gateway publishes
// them (proto Envelope, Courier's attributes, ordering key = sender, the
// gateway's publisher settings), as fast as the client takes them, and the
// worker's deliveries are observed on a subscription of the benchmark's own
// on the fan-out topic. The worker reaches Firestore through a counting
// proxy (package fsproxy), so its round trips per message are counted the
// same way for any build.
package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/cmd/courier-bench/internal/fsproxy"
	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/cmd/courier-bench/internal/rawlimits"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stack"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stats"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
)

// Scenario is one shape of traffic.
type Scenario struct {
	Name       string
	Messages   int
	Senders    int
	Recipients int // per message
	Users      int // recipients are drawn from this many users (1 = one hot recipient)
}

// Config sizes the phase.
type Config struct {
	Scenarios   []Scenario
	PayloadSize int
	// Cap bounds one scenario: what is not delivered by then is reported
	// as pending, and the rate is taken over what was.
	Cap time.Duration
}

// ScenarioResult is one scenario on one build.
type ScenarioResult struct {
	Scenario
	Published  int     `json:"published"`
	Delivered  int     `json:"delivered"` // distinct deliveries observed on the fan-out topic
	Duplicates int     `json:"duplicate_deliveries"`
	Pending    int     `json:"pending"` // not delivered within the cap
	Seconds    float64 `json:"seconds"` // first publish → last delivery (or the cap)
	Throughput float64 `json:"msg_s"`
	// RPCs are the Firestore RPCs seen by the proxy, by method (short name).
	RPCs          map[string]int64 `json:"firestore_rpcs"`
	RPCsPerMsg    float64          `json:"firestore_rpcs_per_msg"`
	CommitsPerMsg float64          `json:"commits_per_msg"`
	// RoundTripsMetric is the worker's own courier_worker_firestore_round_
	// trips_total per message, when it exports one (-1 otherwise).
	RoundTripsMetric float64 `json:"round_trips_metric_per_msg"`
	WorkerCPU        float64 `json:"worker_cpu_cores"`
}

// Check reports an accounting hole.
func (r ScenarioResult) Check() error {
	if r.Published != r.Messages || r.Delivered+r.Pending != r.Published {
		return fmt.Errorf("%s: messages %d, published %d, delivered %d + pending %d", r.Name, r.Messages, r.Published, r.Delivered, r.Pending)
	}
	return nil
}

// Run runs every scenario on build b, each on a fresh project and worker.
func Run(ctx context.Context, b stack.Build, emu *procs.Emulators, secret, logDir string, c Config, progress func(string)) ([]ScenarioResult, error) {
	proxy, err := fsproxy.Start(emu.FirestoreHost)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()
	var out []ScenarioResult
	for _, sc := range c.Scenarios {
		r, err := runOne(ctx, b, emu, proxy, secret, logDir, c, sc, progress)
		if err != nil {
			return out, fmt.Errorf("worker scenario %s: %w", sc.Name, err)
		}
		out = append(out, r)
		progress(fmt.Sprintf("%s: %d/%d delivered in %.1fs, %.0f msg/s, %.2f Firestore RPCs/msg", sc.Name, r.Delivered, r.Messages, r.Seconds, r.Throughput, r.RPCsPerMsg))
		if err := r.Check(); err != nil {
			return out, err
		}
	}
	return out, nil
}

func runOne(ctx context.Context, b stack.Build, emu *procs.Emulators, proxy *fsproxy.Proxy, secret, logDir string, c Config, sc Scenario, progress func(string)) (ScenarioResult, error) {
	slug := strings.ReplaceAll(sc.Name, " ", "-")
	project := fmt.Sprintf("bench-w-%s-%s-%d", b.Label, slug, time.Now().UnixNano())
	ps, err := emu.PubSub(ctx, project)
	if err != nil {
		return ScenarioResult{}, fmt.Errorf("pubsub client: %w", err)
	}
	defer ps.Close()
	if err := stack.Provision(ctx, ps, project); err != nil {
		return ScenarioResult{}, err
	}
	top := topology.Default(project)
	obs := "bench-observer"
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: top.SubscriptionPath(obs), Topic: top.TopicPath(top.DeliveriesTopic), AckDeadlineSeconds: 60,
	}); err != nil {
		return ScenarioResult{}, fmt.Errorf("create observer subscription: %w", err)
	}
	defer emu.Cleared(project, progress)

	env := stack.Env{Emulators: emu, Project: project, Secret: secret, LogDir: logDir}
	w, err := stack.StartWorker(ctx, b, env, "worker-"+slug, "FIRESTORE_EMULATOR_HOST="+proxy.Addr())
	if err != nil {
		return ScenarioResult{}, err
	}
	// Short grace: a worker still holding the scenario's leftovers would
	// drain them for its whole shutdown timeout, and the project is thrown
	// away anyway.
	defer w.Stop(3 * time.Second)
	proxy.Reset() // the readiness checks' reads are not the workload

	// Observe deliveries.
	var mu sync.Mutex
	seen := map[string]int{}
	var last atomic.Int64
	rctx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	recvDone := make(chan error, 1)
	sub := ps.Subscriber(obs)
	sub.ReceiveSettings.NumGoroutines = 4
	go func() {
		recvDone <- sub.Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			id := m.Attributes[wire.AttrMessageID]
			mu.Lock()
			seen[id]++
			mu.Unlock()
			last.Store(time.Now().UnixNano())
		})
	}()

	// Publish as the gateway does: proto, attributes, ordering key = sender.
	pub := ps.Publisher(top.IngressTopic)
	pub.EnableMessageOrdering = true
	pub.PublishSettings.DelayThreshold = 5 * time.Millisecond
	defer pub.Stop()
	users := make([]string, sc.Users)
	for i := range users {
		users[i] = fmt.Sprintf("w%04d", i)
		if sc.Users == 1 {
			users[i] = "hot"
		}
	}
	ids := map[string]bool{}
	cpu0, _ := procs.CPUSeconds(w.Pid())
	start := time.Now()
	results := make([]*pubsub.PublishResult, 0, sc.Messages)
	for i := range sc.Messages {
		sender := "s" + strconv.Itoa(i%sc.Senders)
		perm := rand.Perm(sc.Users)[:min(sc.Recipients, sc.Users)]
		to := make([]string, len(perm))
		for k, u := range perm {
			to[k] = users[u]
		}
		env := rawlimits.Envelope(int64(i), sender, to, c.PayloadSize)
		ids[env.MessageId] = true
		// Exactly what the gateway publishes.
		msg, err := wire.EncodeEnvelope(env)
		if err != nil {
			return ScenarioResult{}, err
		}
		results = append(results, pub.Publish(ctx, msg))
	}
	published := 0
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			return ScenarioResult{}, fmt.Errorf("publish envelope: %w", err)
		}
		published++
	}
	deadline := start.Add(c.Cap)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= sc.Messages {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cpu1, _ := procs.CPUSeconds(w.Pid())
	counts := proxy.Counts()
	metrics, _ := procs.ScrapeMetrics(ctx, w.MetricsURL())
	stopRecv()
	<-recvDone

	mu.Lock()
	defer mu.Unlock()
	r := ScenarioResult{Scenario: sc, Published: published, RPCs: map[string]int64{}, RoundTripsMetric: -1}
	for id, n := range seen {
		if !ids[id] {
			continue
		}
		r.Delivered++
		r.Duplicates += n - 1
	}
	r.Pending = published - r.Delivered
	end := time.Unix(0, last.Load())
	if r.Pending > 0 || r.Delivered == 0 {
		end = time.Now()
	}
	r.Seconds = end.Sub(start).Seconds()
	r.Throughput = stats.Rate(r.Delivered, end.Sub(start))
	r.WorkerCPU = stats.Ratio(cpu1-cpu0, time.Since(start).Seconds())
	for _, m := range fsproxy.Methods(counts) {
		r.RPCs[m[strings.LastIndexByte(m, '/')+1:]] = counts[m]
	}
	r.RPCsPerMsg = stats.Ratio(float64(fsproxy.Total(counts)), float64(r.Delivered))
	r.CommitsPerMsg = stats.Ratio(float64(r.RPCs["Commit"]), float64(r.Delivered))
	for _, name := range []string{"courier_pipeline_worker_firestore_round_trips_total"} {
		if v, ok := metrics[name]; ok {
			r.RoundTripsMetric = stats.Ratio(v, float64(r.Delivered))
		}
	}
	return r, nil
}
