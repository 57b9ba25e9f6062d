package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/topology"

	"github.com/courierhq/courier/services/ws-edge/internal/edge"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
)

// settings is every knob of the edge, each from one env variable.
type settings struct {
	HTTPAddr        string
	AdminAddr       string
	DebugAddr       string
	ShutdownTimeout time.Duration
	// InboxRetention is INBOX_RETENTION: a resume behind it closes 4410.
	InboxRetention time.Duration
	Auth           auth.Config // shared variables (pkg/auth, root README)
	Edge           edge.Config // Topology: shared variables (pkg/topology, root README)
}

// setting is one row of the edge's own configuration: its variable, its
// default as the README shows it, its bounds, what it means, and how it is
// read into settings. The table is the only place a default lives; the
// README's table is generated from it (TestREADMEEnvironmentIsGenerated).
type setting struct {
	name, def, bounds, doc string
	read                   func(e *config.Env, s *settings)
}

func intSetting(name string, def, lo, hi int, doc string, set func(*settings, int)) setting {
	return setting{name, "`" + strconv.Itoa(def) + "`", fmt.Sprintf("%d–%d", lo, hi), doc,
		func(e *config.Env, s *settings) { set(s, e.Int(name, def, lo, hi)) }}
}

func durationSetting(name string, def, lo time.Duration, doc string, field func(*settings) *time.Duration) setting {
	return setting{name, "`" + shortDuration(def) + "`", "≥ " + shortDuration(lo), doc,
		func(e *config.Env, s *settings) { *field(s) = e.Duration(name, def, lo) }}
}

func stringSetting(name, def, doc string, field func(*settings) *string) setting {
	shown := "unset"
	if def != "" {
		shown = "`" + def + "`"
	}
	return setting{name, shown, "", doc, func(e *config.Env, s *settings) { *field(s) = e.String(name, def) }}
}

// shortDuration writes d as an operator would: 2m, not 2m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// table is the edge's own variables; cross-variable rules are in
// loadSettings below it.
var table = []setting{
	stringSetting("HTTP_ADDR", ":8081", "listen address (WebSocket, demo client, `/healthz`, `/readyz`; no `/metrics`)", func(s *settings) *string { return &s.HTTPAddr }),
	stringSetting(adminserver.Env, adminserver.DefaultAddr, "admin listener: Prometheus `/metrics` only (`pkg/adminserver`), never behind the ingress", func(s *settings) *string { return &s.AdminAddr }),
	stringSetting("DEBUG_ADDR", "", "debug listener: pprof and `/debug/memstats` (`pkg/debugserver`; root README: Configuration); unset = off", func(s *settings) *string { return &s.DebugAddr }),
	{"POD_NAME", "host name", "", "names the subscription `courier-edge-<pod>`; lowercased, other characters become `-`, 63 max", readPodName},
	durationSetting("INBOX_RETENTION", 0, 0, "how long inbox entries are kept (keep equal to the worker's); a resume behind it closes 4410 `cursor_expired`; `0` = forever", func(s *settings) *time.Duration { return &s.InboxRetention }),
	durationSetting("WS_AUTH_TIMEOUT", 5*time.Second, 10*time.Millisecond, "a connection opened without a credential must send its auth frame within this; else 1008 `auth timeout`", func(s *settings) *time.Duration { return &s.Edge.AuthTimeout }),
	intSetting("WS_MAX_UNAUTHENTICATED", 1000, 1, 1_000_000, "connections waiting for their auth frame at once, per pod (503 `auth_backlog` beyond)", func(s *settings, v int) { s.Edge.MaxUnauthenticated = v }),
	{"WS_ALLOWED_ORIGINS", "unset = same origin only", "", "comma-separated origin patterns (`host`, `*.example.com`, `https://app.example.com`)",
		func(e *config.Env, s *settings) { s.Edge.AllowedOrigins = e.List("WS_ALLOWED_ORIGINS", nil) }},
	intSetting("WS_MAX_SESSIONS", 10000, 1, 10_000_000, "sessions per pod (503 beyond)", func(s *settings, v int) { s.Edge.MaxSessions = v }),
	intSetting("WS_MAX_SESSIONS_PER_USER", 16, 1, 10_000, "sessions per user per pod (429 beyond)", func(s *settings, v int) { s.Edge.MaxSessionsPerUser = v }),
	intSetting("WS_SEND_QUEUE", 1024, 1, 100_000, "frames queued per session; full → the session catches up from the inbox", func(s *settings, v int) { s.Edge.Session.QueueSize = v }),
	intSetting("WS_READ_LIMIT", 4096, 128, 1<<20, "largest client frame in bytes; larger → close 1009", func(s *settings, v int) { s.Edge.Session.ReadLimit = int64(v) }),
	durationSetting("WS_PING_INTERVAL", 20*time.Second, time.Second, "keepalive; a peer that does not pong within one interval is dropped", func(s *settings) *time.Duration { return &s.Edge.Session.PingInterval }),
	durationSetting("WS_WRITE_TIMEOUT", 10*time.Second, 100*time.Millisecond, "a socket write that makes no progress this long: the client is not reading → 1008", func(s *settings) *time.Duration { return &s.Edge.Session.WriteTimeout }),
	intSetting("WS_REPLAY_LIMIT", 500, 1, 10_000, "page size of inbox reads (resume, catch-up, gap fill)", func(s *settings, v int) { s.Edge.Session.ReplayLimit = v }),
	durationSetting("WS_REORDER_WAIT", 2*time.Second, time.Millisecond, "least time a missing position is waited for before it is read from the inbox (the window adapts above it)", func(s *settings) *time.Duration { return &s.Edge.ReorderWait }),
	durationSetting("WS_REORDER_WAIT_MAX", 30*time.Second, time.Millisecond, "most time it is waited for", func(s *settings) *time.Duration { return &s.Edge.ReorderWaitMax }),
	intSetting("WS_MAX_HELD", 1024, 1, 1_000_000, "deliveries held per user behind a gap; a full buffer reads the gap at once", func(s *settings, v int) { s.Edge.MaxHeld = v }),
	intSetting("WS_READ_CONCURRENCY", 32, 1, 10_000, "inbox reads running at once on the pod", func(s *settings, v int) { s.Edge.ReadConcurrency = v }),
	intSetting("WS_PAGE_BYTES", inbox.DefaultPageBytes, 4<<10, 16<<20, "byte bound of one inbox page (resume, catch-up, gap fill; one larger message comes alone)", func(s *settings, v int) { s.Edge.PageBytes = v }),
	intSetting("WS_READ_BUDGET_BYTES", inboxreader.DefaultBudgetBytes, 64<<10, 1<<34, "pod-wide bytes of pages read and not yet written; a read waits for its share (≥ `WS_PAGE_BYTES`)", func(s *settings, v int) { s.Edge.ReadBudgetBytes = v }),
	intSetting("WS_USER_READ_PAGES", 4, 1, 1000, "pages one user holds at once on the pod", func(s *settings, v int) { s.Edge.UserReadPages = v }),
	durationSetting("WS_PAGE_WRITE_TIMEOUT", 30*time.Second, time.Second, "a replay or catch-up page must be written whole within this, else 1008 `client too slow`", func(s *settings) *time.Duration { return &s.Edge.Session.PageWriteTimeout }),
	intSetting("WS_CONNECT_RATE", 2, 1, 1_000_000, "session opens per user per pod per second; over it 429 `connect_rate` (1013 after a first-frame auth)", func(s *settings, v int) { s.Edge.ConnectRate = float64(v) }),
	intSetting("WS_CONNECT_BURST", 20, 1, 1_000_000, "burst of the above", func(s *settings, v int) { s.Edge.ConnectBurst = v }),
	intSetting("WS_MAX_BATCH_BYTES", 64<<10, 1<<10, 16<<20, "largest WebSocket message of batched frames (`batch=1`)", func(s *settings, v int) { s.Edge.Session.MaxBatchBytes = v }),
	intSetting("WS_ACK_QUEUE", 10_000, 1, 10_000_000, "acks waiting for the ack writer; full → `unavailable` error frame", func(s *settings, v int) { s.Edge.AckQueue = v }),
	intSetting("WS_ACK_RATE", 100, 1, 1_000_000, "acks per second per session; beyond → `rate_limited` error frame", func(s *settings, v int) { s.Edge.Session.AckRate = float64(v) }),
	intSetting("WS_ACK_BURST", 500, 1, 1_000_000, "acks a session may send at once (a catch-up page is acked in a burst)", func(s *settings, v int) { s.Edge.Session.AckBurst = v }),
	intSetting("WS_SIGNAL_RATE", 10, 1, 1_000_000, "signal frames per second per session; beyond → `signal_rate_limited` error frame", func(s *settings, v int) { s.Edge.Session.SignalRate = float64(v) }),
	intSetting("WS_SIGNAL_BURST", 20, 1, 1_000_000, "signal frames a session may send at once", func(s *settings, v int) { s.Edge.Session.SignalBurst = v }),
	intSetting("WS_EPHEMERAL_QUEUE", 64, 1, 100_000, "ephemeral frames (signals, presence, receipts, read markers) waiting per session; full → dropped, counted in `courier_ws_edge_ephemeral_total{result=\"dropped_queue_full\"}`", func(s *settings, v int) { s.Edge.Session.EphemeralQueue = v }),
	stringSetting("GATEWAY_URL", "http://localhost:8080", "where the demo client sends (the gateway must allow the edge's origin with CORS)", func(s *settings) *string { return &s.Edge.GatewayURL }),
	{"EDGE_TARGETED_ROUTING", "`false`", "", "targeted routing: presence records and the per-pod subscription filter (see above)",
		func(e *config.Env, s *settings) { s.Edge.TargetedRouting = e.Bool("EDGE_TARGETED_ROUTING", false) }},
	durationSetting("EDGE_HEARTBEAT_INTERVAL", 10*time.Second, time.Second, "heartbeat period; `PRESENCE_STALE_AFTER` and `courierctl sweep --stale` must be several times longer", func(s *settings) *time.Duration { return &s.Edge.HeartbeatInterval }),
	{"EDGE_PRESENCE", "`true`", "", "presence: record which users this pod holds (`pkg/presence`), serve `watch` frames and `presence` frames, sweep dead pods' records",
		func(e *config.Env, s *settings) { s.Edge.Presence = e.Bool("EDGE_PRESENCE", true) }},
	durationSetting("PRESENCE_OFFLINE_DELAY", 5*time.Second, 0, "a user's last session here is recorded gone this much later, unless they reconnect meanwhile: debounces going offline and bounds a flapping user's record writes", func(s *settings) *time.Duration { return &s.Edge.OfflineDelay }),
	durationSetting("PRESENCE_STALE_AFTER", 35*time.Second, time.Second, "a pod whose heartbeat is older holds nobody: a killed pod's users go offline within this plus 5 s of its last heartbeat", func(s *settings) *time.Duration { return &s.Edge.StaleAfter }),
	durationSetting("SHUTDOWN_TIMEOUT", 25*time.Second, time.Second, "whole drain: close sessions, stop receiving, delete the subscription, stop HTTP", func(s *settings) *time.Duration { return &s.ShutdownTimeout }),
}

// readPodName reads POD_NAME (the host name when unset), made a valid
// subscription suffix.
func readPodName(e *config.Env, s *settings) {
	pod := e.String("POD_NAME", "")
	if pod == "" {
		host, err := os.Hostname()
		e.Check("POD_NAME", err)
		pod = host
	}
	s.Edge.Pod = edge.SanitizePodName(pod)
	e.Check("POD_NAME", edge.ValidatePodName(s.Edge.Pod))
}

// loadSettings reads the environment; the error names every missing or
// malformed variable at once.
func loadSettings(e *config.Env) (settings, error) {
	s := settings{Auth: auth.ConfigFromEnv(e)}
	s.Edge.Topology = topology.FromEnv(e)
	for _, v := range table {
		v.read(e, &s)
	}
	// The edge's own drain has the whole budget; the HTTP server stops in
	// what remains of it (wsEdge.Run).
	s.Edge.DrainTimeout = s.ShutdownTimeout
	if s.Edge.ReadBudgetBytes < s.Edge.PageBytes {
		e.Check("WS_READ_BUDGET_BYTES", fmt.Errorf("must be at least WS_PAGE_BYTES (%d)", s.Edge.PageBytes))
	}
	// Development tokens only when asked for (DEV_TOKENS=true) and nothing
	// else can verify tokens.
	if s.Auth.DevTokens() {
		s.Edge.DevSecret = []byte(s.Auth.HS256Secret)
	}
	return s, e.Err()
}

// markdownTable renders table as the README's configuration table.
func markdownTable() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Bounds | Meaning |\n|---|---|---|---|\n")
	for _, v := range table {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.name, v.def, v.bounds, v.doc)
	}
	return b.String()
}
