package edge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/telemetry"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
	"github.com/courierhq/courier/services/ws-edge/internal/session"
)

var testSecret = []byte("test-secret-at-least-16-bytes")

// world is one test's project: emulator clients and the applied topology.
type world struct {
	project  string
	ps       *pubsub.Client
	store    *inbox.Store
	beats    *edges.Store
	presence *presence.Table
	topo     topology.Config
	pub      *pubsub.Publisher
}

func newWorld(t testing.TB) *world {
	t.Helper()
	project := testenv.Project(t)
	w := &world{project: project}
	w.ps, w.topo = testenv.Topology(t, project, nil)
	fs := testenv.Firestore(t, project)
	w.store, w.beats, w.presence = inbox.New(fs), edges.New(fs), presence.NewTable(fs)
	w.pub = w.ps.Publisher(w.topo.DeliveriesTopic)
	t.Cleanup(w.pub.Stop)
	return w
}

// commit stores a message as the pipeline-worker would.
func (w *world) commit(t testing.TB, id, from string, payload string, to ...string) inbox.Stored {
	t.Helper()
	if payload == "" {
		payload = `{"text":"` + id + `"}`
	}
	st, _, err := inboxtest.Commit(testenv.Context(t, time.Minute), w.store, &courierv1.Envelope{
		MessageId: id, Sender: from, Recipients: to, Payload: []byte(payload),
		ContentType: "application/json", SentAt: timestamppb.Now(),
	})
	if err != nil {
		t.Fatalf("commit %s: %v", id, err)
	}
	return st
}

// publish fans a stored message out as the pipeline-worker would.
func (w *world) publish(t testing.TB, st inbox.Stored) {
	t.Helper()
	data, err := proto.Marshal(st.Delivery())
	if err != nil {
		t.Fatal(err)
	}
	msg := &pubsub.Message{Data: data, Attributes: map[string]string{
		wire.AttrMessageID:   st.Message.Id,
		wire.AttrSender:      st.Message.From,
		wire.AttrSchema:      "courier.v1.Delivery",
		wire.AttrContentType: "application/protobuf",
		wire.AttrRecipients:  strings.Join(st.Message.To, ","),
	}}
	if _, err := pubsubx.Publish(testenv.Context(t, 30*time.Second), w.pub, msg, st.Message.Id); err != nil {
		t.Fatalf("publish %s: %v", st.Message.Id, err)
	}
}

// testEdge is one ws-edge instance on an httptest server.
type testEdge struct {
	*edge.Edge
	srv     *httptest.Server
	reg     *prometheus.Registry
	stopRun context.CancelFunc
	runDone chan error
	once    sync.Once
	runErr  error
}

// shutdown ends the edge's Run context and returns what Run returned once
// it has drained.
func (te *testEdge) shutdown() error {
	te.stopRun()
	te.once.Do(func() {
		select {
		case te.runErr = <-te.runDone:
		case <-time.After(30 * time.Second):
			te.runErr = errors.New("Run did not return within 30s of its context ending")
		}
	})
	return te.runErr
}

type edgeOption func(*edge.Config, *edge.Deps)

func withStore(s edge.Store) edgeOption {
	return func(_ *edge.Config, d *edge.Deps) { d.Store = s }
}

func startEdge(t testing.TB, w *world, pod string, opts ...edgeOption) *testEdge {
	return startEdgeOn(t, w, pod, nil, opts...)
}

// startEdgeOn starts an edge whose server uses listener l (nil: default).
func startEdgeOn(t testing.TB, w *world, pod string, l net.Listener, opts ...edgeOption) *testEdge {
	t.Helper()
	verifier, err := auth.NewHS256(testSecret, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := edge.Config{
		Pod:                pod,
		Topology:           w.topo,
		MaxSessions:        100,
		MaxSessionsPerUser: 8,
		Session:            session.Options{QueueSize: 64, WriteTimeout: 5 * time.Second, ReadLimit: 4096, ReplayLimit: 500},
		GatewayURL:         "http://gateway.invalid",
		HeartbeatInterval:  time.Minute,
		DevSecret:          testSecret,
		DrainTimeout:       20 * time.Second,
	}
	reg := prometheus.NewRegistry()
	deps := edge.Deps{PubSub: w.ps, Store: w.store, Heartbeats: w.beats, Verifier: verifier, Registry: reg, Logger: testLogger(t)}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	e, err := edge.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, 2*time.Minute)
	if err := e.Start(ctx); err != nil {
		t.Fatalf("start edge %s: %v", pod, err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	te := &testEdge{Edge: e, reg: reg, stopRun: stopRun, runDone: make(chan error, 1)}
	te.srv = httptest.NewUnstartedServer(e.Handler())
	if l != nil {
		te.srv.Listener.Close()
		te.srv.Listener = l
	}
	te.srv.Start()
	go func() { te.runDone <- e.Run(runCtx) }()
	t.Cleanup(func() {
		_ = te.shutdown()
		te.srv.Close()
	})
	return te
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("EDGE_TEST_LOG") != "" {
		return telemetry.NewLogger(os.Stderr, telemetry.LogOptions{Level: slog.LevelDebug})
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// counter reads a metric of the edge (labels as name=value pairs); for a
// histogram, its count of observations.
func (te *testEdge) counter(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := te.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func (te *testEdge) wsURL(cursor string) string {
	u := "ws" + strings.TrimPrefix(te.srv.URL, "http") + "/v1/ws"
	if cursor != "" {
		u += "?cursor=" + url.QueryEscape(cursor)
	}
	return u
}

func token(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// frame is any server frame.
type frame struct {
	Type      string          `json:"type"`
	SessionID string          `json:"session_id"`
	Pod       string          `json:"pod"`
	Resumed   bool            `json:"resumed"`
	Cursor    string          `json:"cursor"`
	Code      string          `json:"code"`
	Message   json.RawMessage `json:"message"`
	// Signal frames (ephemeral events).
	From string          `json:"from"`
	Kind string          `json:"kind"`
	Data json.RawMessage `json:"data"`
}

func (f frame) String() string {
	switch f.Type {
	case "message":
		return "message:" + f.msg().ID
	case "error":
		return "error:" + f.Code
	case "signal":
		return "signal:" + f.Kind
	}
	return f.Type
}

func (f frame) msg() inbox.WireMessage {
	var m inbox.WireMessage
	_ = json.Unmarshal(f.Message, &m)
	return m
}

// wsClient is a test WebSocket client that reads every frame into a channel.
type wsClient struct {
	conn   *websocket.Conn
	frames chan frame
	err    error // set before frames is closed
}

type dialOpts struct {
	cursor string
	header http.Header
	client *http.Client
	noRead bool
}

func dial(t testing.TB, te *testEdge, user string, o dialOpts) *wsClient {
	t.Helper()
	c, resp, err := tryDial(t, te, user, o)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s as %s: %v (HTTP %d)", te.srv.URL, user, err, status)
	}
	return c
}

func tryDial(t testing.TB, te *testEdge, user string, o dialOpts) (*wsClient, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	for k, v := range o.header {
		h[k] = v
	}
	if user != "" {
		h.Set("Authorization", "Bearer "+token(t, user))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, te.wsURL(o.cursor), &websocket.DialOptions{HTTPHeader: h, HTTPClient: o.client})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(-1)
	c := &wsClient{conn: conn, frames: make(chan frame, 4096)}
	t.Cleanup(func() { _ = conn.CloseNow() })
	if !o.noRead {
		c.startReading()
	}
	return c, resp, nil
}

func (c *wsClient) startReading() {
	go func() {
		defer close(c.frames)
		for {
			_, b, err := c.conn.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				c.err = fmt.Errorf("unreadable frame %q: %w", b, err)
				return
			}
			c.frames <- f
		}
	}()
}

func (c *wsClient) next(t testing.TB) frame {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatalf("connection ended: %v", c.err)
		}
		return f
	case <-time.After(20 * time.Second):
		t.Fatalf("no frame within 20s")
	}
	return frame{}
}

// expect reads frames and compares them with want ("hello",
// "message:<id>", "synced", "error:<code>").
func (c *wsClient) expect(t testing.TB, want ...string) []frame {
	t.Helper()
	var got []frame
	for i, w := range want {
		f := c.next(t)
		got = append(got, f)
		if f.String() != w {
			t.Fatalf("frame %d = %s, want %s (so far %v)", i, f, w, got)
		}
	}
	return got
}

// closed waits for the connection to end and returns the read error.
func (c *wsClient) closed(t testing.TB) error {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return c.err
			}
		case <-deadline:
			t.Fatalf("connection still open after 30s")
		}
	}
}

func messageIDs(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i+1)
	}
	return out
}
