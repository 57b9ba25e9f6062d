// Package edge measures ws-edge alone. Deliveries are published straight to
// the fan-out topic exactly as the pipeline-worker publishes them (a proto
// courier.v1.Delivery, Courier's attributes, ordering key = sender, the
// worker's publisher settings), and every recipient's cursor is the next
// consecutive position of that user's inbox after where the session started.
// A correct edge therefore never needs Firestore during the measurement
// (nothing is stored there: a gap it tried to fill would stay empty, and the
// frame waiting for it counts as lost).
//
// It reports idle memory per session (Go heap + stacks, RSS, goroutines,
// read from the edge process itself), group fan-out (every delivery to all
// of N sessions' users) and one-to-one delivery at ladders of rates: frames/s,
// lost, duplicates, closes by code, latency (publish due time → frame), edge
// CPU in cores, and frames per edge core-second.
package edge

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/coder/websocket"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/cmd/courier-bench/internal/openloop"
	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/cmd/courier-bench/internal/promtext"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stack"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stats"
	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/harness/wsclient"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Config sizes the phase.
type Config struct {
	Idle        []int // session counts for the idle memory points, ascending
	Sessions    int   // sessions (one user each) for the fan-out ladders
	GroupLadder []float64
	OneLadder   []float64
	StepFor     time.Duration
	// Extend adds up to this many rungs past each ladder's last, each 1.5×
	// the one before, while the previous rung held (to find where it
	// breaks).
	Extend          int
	Drain           time.Duration
	P99Bound        time.Duration
	PayloadSize     int
	DialParallel    int
	MaxInFlight     int
	DeliverySenders int
}

// IdlePoint is the edge's memory with n idle sessions.
type IdlePoint struct {
	Sessions   int     `json:"sessions"`
	HeapBytes  float64 `json:"heap_alloc_bytes"`
	StackBytes float64 `json:"stack_inuse_bytes"`
	RSSBytes   float64 `json:"rss_bytes"`
	Goroutines float64 `json:"goroutines"`
	// Per session: (value at n − value at 0) / n.
	GoPerSession         float64 `json:"go_bytes_per_session"` // heap + stacks
	HeapPerSession       float64 `json:"heap_bytes_per_session"`
	StackPerSession      float64 `json:"stack_bytes_per_session"`
	RSSPerSession        float64 `json:"rss_bytes_per_session"`
	GoroutinesPerSession float64 `json:"goroutines_per_session"`
	Source               string  `json:"source"` // "debug" (forced GC) or "metrics"
}

// Step is one rung of a fan-out ladder.
type Step struct {
	Kind       string  `json:"kind"` // "group" or "one-to-one"
	Rate       float64 `json:"deliveries_s"`
	Recipients int     `json:"recipients_per_delivery"`
	Seconds    float64 `json:"seconds"`
	Published  int     `json:"published"`
	PublishErr int     `json:"publish_errors"`
	// Expected counts (user, delivery) pairs: every published delivery to
	// each of its recipients whose session was open at the start.
	Expected int `json:"expected_frames"`
	// Frames counts the expected pairs seen (first arrivals); Lost the
	// expected pairs never seen.
	Frames int `json:"frames"`
	Lost   int `json:"lost"`
	// LostToWindow is the part of Lost the edge itself explains as an
	// artifact of this phase: originals that reached it after it had read
	// their gap from the inbox, which this phase leaves empty (the
	// edge's gaps_filled_late_total); in production that read returns
	// them. LostClosed is the part at sessions the server closed during
	// the step (a client resumes from its cursor).
	LostToWindow int `json:"lost_past_reorder_window"`
	LostClosed   int `json:"lost_at_closed_sessions"`
	// Unexpected frames: for a user the delivery was not addressed to, or
	// for no delivery of this run. BadCursor: a frame whose cursor is not
	// the position its delivery was given for that user. OutOfOrder: a
	// frame whose cursor is not above every cursor its session saw before
	// (a duplicate is counted as one, not here).
	Unexpected int               `json:"unexpected_frames"`
	BadCursor  int               `json:"bad_cursor_frames"`
	OutOfOrder int               `json:"out_of_order_frames"`
	Duplicates int               `json:"duplicates"`
	FramesPerS float64           `json:"frames_s"`
	Latency    stats.Percentiles `json:"latency"`
	EdgeCores  float64           `json:"edge_cpu_cores"`
	// FramesPerCoreSecond is frames / edge CPU seconds.
	FramesPerCoreSecond float64        `json:"frames_per_edge_core_s"`
	Closes              map[string]int `json:"closes_by_code,omitempty"`
	// Usage is the load client's, the emulators' and the machine's CPU.
	Usage procs.Usage `json:"usage"`
	// Parts is the edge's latency broken into its parts over the step
	// (its own histograms; absent on builds that predate them): pubsub_hop
	// (publish time → the edge's handler), reorder_wait (handler → handed
	// to the session), queue_wait (handed → socket write starts),
	// socket_write (one write).
	Parts map[string]promtext.Dist `json:"edge_latency_parts,omitempty"`
	// Edge counters over the step: sessions that switched to catching up
	// from the inbox, and send queues that overflowed.
	CatchUps       float64 `json:"catch_ups,omitempty"`
	QueueOverflows float64 `json:"queue_overflows,omitempty"`
	// LossFails: lost frames the phase cannot explain fail the run
	// (Courier's edges; the peer promises no delivery without history).
	LossFails bool   `json:"-"`
	Broken    string `json:"broken,omitempty"`
}

// Check fails a step with any mis-delivered, duplicated or reordered
// frame, a frame at the wrong position, an accounting hole, or (where
// LossFails) a lost frame the phase cannot explain.
func (s Step) Check() error {
	var bad []string
	if s.Expected != s.Frames+s.Lost || s.Lost < 0 {
		bad = append(bad, fmt.Sprintf("expected %d != frames %d + lost %d", s.Expected, s.Frames, s.Lost))
	}
	if s.Unexpected > 0 {
		bad = append(bad, fmt.Sprintf("%d frames for a user the delivery was not addressed to", s.Unexpected))
	}
	if s.BadCursor > 0 {
		bad = append(bad, fmt.Sprintf("%d frames at a cursor other than their position", s.BadCursor))
	}
	if s.Duplicates > 0 {
		bad = append(bad, fmt.Sprintf("%d duplicate frames", s.Duplicates))
	}
	if s.OutOfOrder > 0 {
		bad = append(bad, fmt.Sprintf("%d frames out of order", s.OutOfOrder))
	}
	if u := s.Lost - s.LostToWindow - s.LostClosed; s.LossFails && u > 0 {
		bad = append(bad, fmt.Sprintf("%d frames lost (%d past the reorder window, %d at closed sessions explained)", u, s.LostToWindow, s.LostClosed))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s at %.0f/s: %s", s.Kind, s.Rate, strings.Join(bad, "; "))
	}
	return nil
}

// Result is the phase on one build.
type Result struct {
	Idle     []IdlePoint `json:"idle"`
	Group    []Step      `json:"group"`
	OneToOne []Step      `json:"one_to_one"`
}

// client is one benchmark session (user u).
type client struct {
	u      int
	cancel context.CancelFunc
	done   chan struct{}
	closed atomic.Int32 // close code once ended (0 while open)
	mu     sync.Mutex
	counts []uint8 // frames per delivery index
	arr    []arrival
	// last is the highest cursor the session saw (its starting position
	// from the synced frame, then every frame's); the counters below are
	// taken (and reset) by each step.
	last                              int64
	unexpected, badCursor, outOfOrder int
}

type arrival struct {
	b  int32
	us int32 // latency in microseconds
}

type bench struct {
	c Config
	// dialer opens user u's session (resuming after cursor when not
	// empty); parse reads its frames; build makes delivery b to users.
	// Courier's edge by default; the peer phase plugs in its own.
	dialer func(ctx context.Context, u int, cursor string) (*websocket.Conn, error)
	parse  func([]byte) wsclient.Frame
	build  func(b int, users []int) (*pubsub.Message, error)

	edge   *stack.Service
	tokens []string
	names  []string
	due    []atomic.Int64 // per delivery index
	firsts []atomic.Int32 // first arrivals per delivery index
	pos    []int64        // per user: last position published
	// rcpt is each delivery's recipient: a user index, or -1 for all
	// (group). at is, per user, the delivery given each position
	// (at[u][p-1]); strict says the cursor must be exactly that (Courier;
	// the peer numbers its offsets itself). omu guards at, which the
	// builder extends while earlier frames are still being read.
	rcpt      []int32
	at        [][]int32
	omu       sync.RWMutex
	strict    bool
	lossFails bool
	meter     procs.Meter
	cls       []*client
	closes    map[string]int
	cmu       sync.Mutex
}

func (bn *bench) dial(ctx context.Context, u int, cursor string, track bool) (*client, error) {
	conn, err := bn.dialer(ctx, u, cursor)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	cl := &client{u: u, cancel: cancel, done: make(chan struct{})}
	if track {
		cl.counts = make([]uint8, len(bn.due))
	}
	synced := make(chan struct{})
	go func() {
		defer close(cl.done)
		once := false
		code := wsclient.ReadWith(cctx, conn, bn.parse, func(now time.Time, f wsclient.Frame) {
			switch f.Kind {
			case wsclient.Synced:
				if !once {
					once = true
					cl.mu.Lock()
					cl.last = max(f.Cursor, 0)
					cl.mu.Unlock()
					close(synced)
				}
			case wsclient.Message:
				bn.message(cl, now, f)
			}
		})
		conn.CloseNow()
		if code == 0 {
			code = -1 // closed by us
		} else {
			bn.cmu.Lock()
			bn.closes[strconv.Itoa(code)]++
			bn.cmu.Unlock()
		}
		cl.closed.Store(int32(code))
	}()
	select {
	case <-synced:
		return cl, nil
	case <-cl.done:
		return nil, fmt.Errorf("session of %s closed (%d) before its synced frame", bn.names[u], cl.closed.Load())
	case <-time.After(60 * time.Second):
		cancel()
		return nil, fmt.Errorf("session of %s: no synced frame within 60s", bn.names[u])
	}
}

// message accounts for one message frame at session cl.
func (bn *bench) message(cl *client, now time.Time, f wsclient.Frame) {
	if cl.counts == nil {
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if !bn.addressed(cl.u, f.Seq) {
		cl.unexpected++
		return
	}
	b := int(f.Seq)
	if cl.counts[b] < 255 {
		cl.counts[b]++
	}
	if cl.counts[b] > 1 {
		return // a duplicate: counted as one by the step, nothing else
	}
	if bn.strict && !bn.positioned(cl.u, b, f.Cursor) {
		cl.badCursor++
	}
	if f.Cursor >= 0 {
		if f.Cursor <= cl.last {
			cl.outOfOrder++
		}
		cl.last = max(cl.last, f.Cursor)
	}
	cl.arr = append(cl.arr, arrival{b: int32(b), us: int32(now.Sub(time.Unix(0, bn.due[b].Load())).Microseconds())})
	bn.firsts[b].Add(1)
}

// open dials users [from, to) with bounded parallelism.
func (bn *bench) open(ctx context.Context, from, to int, track bool) error {
	sem := make(chan struct{}, bn.c.DialParallel)
	var wg sync.WaitGroup
	var first atomic.Value
	for u := from; u < to; u++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cursor := ""
			if bn.pos[u] > 0 {
				cursor = inbox.EncodeCursor(bn.pos[u])
			}
			cl, err := bn.dial(ctx, u, cursor, track)
			if err != nil {
				first.CompareAndSwap(nil, err)
				return
			}
			bn.cls[u] = cl
		})
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

func (bn *bench) mem(ctx context.Context, n int) (IdlePoint, error) {
	g, err := procs.ReadGoMem(ctx, bn.edge.Debug, bn.edge.MetricsURL())
	if err != nil {
		return IdlePoint{}, err
	}
	rss, err := procs.RSSBytes(bn.edge.Pid())
	if err != nil {
		return IdlePoint{}, err
	}
	return IdlePoint{Sessions: n, HeapBytes: g.HeapAlloc, StackBytes: g.StackInuse, RSSBytes: float64(rss), Goroutines: g.Goroutines, Source: g.Source}, nil
}

// waitSessions waits (bounded) until the edge's own session gauge reads n,
// so a measurement does not count sessions still being torn down. Edges
// without the gauge are not waited for.
func (bn *bench) waitSessions(ctx context.Context, n int) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m, err := procs.ScrapeMetrics(ctx, bn.edge.MetricsURL())
		v, ok := m["courier_ws_edge_sessions"]
		if err != nil || !ok || int(v) == n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Run measures the edge of build b on a fresh project.
func Run(ctx context.Context, b stack.Build, emu *procs.Emulators, secret, logDir string, c Config, progress func(string)) (Result, error) {
	project := fmt.Sprintf("bench-e-%s-%d", b.Label, time.Now().UnixNano())
	ps, err := emu.PubSub(ctx, project)
	if err != nil {
		return Result{}, fmt.Errorf("pubsub client: %w", err)
	}
	defer ps.Close()
	if err := stack.Provision(ctx, ps, project); err != nil {
		return Result{}, err
	}
	defer emu.Cleared(project, progress)
	maxIdle := c.Sessions
	for _, n := range c.Idle {
		maxIdle = max(maxIdle, n)
	}
	env := stack.Env{Emulators: emu, Project: project, Secret: secret, LogDir: logDir}
	startEdge := func(pod string) (*stack.Service, error) {
		return stack.StartEdge(ctx, b, env, pod, maxIdle+100, "WS_MAX_SESSIONS_PER_USER=16", "SHUTDOWN_TIMEOUT=20s")
	}
	edge, err := startEdge("bench-edge")
	if err != nil {
		return Result{}, err
	}
	defer func() { edge.Stop(25 * time.Second) }() // the edge of the moment

	groupRates, oneRates := extended(c.GroupLadder, c.Extend), extended(c.OneLadder, c.Extend)
	total := 0
	for _, r := range append(slices.Clone(groupRates), oneRates...) {
		total += int(r * c.StepFor.Seconds())
	}
	bn := newBench(c, edge, total, maxIdle)
	bn.strict, bn.lossFails, bn.meter = true, true, emu.Meter
	bn.dialer = func(ctx context.Context, u int, cursor string) (*websocket.Conn, error) {
		return wsclient.Dial(ctx, bn.edge.HTTP, bn.tokens[u], cursor)
	}
	bn.parse, bn.build = wsclient.Parse, bn.delivery
	bn.names = make([]string, maxIdle)
	bn.tokens = make([]string, maxIdle)
	for u := range maxIdle {
		bn.names[u] = fmt.Sprintf("e%05d", u)
		if bn.tokens[u], err = auth.Mint([]byte(secret), bn.names[u], 4*time.Hour); err != nil {
			return Result{}, fmt.Errorf("mint token: %w", err)
		}
	}
	defer bn.closeAll()

	var res Result
	base, err := bn.mem(ctx, 0)
	if err != nil {
		return res, fmt.Errorf("edge memory at 0 sessions: %w", err)
	}
	opened := 0
	for _, n := range c.Idle {
		if err := bn.open(ctx, opened, n, n <= c.Sessions); err != nil {
			return res, fmt.Errorf("open %d sessions: %w", n, err)
		}
		opened = n
		bn.waitSessions(ctx, n)
		p, err := bn.mem(ctx, n)
		if err != nil {
			return res, fmt.Errorf("edge memory at %d sessions: %w", n, err)
		}
		per := func(v, v0 float64) float64 { return (v - v0) / float64(n) }
		p.HeapPerSession, p.StackPerSession = per(p.HeapBytes, base.HeapBytes), per(p.StackBytes, base.StackBytes)
		p.GoPerSession = p.HeapPerSession + p.StackPerSession
		p.RSSPerSession, p.GoroutinesPerSession = per(p.RSSBytes, base.RSSBytes), per(p.Goroutines, base.Goroutines)
		res.Idle = append(res.Idle, p)
		progress(fmt.Sprintf("idle %d sessions: %.1f KiB Go memory, %.1f KiB RSS, %.2f goroutines per session (%s)",
			n, p.GoPerSession/1024, p.RSSPerSession/1024, p.GoroutinesPerSession, p.Source))
	}
	// Back to the fan-out's sessions: close the others.
	if opened > c.Sessions {
		for u := c.Sessions; u < opened; u++ {
			bn.cls[u].cancel()
		}
		for u := c.Sessions; u < opened; u++ {
			<-bn.cls[u].done
			bn.cls[u] = nil
		}
		bn.waitSessions(ctx, c.Sessions)
	} else if opened < c.Sessions {
		if err := bn.open(ctx, opened, c.Sessions, true); err != nil {
			return res, err
		}
	}

	top := topology.Default(project)
	pub := ps.Publisher(top.DeliveriesTopic)
	pub.EnableMessageOrdering = true
	pub.PublishSettings.DelayThreshold = time.Millisecond // WORKER_PUBLISH_DELAY
	defer pub.Stop()

	next := 0
	ladder := func(kind string, rates []float64) ([]Step, error) {
		var steps []Step
		for k, rate := range rates {
			// Past the configured rungs only while the previous one held.
			if k >= len(rates)-c.Extend && len(steps) > 0 && steps[len(steps)-1].Broken != "" {
				break
			}
			st, err := bn.step(ctx, pub, kind, rate, &next)
			if err != nil {
				return steps, err
			}
			steps = append(steps, st)
			progress(fmt.Sprintf("%s %.0f deliveries/s: %d frames/s, lost %d, p99 %.0f ms, edge %.2f cores, %.0f frames per core-second %s",
				kind, rate, int(st.FramesPerS), st.Lost, st.Latency.P99, st.EdgeCores, st.FramesPerCoreSecond, st.Broken))
			if err := st.Check(); err != nil {
				return steps, err
			}
			// Loss alone does not end the ladder (at high group rates it is
			// mostly deliveries overtaken past the reorder wait); an
			// overloaded edge does: most frames missing, or p99 over 10×
			// the bound.
			if st.Lost*2 > st.Expected || st.Latency.P99 > 10*float64(bn.c.P99Bound.Milliseconds()) || ctx.Err() != nil {
				break
			}
		}
		return steps, ctx.Err()
	}
	if res.Group, err = ladder("group", groupRates); err != nil {
		return res, err
	}
	// A fresh edge (and subscription) for one-to-one: an overloaded group
	// rung leaves a backlog that would be measured as the next ladder's.
	bn.closeAll()
	edge.Stop(25 * time.Second)
	if edge, err = startEdge("bench-edge-one"); err != nil {
		return res, err
	}
	bn.edge = edge
	if err := bn.open(ctx, 0, c.Sessions, true); err != nil {
		return res, fmt.Errorf("reopen sessions on a fresh edge: %w", err)
	}
	if res.OneToOne, err = ladder("one-to-one", oneRates); err != nil {
		return res, err
	}
	return res, nil
}

// closeAll ends every benchmark session.
func (bn *bench) closeAll() {
	for _, cl := range bn.cls {
		if cl != nil {
			cl.cancel()
		}
	}
	for u, cl := range bn.cls {
		if cl != nil {
			<-cl.done
			bn.cls[u] = nil
		}
	}
}

func newBench(c Config, svc *stack.Service, deliveries, users int) *bench {
	bn := &bench{c: c, edge: svc, due: make([]atomic.Int64, deliveries), firsts: make([]atomic.Int32, deliveries),
		pos: make([]int64, users), cls: make([]*client, users), closes: map[string]int{},
		rcpt: make([]int32, deliveries), at: make([][]int32, users)}
	for i := range bn.rcpt {
		bn.rcpt[i] = -2 // not built yet: no frame may name it
	}
	return bn
}

// addressed reports whether delivery b was built with user u among its
// recipients.
func (bn *bench) addressed(u int, b int64) bool {
	if b < 0 || b >= int64(len(bn.rcpt)) {
		return false
	}
	bn.omu.RLock()
	r := bn.rcpt[b]
	bn.omu.RUnlock()
	return r == -1 || r == int32(u)
}

// positioned reports whether cursor is the position delivery b was given
// in user u's inbox.
func (bn *bench) positioned(u, b int, cursor int64) bool {
	bn.omu.RLock()
	defer bn.omu.RUnlock()
	at := bn.at[u]
	return cursor >= 1 && cursor <= int64(len(at)) && at[cursor-1] == int32(b)
}

// extended is rates with up to extra rungs past the last, 1.5× each.
func extended(rates []float64, extra int) []float64 {
	out := slices.Clone(rates)
	for range extra {
		if len(out) == 0 {
			break
		}
		out = append(out, math.Round(out[len(out)-1]*1.5))
	}
	return out
}

// reopenClosed resumes every fan-out session that the edge closed, from the
// last position published to its user (nothing after it is expected).
func (bn *bench) reopenClosed(ctx context.Context) error {
	for u := range bn.c.Sessions {
		if cl := bn.cls[u]; cl != nil && cl.closed.Load() != 0 {
			<-cl.done
			ncl, err := bn.dial(ctx, u, inbox.EncodeCursor(bn.pos[u]), true)
			if err != nil {
				return fmt.Errorf("resume session of %s: %w", bn.names[u], err)
			}
			bn.cls[u] = ncl
		}
	}
	return nil
}

// step publishes rate deliveries/s for StepFor and waits for the frames.
func (bn *bench) step(ctx context.Context, pub *pubsub.Publisher, kind string, rate float64, next *int) (Step, error) {
	if err := bn.reopenClosed(ctx); err != nil {
		return Step{}, err
	}
	n := int(rate * bn.c.StepFor.Seconds())
	lo := *next
	*next += n
	users := bn.c.Sessions
	st := Step{Kind: kind, Rate: rate, Seconds: bn.c.StepFor.Seconds(), Closes: map[string]int{}}
	// Build every delivery first: positions must be handed out in order.
	msgs := make([]*pubsub.Message, n)
	expect := make([]int, n) // expected frames per delivery
	rcpt := make([]int, n)   // one-to-one: the recipient
	open := make([]bool, users)
	for u := range users {
		open[u] = bn.cls[u] != nil && bn.cls[u].closed.Load() == 0
	}
	for i := range n {
		b := lo + i
		var to []int
		if kind == "group" {
			to = make([]int, users)
			for u := range to {
				to[u] = u
			}
		} else {
			to = []int{b % users}
			rcpt[i] = b % users
		}
		bn.omu.Lock()
		bn.rcpt[b] = -1
		if kind != "group" {
			bn.rcpt[b] = int32(to[0])
		}
		bn.omu.Unlock()
		m, err := bn.build(b, to)
		if err != nil {
			return st, err
		}
		msgs[i] = m
		for _, u := range to {
			if open[u] {
				expect[i]++
			}
		}
		st.Recipients = len(to)
	}
	bn.cmu.Lock()
	closes0 := map[string]int{}
	for k, v := range bn.closes {
		closes0[k] = v
	}
	bn.cmu.Unlock()
	cpu0, _ := procs.CPUSeconds(bn.edge.Pid())
	mark := bn.meter.Start()
	snap0, _ := bn.edge.Scrape(ctx)
	// Only published deliveries expect frames: a publish error or an
	// event the generator skipped expects none.
	ok := make([]atomic.Bool, n)
	start, skipped := openloop.Run(ctx, rate, n, bn.c.MaxInFlight, func(i int, due time.Time) {
		bn.due[lo+i].Store(due.UnixNano())
		if _, err := pub.Publish(ctx, msgs[i]).Get(ctx); err == nil {
			ok[i].Store(true)
		}
	})
	want := 0
	published := make([]bool, n)
	for i := range n {
		if ok[i].Load() {
			published[i] = true
			want += expect[i]
			st.Published++
		}
	}
	st.PublishErr = n - st.Published - skipped
	received := func() int {
		got := 0
		for i := range n {
			if published[i] {
				got += int(bn.firsts[lo+i].Load())
			}
		}
		return got
	}
	deadline := time.Now().Add(bn.c.Drain)
	for received() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu1, _ := procs.CPUSeconds(bn.edge.Pid())
	st.Usage = mark.Stop()
	if snap1, err := bn.edge.Scrape(ctx); err == nil && snap0.Sums != nil {
		st.Parts = latencyParts(snap0, snap1)
		st.CatchUps = promtext.Delta(snap0, snap1, "courier_ws_edge_catchups_total")
		st.QueueOverflows = promtext.Delta(snap0, snap1, "courier_ws_edge_queue_overflows_total")
		st.LostToWindow = int(promtext.Delta(snap0, snap1, "courier_ws_edge_gaps_filled_late_total"))
	}
	st.LossFails = bn.lossFails
	st.Expected = want
	lat, last := bn.tally(&st, lo, n, published, rcpt, open)
	st.LostToWindow = min(st.LostToWindow, st.Lost-st.LostClosed)
	st.Latency = stats.Summarize(lat)
	if last > 0 {
		st.FramesPerS = stats.Rate(st.Frames, time.Unix(0, last).Sub(start))
	}
	st.EdgeCores = stats.Ratio(cpu1-cpu0, elapsed.Seconds())
	st.FramesPerCoreSecond = stats.Ratio(float64(st.Frames), cpu1-cpu0)
	bn.cmu.Lock()
	for k, v := range bn.closes {
		if d := v - closes0[k]; d > 0 {
			st.Closes[k] = d
		}
	}
	bn.cmu.Unlock()
	closed := 0
	for _, v := range st.Closes {
		closed += v
	}
	switch {
	case st.Check() != nil:
		st.Broken = "accounting: " + st.Check().Error()
	case st.Lost > 0:
		st.Broken = fmt.Sprintf("lost %d", st.Lost)
	case closed > 0:
		st.Broken = fmt.Sprintf("%d sessions closed", closed)
	case st.CatchUps > 0:
		st.Broken = fmt.Sprintf("%.0f sessions caught up from the inbox", st.CatchUps)
	case st.PublishErr > 0 || skipped > 0:
		// Unpublished deliveries leave positions unused: later frames of
		// those users then wait on a gap the edge cannot fill.
		st.Broken = fmt.Sprintf("publisher fell behind (%d errors, %d skipped)", st.PublishErr, skipped)
	case st.Latency.P99 > float64(bn.c.P99Bound.Milliseconds()):
		st.Broken = fmt.Sprintf("p99 %.0f ms > %d ms", st.Latency.P99, bn.c.P99Bound.Milliseconds())
	}
	return st, nil
}

// tally counts step st's frames: deliveries [lo, lo+n) of which published
// ones expect a frame at every recipient (rcpt[i] for one-to-one, everyone
// for a group) whose session was open at the start. It takes (and resets)
// the sessions' error counters, and returns the first arrivals' latencies
// and the latest arrival (UnixNano).
func (bn *bench) tally(st *Step, lo, n int, published []bool, rcpt []int, open []bool) ([]time.Duration, int64) {
	kind := st.Kind
	users := len(open)
	// Frames: first arrivals at sessions open at the start, for published
	// deliveries; latencies of the same.
	var lat []time.Duration
	var last int64
	for u := range users {
		cl := bn.cls[u]
		if cl == nil || !open[u] {
			continue
		}
		closedNow := cl.closed.Load() > 0
		cl.mu.Lock()
		st.Unexpected += cl.unexpected
		st.BadCursor += cl.badCursor
		st.OutOfOrder += cl.outOfOrder
		cl.unexpected, cl.badCursor, cl.outOfOrder = 0, 0, 0
		for i := range n {
			if !published[i] || (kind != "group" && rcpt[i] != u) {
				continue
			}
			if cl.counts[lo+i] > 0 {
				st.Frames++
			} else {
				st.Lost++
				if closedNow {
					st.LostClosed++
				}
			}
		}
		for _, a := range cl.arr {
			i := int(a.b) - lo
			if i < 0 || i >= n || !published[i] {
				continue
			}
			lat = append(lat, time.Duration(a.us)*time.Microsecond)
			last = max(last, bn.due[a.b].Load()+int64(a.us)*1000)
		}
		for i := range n {
			if published[i] && cl.counts[lo+i] > 1 {
				st.Duplicates += int(cl.counts[lo+i]) - 1
			}
		}
		cl.mu.Unlock()
	}
	return lat, last
}

// delivery builds delivery b to users, as the worker does (wire.EncodeDelivery):
// each recipient's cursor is its next inbox position.
func (bn *bench) delivery(b int, users []int) (*pubsub.Message, error) {
	sender := "d" + strconv.Itoa(b%max(bn.c.DeliverySenders, 1))
	id := fmt.Sprintf("edge-%d-%d", time.Now().UnixNano(), b)
	now := timestamppb.New(time.Now().UTC())
	msg := &courierv1.Message{Id: id, From: sender, Payload: wsclient.Payload(int64(b), bn.c.PayloadSize),
		ContentType: "application/json", SentAt: now, StoredAt: now}
	d := &courierv1.Delivery{Message: msg}
	bn.omu.Lock()
	for _, u := range users {
		bn.at[u] = append(bn.at[u], int32(b))
	}
	bn.omu.Unlock()
	for _, u := range users {
		bn.pos[u]++
		msg.To = append(msg.To, bn.names[u])
		d.Recipients = append(d.Recipients, &courierv1.RecipientCursor{UserId: bn.names[u], Cursor: inbox.EncodeCursor(bn.pos[u])})
	}
	// What the worker publishes: the message as clients see it (the
	// recipient list rule) and every recipient's position.
	d.Message = inbox.Shown(msg)
	return wire.EncodeDelivery(d)
}

// latencyParts reads the edge's latency histograms over one step.
func latencyParts(before, after promtext.Snapshot) map[string]promtext.Dist {
	out := map[string]promtext.Dist{}
	for part, name := range map[string]string{
		"pubsub_hop":    "courier_ws_edge_pubsub_hop_seconds",
		"reorder_wait":  "courier_ws_edge_reorder_wait_seconds",
		"queue_wait":    "courier_ws_edge_queue_wait_seconds",
		"socket_write":  "courier_ws_edge_socket_write_seconds",
		"sent_to_write": "courier_ws_edge_delivery_latency_seconds",
	} {
		if d, ok := promtext.Between(before, after, name); ok {
			out[part] = d
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
