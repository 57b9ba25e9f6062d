// Package edge assembles one ws-edge pod: the session registry (hub), the
// users' sequencers, the pod's subscription to the deliveries topic, and the
// HTTP surface (the WebSocket endpoint, the demo client, health and
// metrics). Deliveries flow one way, fanout → sequencer → hub → session
// (docs/architecture.md). main wires it from the environment; tests run
// several in one process.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/ephemeral"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/online"
	"github.com/courierhq/courier/pkg/peers"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/pkg/receipts"
	"github.com/courierhq/courier/pkg/signal"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/services/ws-edge/internal/acks"
	"github.com/courierhq/courier/services/ws-edge/internal/fanout"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/hub"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
	"github.com/courierhq/courier/services/ws-edge/internal/sequencer"
	"github.com/courierhq/courier/services/ws-edge/internal/session"
)

// Config is one edge's settings (main reads them from the environment).
type Config struct {
	// Pod names this pod's subscription; see SanitizePodName.
	Pod      string
	Topology topology.Config
	// AllowedOrigins are origin patterns (coder/websocket OriginPatterns:
	// path.Match on the origin's host, or on scheme://host when the pattern
	// has "://") allowed besides the edge's own host.
	AllowedOrigins     []string
	MaxSessions        int
	MaxSessionsPerUser int
	Session            session.Options
	// ReorderWait and ReorderWaitMax bound how long a user's deliveries
	// wait for a missing position before it is read from the inbox (the
	// window adapts to lateness in between; package order).
	ReorderWait, ReorderWaitMax time.Duration
	// MaxHeld bounds the deliveries held per user behind a gap.
	MaxHeld int
	// ReadConcurrency bounds the inbox reads (resumes, catch-ups, gap
	// fills, head reads) running at once on this pod.
	ReadConcurrency int
	// PageBytes bounds one page of an inbox read; ReadBudgetBytes the
	// pages read and not yet written, pod-wide; UserReadPages the pages
	// one user holds at once (package inboxreader).
	PageBytes, ReadBudgetBytes, UserReadPages int
	// AckQueue bounds the acks waiting to be written.
	AckQueue int
	// GatewayURL is where the demo client sends messages.
	GatewayURL string
	// TargetedRouting gives the subscription the per-pod routing filter
	// (presence.Filter) and records which users this pod holds
	// (Deps.Presence), so the worker routes their deliveries here.
	TargetedRouting   bool
	HeartbeatInterval time.Duration
	// DevSecret, when set, enables POST /dev/token (HS256 development
	// tokens for the demo client); main sets it only with DEV_TOKENS=true.
	// Leave it nil in production.
	DevSecret []byte
	// CloseConcurrency bounds concurrent close handshakes at shutdown.
	CloseConcurrency int
	// DrainTimeout bounds the pod's drain once Run's context ends (closing
	// the sessions, stopping receive, deleting the subscription).
	DrainTimeout time.Duration
	// AuthTimeout is how long a connection opened without a credential may
	// take to send its auth frame (default 5s); MaxUnauthenticated bounds
	// how many wait for theirs at once (default 1000).
	AuthTimeout        time.Duration
	MaxUnauthenticated int
	// ConnectRate and ConnectBurst bound the sessions one user may open on
	// this pod per second (default 2/s, bursts of 20): a client looping on
	// connect costs an auth check, a hub slot and an inbox read each time.
	ConnectRate  float64
	ConnectBurst int
	// Presence (with Deps.Presence and Deps.Online) records which users
	// this pod holds and serves who is online: watch frames, presence
	// events on changes, the sweep of dead pods' records. OfflineDelay
	// debounces going offline (and bounds a flapping user's writes);
	// StaleAfter is how old a pod's heartbeat may be before its users count
	// as offline (pkg/online).
	Presence     bool
	OfflineDelay time.Duration
	StaleAfter   time.Duration
}

// Verifier checks bearer tokens.
type Verifier interface {
	Verify(token string) (auth.Principal, error)
}

// Store is the inbox as the edge uses it (inbox.Store): reads for resumes,
// catch-ups and gap fills, and acks.
type Store interface {
	inboxreader.Store
	acks.Store
	peers.Inbox
}

// Deps are the edge's clients.
type Deps struct {
	PubSub *pubsub.Client
	Store  Store
	// Heartbeats records that this pod is alive (pkg/edges).
	Heartbeats fanout.Heartbeats
	// Presence records which users this pod holds (presence.Table); required
	// with Config.TargetedRouting.
	Presence presence.Writer
	// Online reads who is online (pkg/online); with Config.Presence it
	// serves watch frames and the sweep of dead pods' records.
	Online   *online.Reader
	Verifier Verifier
	// Registry receives the edge's metrics; main serves it on the admin listener (ADMIN_ADDR).
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// Edge is one ws-edge pod.
type Edge struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	m        *metrics.Metrics
	hub      *hub.Hub[*session.Session]
	seqs     *sequencer.Set
	fanout   *fanout.Fanout
	acks     *acks.Writer
	sessions *session.Deps
	presence *presence.Recorder // nil without targeted routing
	// ephemeral publishes this pod's ephemeral events (signals, presence).
	ephemeral *ephemeral.Publisher
	// receipts coalesces the read receipts of this pod's read frames.
	receipts *receipts.Coalescer
	online   *onlineService // nil without presence
	draining atomic.Bool
	// unauthenticated holds a token per connection waiting for its auth
	// frame.
	unauthenticated chan struct{}
	// connects limits each user's session opens (Config.ConnectRate).
	connects *ratelimit.Limiter

	// stopReads ends the sequencers' gap reads (drain).
	stopReads context.CancelFunc
}

// New builds an edge; call Start, then Run until the pod stops.
func New(cfg Config, deps Deps) (*Edge, error) {
	if err := ValidatePodName(cfg.Pod); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	// Zero-value fallbacks: the binary never relies on them (settings.go
	// sets every field; main's TestPackagesDoNotFillIn); they stay because
	// tests build edges from partial configs.
	if cfg.ReadConcurrency <= 0 {
		cfg.ReadConcurrency = 32
	}
	if cfg.CloseConcurrency <= 0 {
		cfg.CloseConcurrency = 64
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 20 * time.Second
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 5 * time.Second
	}
	if cfg.ConnectRate <= 0 {
		cfg.ConnectRate = 2
	}
	if cfg.ConnectBurst <= 0 {
		cfg.ConnectBurst = 20
	}
	if cfg.MaxUnauthenticated <= 0 {
		cfg.MaxUnauthenticated = 1000
	}
	m, err := metrics.New(deps.Registry)
	if err != nil {
		return nil, err
	}
	log := deps.Logger.With("pod", cfg.Pod)
	reader := inboxreader.New(deps.Store, inboxreader.Options{
		Concurrency: cfg.ReadConcurrency, PageBytes: cfg.PageBytes, BudgetBytes: cfg.ReadBudgetBytes, UserPages: cfg.UserReadPages,
	}, m)
	opts := cfg.Session.WithDefaults()
	e := &Edge{cfg: cfg, deps: deps, log: log, m: m, unauthenticated: make(chan struct{}, cfg.MaxUnauthenticated),
		connects: ratelimit.New(ratelimit.Options{PerSecond: cfg.ConnectRate, Burst: cfg.ConnectBurst, MaxKeys: max(cfg.MaxSessions, 1000)}),
		acks:     acks.New(acks.Config{Queue: cfg.AckQueue}, deps.Store, log),
	}
	reads, stopReads := context.WithCancel(context.Background())
	e.stopReads = stopReads
	// One way: fan-out → sequencer (order, gap reads) → hub (the user's
	// sessions) → session. The hub's first/last-session events open and
	// close the user's sequencer; gap reads end with the drain.
	e.seqs = sequencer.New(reads, sequencer.Config{
		ReorderWait: cfg.ReorderWait, ReorderWaitMax: cfg.ReorderWaitMax, MaxHeld: cfg.MaxHeld,
		ReadLimit: opts.ReplayLimit, ReadTimeout: opts.StoreTimeout,
	}, func(ctx context.Context, user string, after int64, limit int) (inboxreader.Page, error) {
		return reader.Read(ctx, inboxreader.Gap, user, after, limit)
	}, func(user string, items []frame.Item) { e.hub.Broadcast(user, items) }, m, log)
	filter, events := "", hubEvents{e.seqs, nil}
	if cfg.TargetedRouting {
		if deps.Presence == nil {
			return nil, errors.New("edge: targeted routing needs Deps.Presence")
		}
		filter = presence.Filter(cfg.Pod)
	}
	if cfg.TargetedRouting || cfg.Presence && deps.Presence != nil {
		e.presence = presence.NewRecorder(deps.Presence, cfg.Pod, presenceTimeout, log)
		events.presence = e.presence
	}
	e.hub = hub.New[*session.Session](hub.Config{MaxSessions: cfg.MaxSessions, MaxSessionsPerUser: cfg.MaxSessionsPerUser}, events)
	e.sessions = &session.Deps{Options: &opts, Reader: reader, Starter: e.seqs, Acks: e.acks, Metrics: m, Log: log}
	em, err := ephemeral.NewMetrics(deps.Registry, "courier_ws_edge")
	if err != nil {
		return nil, err
	}
	if deps.PubSub != nil { // nil only in tests of the HTTP surface
		e.ephemeral = ephemeral.New(deps.PubSub, cfg.Topology.DeliveriesTopic, ephemeral.Options{}, em, log)
		// Who shares a conversation with whom: the stored conversations
		// (inbox.Store is a peers.Conversations) and the users' recent
		// inboxes (pkg/peers).
		directory := peers.New(deps.Store, peers.Options{})
		e.sessions.Signals = signal.NewSender(e.ephemeral, directory)
		if rs, ok := deps.Store.(ReadStore); ok {
			// Read frames; their receipts are coalesced per second, counts
			// for large sends read at flush time (countReceipt).
			e.receipts = receipts.New(e.ephemeral.Publish, func(ctx context.Context, kind, id string) (int, error) {
				return countReceipt(ctx, rs, kind, id)
			}, time.Second)
			e.sessions.Reads = newReads(rs, e.ephemeral, e.receipts)
			// Delivered receipts from this pod's WebSocket acks, with the
			// message the ack writer reads anyway.
			if hs, ok := deps.Store.(interface {
				OnAcked(func(string, inbox.Stored)) *inbox.Store
			}); ok {
				c := e.receipts
				hs.OnAcked(func(user string, st inbox.Stored) { c.Add(receipts.DeliveredBy(user, st)) })
			}
		}
		if cfg.Presence && deps.Online != nil && e.presence != nil {
			e.online = newOnline(e, directory, deps.Online, deps.Presence)
			e.sessions.Watch = e.online
			e.presence.WithLeaveDelay(cfg.OfflineDelay).OnChange(e.online.changed)
		}
	}
	if deps.Heartbeats == nil {
		return nil, errors.New("edge: Deps.Heartbeats is required")
	}
	e.fanout = fanout.New(deps.PubSub, deps.Heartbeats, fanout.Config{
		Topology: cfg.Topology, Pod: cfg.Pod, Filter: filter, HeartbeatInterval: cfg.HeartbeatInterval,
	}, e.seqs, ephemeralSessions{e.hub, e.online}, m, log)
	return e, nil
}

// ephemeralSessions writes ephemeral frames to a user's local sessions
// (fanout.Sessions).
type ephemeralSessions struct {
	h *hub.Hub[*session.Session]
	o *onlineService // nil without presence
}

func (es ephemeralSessions) SendEphemeral(user string, frame []byte) (queued, dropped int) {
	// Copied out of the hub's lock: a session takes its own lock to queue.
	var buf [4]*session.Session
	for _, s := range es.h.AppendSessions(buf[:0], user) {
		if s.SendEphemeral(frame) {
			queued++
		} else {
			dropped++
		}
	}
	return queued, dropped
}

// hubEvents hands the hub's first-session and last-session events to their
// two consumers: the user's sequencer opens and closes with them, and with
// targeted routing the presence record is written and removed (the
// Recorder only starts its write here; admit waits for it).
type hubEvents struct {
	seqs     *sequencer.Set
	presence *presence.Recorder // nil without targeted routing
}

func (ev hubEvents) FirstSession(user string) {
	ev.seqs.Open(user)
	if ev.presence != nil {
		ev.presence.FirstSession(user)
	}
}

func (ev hubEvents) LastSession(user string) {
	ev.seqs.Close(user)
	if ev.presence != nil {
		ev.presence.LastSession(user)
	}
}

// Start records the pod's heartbeat and creates its subscription:
// deliveries published from then on reach this pod. Serve Handler only
// after it, or a session could miss what is published in between.
func (e *Edge) Start(ctx context.Context) error { return e.fanout.Ensure(ctx) }

// Run receives deliveries and writes the sessions' acks until ctx ends (or
// one of them fails), then drains the pod and returns.
func (e *Edge) Run(ctx context.Context) error {
	// Receiving and the ack writer do not stop with ctx: they go on while
	// the drain closes the sessions (the acks their clients sent last are
	// still written), and the drain stops them before it deletes the
	// subscription (deleting it under a running Receive makes Receive fail).
	recvCtx, stopRecv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRecv()
	g, gctx := errgroup.WithContext(recvCtx)
	g.Go(func() error { return e.acks.Run(gctx) })
	if e.receipts != nil {
		g.Go(func() error { return e.receipts.Run(gctx) })
	}
	g.Go(func() error { return e.fanout.Run(gctx) })
	if e.online != nil {
		g.Go(func() error { return e.online.Run(gctx) })
	}
	select {
	case <-ctx.Done():
	case <-gctx.Done():
	}
	return e.drain(stopRecv, g.Wait)
}

// drain is the pod's shutdown, within Config.DrainTimeout: readiness fails
// and new WebSockets are refused; every session is closed with 1001 "going
// away" (clients reconnect to another pod and resume); receiving and the
// ack writer stop (received returns once they have); the gap reads are
// cancelled; the last presence writes finish; and only then the
// subscription and the heartbeat are deleted. The HTTP server is the
// caller's to stop afterwards.
func (e *Edge) drain(stopRecv context.CancelFunc, received func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.DrainTimeout)
	defer cancel()
	e.draining.Store(true)
	start := time.Now()
	n := e.hub.Len()
	// Slow peers must not eat the whole budget: keep a fifth of it for
	// stopping Receive and deleting the subscription.
	closeCtx, cancelClose := context.WithTimeout(ctx, e.cfg.DrainTimeout*4/5)
	closeErr := e.hub.Shutdown(closeCtx, websocket.StatusGoingAway, "going away", e.cfg.CloseConcurrency)
	cancelClose()
	e.log.Info("sessions closed", "sessions", n, "took", time.Since(start).String(), "err", closeErr)
	if closeErr != nil {
		closeErr = fmt.Errorf("close sessions: %w", closeErr)
	}
	stopRecv()
	e.stopReads()
	e.seqs.Wait()
	if e.ephemeral != nil {
		if err := e.ephemeral.Stop(ctx); err != nil {
			e.log.Warn("stop the ephemeral publisher", "err", err)
		}
	}
	recvErr := make(chan error, 1)
	go func() { recvErr <- received() }()
	select {
	case err := <-recvErr:
		if err != nil {
			closeErr = errors.Join(closeErr, fmt.Errorf("receive: %w", err))
		}
	case <-ctx.Done():
		return errors.Join(closeErr, fmt.Errorf("wait for receive to stop: %w", ctx.Err()))
	}
	if e.presence != nil {
		// The last sessions' records are removed before the pod's
		// subscription and heartbeat go (fanout.Delete sweeps the rest).
		if err := e.presence.Wait(ctx); err != nil {
			return errors.Join(closeErr, err)
		}
	}
	return errors.Join(closeErr, e.fanout.Delete(ctx))
}

// SubscriptionName is the full path of this pod's subscription.
func (e *Edge) SubscriptionName() string { return e.fanout.SubscriptionName() }

// Sessions returns the sessions this pod holds for user (for tests and
// debugging).
func (e *Edge) Sessions(user string) []*session.Session { return e.hub.AppendSessions(nil, user) }

// readiness is the edge's own readiness check.
func (e *Edge) readiness(context.Context) error {
	switch {
	case e.draining.Load():
		return errors.New("draining")
	case !e.fanout.Ready():
		return errors.New("subscription not created yet")
	}
	return nil
}

// Handler serves the edge's HTTP endpoints.
func (e *Edge) Handler() http.Handler { return e.mux() }

var podNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidatePodName accepts 1-63 lowercase letters, digits and inner dashes,
// which fit a subscription id and a label value.
func ValidatePodName(s string) error {
	if !podNamePattern.MatchString(s) {
		return fmt.Errorf("pod name %q: want 1-63 lowercase letters, digits and inner dashes", s)
	}
	return nil
}

// SanitizePodName maps a host name to a valid pod name: lowercase, runs of
// other characters become one dash, trimmed to 63 characters.
func SanitizePodName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := b.String()
	if len(out) > 63 {
		out = out[:63]
	}
	return strings.Trim(out, "-")
}
