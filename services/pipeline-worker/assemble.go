package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/online"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/telemetry"

	"github.com/courierhq/courier/services/pipeline-worker/internal/batch"
	"github.com/courierhq/courier/services/pipeline-worker/internal/fanout"
	"github.com/courierhq/courier/services/pipeline-worker/internal/handler"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
	"github.com/courierhq/courier/services/pipeline-worker/internal/notify"
	"github.com/courierhq/courier/services/pipeline-worker/internal/receiver"
)

// worker is the assembled service: the receiver handing runs to the
// handler, the group commit, the publishers, and what watches them.
type worker struct {
	recv        *receiver.Receiver
	batches     *batch.Batcher
	deliveries  *pubsub.Publisher
	deadLetters *pubsub.Publisher
	probe       *health.Probe
	http        *http.Server // probes only; metrics are on ADMIN_ADDR
	state       health.State
	reg         *prometheus.Registry
	m           *metrics.Metrics
	notify      *notify.Notifier // nil unless NOTIFY_ENABLED
}

// assemble builds the worker on its clients. wrapCommit, when not nil,
// wraps the inbox committer (the integration tests inject failures there).
func assemble(s settings, ps *pubsub.Client, fs *firestore.Client, log *slog.Logger, wrapCommit func(batch.Committer) batch.Committer) (*worker, error) {
	w := &worker{reg: telemetry.NewRegistry()}
	w.m = metrics.New(w.reg)
	var commit batch.Committer = inbox.New(fs).WithRetention(s.Retention).NewCommitter(inbox.CommitterOptions{HeadCacheSize: s.HeadCacheSize, RoundTrip: w.m.RoundTrip})
	if wrapCommit != nil {
		commit = wrapCommit(commit)
	}
	var err error
	if w.batches, err = batch.New(s.batchConfig(), commit, w.m, log); err != nil {
		return nil, err
	}
	w.deliveries = ps.Publisher(s.Topology.DeliveriesTopic)
	// Deliveries carry no ordering key (wire/delivery.go says why).
	w.deliveries.PublishSettings.DelayThreshold = s.PublishDelay
	w.deadLetters = ps.Publisher(s.Topology.DeadLetterTopic)
	var pres fanout.Presence // nil: deliveries go to every edge pod
	if s.TargetedRouting {
		pres = presence.NewTable(fs)
	}
	fan, err := fanout.New(func(out []pubsubx.Outgoing) []error { return pubsubx.PublishAll(w.deliveries, out) }, pres, s.AttemptTimeout, w.m, log)
	if err != nil {
		return nil, err
	}
	if s.NotifyEnabled {
		w.notify = notify.New(ps, s.Topology.NotifyTopic, online.NewReader(fs, online.Options{StaleAfter: s.PresenceStaleAfter}),
			s.NotifyQueue, s.AttemptTimeout, w.m, log)
		fan.WithNotifier(w.notify)
	}
	dl := handler.NewDeadLetters(func(ctx context.Context, msg *pubsub.Message, id string) error {
		_, err := pubsubx.Publish(ctx, w.deadLetters, msg, id)
		return err
	}, s.Topology.IngressSubscription)
	proc, err := handler.New(s.handlerConfig(), handler.NewHandler(w.batches, fan).Attempt, dl, w.m, log)
	if err != nil {
		return nil, err
	}
	if w.recv, err = receiver.New(ps.SubscriptionAdminClient, proc, s.receiverConfig(), w.m, log); err != nil {
		return nil, err
	}
	if w.probe, err = health.NewProbe(w.reg, map[string]health.Check{
		"pubsub":    health.PubSubTopic(ps, s.Topology.TopicPath(s.Topology.DeliveriesTopic)),
		"firestore": health.Firestore(fs),
	}, 10*time.Second, 2*time.Second, log); err != nil {
		return nil, err
	}
	// Probes only: short bounds on every phase.
	w.http = &http.Server{Handler: probes(&w.state), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	return w, nil
}

// probes is the worker's HTTP_ADDR: the kubelet's /healthz and /readyz and
// nothing else (metrics are on ADMIN_ADDR).
func probes(state *health.State) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health.Live)
	mux.Handle("GET /readyz", health.Ready(map[string]health.Check{"worker": state.Check}, time.Second))
	return mux
}

// serve answers the probes on ln until drain shuts the server down.
func (w *worker) serve(ln net.Listener) error {
	if err := w.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// Run processes messages until ctx ends, then drains. The group commit
// runs until the receiver has drained: the messages finishing during the
// drain still need it.
func (w *worker) Run(ctx context.Context) error {
	w.state.Started()
	context.AfterFunc(ctx, w.state.Draining)
	bctx, stopBatches := context.WithCancel(context.WithoutCancel(ctx))
	committed := make(chan struct{})
	go func() { defer close(committed); w.batches.Run(bctx) }()
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		if w.notify != nil {
			_ = w.notify.Run(bctx) // returns nil when bctx ends
		}
	}()
	defer func() { <-notified }()
	err := w.recv.Run(ctx) // stops pulling, drains, sends the last acks
	return errors.Join(err, w.drain(stopBatches, committed))
}

// drain is the worker's shutdown once the receiver has drained (readiness
// failed when ctx ended; pulling stopped; the messages in hand finished or
// were nacked within the drain deadline; the last acks went out): the group
// commit stops, the publishers flush, and the probe server stops. The admin
// listener serves /metrics until run returns; telemetry is flushed last, by
// run.
func (w *worker) drain(stopBatches context.CancelFunc, committed <-chan struct{}) error {
	stopBatches()
	<-committed
	w.deliveries.Stop()
	w.deadLetters.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.http.Shutdown(ctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
