// Package e2e drives the whole system the way its clients do: recipients
// hold WebSocket sessions on the edges, senders POST to the gateway on an
// open-loop schedule, and each frame's latency is measured from the time
// its POST was due (so queueing anywhere shows). A ladder of offered rates
// finds the highest rate sustained with p99 under a bound and nothing lost;
// a burst scenario (the one the batched worker is judged on) measures
// end-to-end msg/s from the first POST to the last frame.
//
// Accounting: every scheduled message is sent or skipped by the generator;
// every sent one is accepted (202) or refused (by status or error); every
// accepted one is delivered to each recipient, or lost (not received within
// the drain time); a recipient that gets it more than once marks it
// duplicated. A frame for a user the message was not addressed to is
// unexpected; a session's frames must come at strictly rising cursors
// (inbox positions), else they are out of order. Any of these, and any
// lost message, fails the run.
//
// Every rung runs twice, with the clients acking every message (what the
// JavaScript client does by default) and without, in alternating order;
// the pairs ladder sends each message to 2 users, the group ladder to
// every connected user.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/openloop"
	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/cmd/courier-bench/internal/promtext"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stats"
	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/harness/wsclient"
)

// Target is the running system.
type Target struct {
	Gateway string   // host:port
	Edges   []string // host:port of each ws-edge
	Secret  string   // AUTH_HS256_SECRET
	// Pids of the services whose CPU is reported per step, by name.
	Pids map[string]int
	// Meter reads the load client's, the emulators' and the machine's CPU.
	Meter procs.Meter
	// Scrape reads each edge's metrics (catch-ups per step); ScrapeWorker
	// the worker's (its lag: message age when processing starts).
	Scrape       []func(context.Context) (promtext.Snapshot, error)
	ScrapeWorker func(context.Context) (promtext.Snapshot, error)
}

// Config sizes the phase.
type Config struct {
	Senders     int
	Recipients  int // connected users; each message goes to 2 of them
	PayloadSize int
	Warmup      Step
	Ladder      []float64 // offered msg/s
	// GroupLadder is offered msg/s of messages to every recipient.
	GroupLadder []float64
	// Extend adds up to this many rungs past the ladder's last (1.5× each)
	// while the previous one held.
	Extend     int
	StepFor    time.Duration
	Drain      time.Duration // after the last POST, how long a frame may take before it counts as lost
	BurstDrain time.Duration // the same for the burst, whose backlog takes longer to clear
	P99Bound   time.Duration
	Steady     float64 // the rate whose p99 forms the latency ratio (200)
	Burst      int     // burst scenario: messages
	BurstSenders,
	BurstClients int
	MaxInFlight int // generator's cap on POSTs in flight
}

// Step is one offered rate.
type Step struct {
	Rate float64
	For  time.Duration
}

// StepResult is one rung of the ladder (or the warm-up).
type StepResult struct {
	Warmup bool `json:"warmup,omitempty"`
	// Mode is "pairs" (each message to 2 users) or "group" (to every
	// connected user); Acks says whether the clients acked every message.
	Mode       string  `json:"mode"`
	Acks       bool    `json:"acks"`
	Recipients int     `json:"recipients_per_message"`
	Rate       float64 `json:"offered_msg_s"`
	Seconds    float64 `json:"seconds"`
	Counts
	Latency  stats.Percentiles `json:"latency"`        // due → frame, per recipient frame
	Accept   stats.Percentiles `json:"accept_latency"` // due → 202
	Achieved float64           `json:"delivered_msg_s"`
	// CPU is each service's CPU in cores over the step (sending to drained).
	CPU map[string]float64 `json:"cpu_cores,omitempty"`
	// Usage is the load client's, the emulators' and the machine's CPU.
	Usage procs.Usage `json:"usage"`
	// AckErrors are error frames the sessions received (an ack the edge
	// could not record, or found no message for).
	AckErrors int `json:"ack_error_frames,omitempty"`
	// CatchUps is the edges' sessions that switched to catching up from
	// the inbox during the step.
	CatchUps float64 `json:"edge_catch_ups,omitempty"`
	// WorkerLagP99 is the p99 of the worker's message age when it starts
	// processing (its courier_pipeline_worker_message_age_seconds), ms.
	WorkerLagP99 float64 `json:"worker_lag_p99_ms,omitempty"`
	Broken       string  `json:"broken,omitempty"` // why this rate is not sustained
}

// Counts account for every message of a step.
type Counts struct {
	Scheduled  int            `json:"scheduled"`
	Skipped    int            `json:"skipped"` // the generator's in-flight cap
	Accepted   int            `json:"accepted"`
	Refused    map[string]int `json:"refused,omitempty"`
	Delivered  int            `json:"delivered"` // every recipient got it
	Lost       int            `json:"lost"`      // some recipient did not, within the drain time
	Duplicated int            `json:"duplicated"`
	// Unexpected frames: for a user the message was not addressed to, or
	// for no message of this run. OutOfOrder: a message's first frame at a
	// session at a cursor not above every cursor that session saw before.
	Unexpected int `json:"unexpected_frames"`
	OutOfOrder int `json:"out_of_order_frames"`
	// Unconfirmed were refused (e.g. a timeout) yet delivered: Pub/Sub had
	// taken them.
	Unconfirmed int `json:"delivered_unconfirmed"`
}

// RefusedTotal sums Refused.
func (c Counts) RefusedTotal() int {
	n := 0
	for _, v := range c.Refused {
		n += v
	}
	return n
}

// Check reports an accounting hole (a message neither skipped, accepted
// nor refused, or accepted and neither delivered nor lost) and fails on
// any lost, duplicated, mis-delivered or reordered message.
func (c Counts) Check() error {
	if c.Scheduled != c.Skipped+c.Accepted+c.RefusedTotal() {
		return fmt.Errorf("scheduled %d != skipped %d + accepted %d + refused %d", c.Scheduled, c.Skipped, c.Accepted, c.RefusedTotal())
	}
	if c.Accepted != c.Delivered+c.Lost {
		return fmt.Errorf("accepted %d != delivered %d + lost %d", c.Accepted, c.Delivered, c.Lost)
	}
	var bad []string
	if c.Lost > 0 {
		bad = append(bad, fmt.Sprintf("%d accepted messages lost", c.Lost))
	}
	if c.Duplicated > 0 {
		bad = append(bad, fmt.Sprintf("%d messages duplicated", c.Duplicated))
	}
	if c.Unexpected > 0 {
		bad = append(bad, fmt.Sprintf("%d frames for a user the message was not addressed to", c.Unexpected))
	}
	if c.OutOfOrder > 0 {
		bad = append(bad, fmt.Sprintf("%d frames out of order", c.OutOfOrder))
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// BurstResult is the burst scenario.
type BurstResult struct {
	Messages   int `json:"messages"`
	Senders    int `json:"senders"`
	Recipients int `json:"recipients"`
	Clients    int `json:"clients"`
	Counts
	Throughput float64           `json:"end_to_end_msg_s"` // first POST → last frame
	Latency    stats.Percentiles `json:"latency"`          // POST start → frame
	Seconds    float64           `json:"seconds"`
}

// Result is the phase.
type Result struct {
	Steps []StepResult `json:"steps"`
	// Sustained is the highest pairs rung without acks with p99 under the
	// bound and nothing lost or refused (the ladder ends after two broken
	// rungs in a row); SustainedAcks the same with acks.
	Sustained     float64 `json:"sustained_msg_s"`
	SustainedAcks float64 `json:"sustained_acks_msg_s"`
	Drain         float64 `json:"drain_s"`
	BurstDrain    float64 `json:"burst_drain_s"`
	P99Bound      float64 `json:"p99_bound_ms"`
	// SteadyP99 is the p99 at Config.Steady (0 when that rung did not run).
	// GroupSustained(Acks) are the same for the group ladder.
	GroupSustained     float64            `json:"group_sustained_msg_s"`
	GroupSustainedAcks float64            `json:"group_sustained_acks_msg_s"`
	SteadyRate         float64            `json:"steady_rate_msg_s"`
	SteadyP99          float64            `json:"steady_p99_ms"`
	Burst              BurstResult        `json:"burst"`
	Closes             map[string]int     `json:"closes_by_code,omitempty"`
	Sessions           int                `json:"sessions"`
	Metrics            map[string]float64 `json:"worker_metrics,omitempty"`
}

// tracker is the state the senders and the sessions share. Recipients are
// drawn for every message before any session starts; the rest is atomic.
type tracker struct {
	max   int
	to    [][]int        // recipient indexes of seq (read-only once sessions run)
	off   []int          // seq's first slot in got and at
	due   []atomic.Int64 // UnixNano when seq's POST was due
	state []atomic.Int32
	got   []atomic.Int32 // one per (seq, recipient): frames
	at    []atomic.Int64 // one per (seq, recipient): UnixNano of the first frame
	// Across sessions, since the last take: frames for a user a message
	// was not addressed to, first frames out of order, error frames.
	unexpected, outOfOrder, errFrames atomic.Int64
	// acks makes the sessions ack every message.
	acks atomic.Bool
}

const (
	pending int32 = iota
	accepted
	refused
)

// newTracker draws recipients for messages: each spec is a count of
// messages and how many recipients each has (2 picks two at random; n the
// recipient count means all of them).
func newTracker(recipients int, specs ...[2]int) *tracker {
	t := &tracker{}
	for _, sp := range specs {
		for range sp[0] {
			var to []int
			if sp[1] >= recipients {
				to = make([]int, recipients)
				for i := range to {
					to[i] = i
				}
			} else {
				two := pickTwo(recipients)
				to = two[:]
			}
			t.off = append(t.off, len(t.to)+0)
			t.to = append(t.to, to)
		}
	}
	slots := 0
	for i, to := range t.to {
		t.off[i] = slots
		slots += len(to)
	}
	t.max = len(t.to)
	t.due, t.state = make([]atomic.Int64, t.max), make([]atomic.Int32, t.max)
	t.got, t.at = make([]atomic.Int32, slots), make([]atomic.Int64, slots)
	return t
}

// session is one recipient session's view: its highest cursor so far.
type session struct {
	r    int
	last int64
}

// frame records a message frame for session ss (recipient ss.r) at
// cursor; it reports whether it was the message's first frame there.
func (t *tracker) frame(now time.Time, ss *session, seq, cursor int64) bool {
	if seq < 0 || seq >= int64(t.max) {
		t.unexpected.Add(1)
		return false
	}
	s := int(seq)
	slot := slices.Index(t.to[s], ss.r)
	if slot < 0 {
		t.unexpected.Add(1)
		return false
	}
	k := t.off[s] + slot
	if t.got[k].Add(1) != 1 {
		return false // a duplicate
	}
	t.at[k].Store(now.UnixNano())
	if cursor >= 0 {
		if cursor <= ss.last {
			t.outOfOrder.Add(1)
		}
		ss.last = max(ss.last, cursor)
	}
	return true
}

// count accounts for messages [lo, hi), with their latencies (due → first
// frame, per recipient) and the latest first arrival; it takes the
// session-level counters.
func (t *tracker) count(lo, hi int, skipped int, refusedBy map[string]int) (Counts, []time.Duration, time.Time) {
	c := Counts{Scheduled: hi - lo, Skipped: skipped, Refused: refusedBy,
		Unexpected: int(t.unexpected.Swap(0)), OutOfOrder: int(t.outOfOrder.Swap(0))}
	var lat []time.Duration
	var last int64
	for s := lo; s < hi; s++ {
		all, any, dup := true, false, false
		for k := t.off[s]; k < t.off[s]+len(t.to[s]); k++ {
			g := t.got[k].Load()
			all, any, dup = all && g > 0, any || g > 0, dup || g > 1
		}
		switch t.state[s].Load() {
		case accepted:
			c.Accepted++
			if all {
				c.Delivered++
			} else {
				c.Lost++
			}
			if dup {
				c.Duplicated++
			}
			due := t.due[s].Load()
			for k := t.off[s]; k < t.off[s]+len(t.to[s]); k++ {
				if a := t.at[k].Load(); a != 0 {
					lat = append(lat, time.Duration(a-due))
					last = max(last, a)
				}
			}
		case refused:
			if any {
				c.Unconfirmed++
			}
		}
	}
	return c, lat, time.Unix(0, last)
}

func (t *tracker) undelivered(lo, hi int) int {
	n := 0
	for s := lo; s < hi; s++ {
		if t.state[s].Load() != accepted {
			continue
		}
		for k := t.off[s]; k < t.off[s]+len(t.to[s]); k++ {
			if t.got[k].Load() == 0 {
				n++
				break
			}
		}
	}
	return n
}

type sessions struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closes map[string]int
}

// connect opens one session per recipient, round-robin over the edges, and
// waits until each has its starting position (the synced frame).
func connect(ctx context.Context, tg Target, tokens []string, tr *tracker) (*sessions, error) {
	sctx, cancel := context.WithCancel(context.Background())
	ss := &sessions{cancel: cancel, closes: map[string]int{}}
	ready := make(chan struct{}, len(tokens))
	for r, tok := range tokens {
		edge := tg.Edges[r%len(tg.Edges)]
		conn, err := wsclient.Dial(ctx, edge, tok, "")
		if err != nil {
			ss.stop()
			return nil, fmt.Errorf("session of recipient %d: %w", r, err)
		}
		ss.wg.Go(func() {
			synced := false
			me := &session{r: r}
			code := wsclient.Read(sctx, conn, func(now time.Time, f wsclient.Frame) {
				switch f.Kind {
				case wsclient.Message:
					tr.frame(now, me, f.Seq, f.Cursor)
					// As the JavaScript client does by default: every
					// message frame, first or not, is acked.
					if tr.acks.Load() && f.ID != "" {
						_ = wsclient.Ack(sctx, conn, f.ID)
					}
				case wsclient.Synced:
					if !synced {
						synced = true
						me.last = max(f.Cursor, 0)
						ready <- struct{}{}
					}
				case wsclient.Error:
					tr.errFrames.Add(1)
				}
			})
			conn.CloseNow()
			if code != 0 {
				ss.mu.Lock()
				ss.closes[strconv.Itoa(code)]++
				ss.mu.Unlock()
			}
		})
	}
	timeout := time.After(30 * time.Second)
	for range tokens {
		select {
		case <-ready:
		case <-timeout:
			ss.stop()
			return nil, fmt.Errorf("sessions did not all get their synced frame within 30s")
		}
	}
	return ss, nil
}

func (ss *sessions) stop() {
	ss.cancel()
	ss.wg.Wait()
}

type sender struct {
	client  *http.Client
	gateway string
	tokens  []string // senders'
	names   []string // recipients' user ids
	size    int
}

// post sends message seq; it returns "" when accepted, else why not.
func (s *sender) post(ctx context.Context, from int, seq int64, to []int) string {
	names := make([]string, len(to))
	for i, r := range to {
		names[i] = s.names[r]
	}
	body, _ := json.Marshal(struct {
		To      []string        `json:"to"`
		Payload json.RawMessage `json:"payload"`
	}{To: names, Payload: wsclient.Payload(seq, s.size)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.gateway+"/v1/messages", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.tokens[from])
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "cancelled"
		}
		return "transport_error"
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return strconv.Itoa(resp.StatusCode)
	}
	return ""
}

func pickTwo(n int) [2]int {
	a := rand.IntN(n)
	b := (a + 1 + rand.IntN(n-1)) % n
	return [2]int{a, b}
}

// waitFor polls cond every 50 ms until it holds or within has passed.
func waitFor(ctx context.Context, cond func() bool, within time.Duration) {
	deadline := time.Now().Add(within)
	for !cond() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
}

type refusals struct {
	mu sync.Mutex
	by map[string]int
}

func (r *refusals) add(why string) {
	r.mu.Lock()
	r.by[why]++
	r.mu.Unlock()
}

func cpuNow(pids map[string]int) map[string]float64 {
	out := map[string]float64{}
	for name, pid := range pids {
		if s, err := procs.CPUSeconds(pid); err == nil {
			out[name] = s
		}
	}
	return out
}

func cores(before, after map[string]float64, d time.Duration) map[string]float64 {
	out := map[string]float64{}
	for k, b := range before {
		if a, ok := after[k]; ok && d > 0 {
			out[k] = (a - b) / d.Seconds()
		}
	}
	return out
}

// Run runs the warm-up, the ladder and the burst on tg.
func Run(ctx context.Context, tg Target, c Config, progress func(string)) (Result, error) {
	secret := []byte(tg.Secret)
	mint := func(prefix string, n int) ([]string, []string, error) {
		names, toks := make([]string, n), make([]string, n)
		for i := range n {
			names[i] = fmt.Sprintf("%s%03d", prefix, i)
			t, err := auth.Mint(secret, names[i], 4*time.Hour)
			if err != nil {
				return nil, nil, fmt.Errorf("mint token: %w", err)
			}
			toks[i] = t
		}
		return names, toks, nil
	}
	rNames, rTokens, err := mint("r", c.Recipients)
	if err != nil {
		return Result{}, err
	}
	_, sTokens, err := mint("s", max(c.Senders, c.BurstSenders))
	if err != nil {
		return Result{}, err
	}
	// Every rung's messages are drawn up front (the tracker is read-only
	// once sessions run): the warm-up, each ladder's rungs (configured and
	// extension ones) twice, acks off and on, then the burst.
	type rung struct {
		mode    string
		acks    bool
		rate    float64
		dur     time.Duration
		recips  int
		lo, hi  int
		extra   bool // an extension rung
		warmup  bool
		pairIdx int // rungs of the same rate share it
	}
	var plan []rung
	var specs [][2]int
	seq := 0
	add := func(r rung) {
		n := int(r.rate * r.dur.Seconds())
		r.lo, r.hi = seq, seq+n
		seq += n
		plan = append(plan, r)
		specs = append(specs, [2]int{n, r.recips})
	}
	add(rung{mode: "pairs", rate: c.Warmup.Rate, dur: c.Warmup.For, recips: 2, warmup: true})
	idx := 0
	for _, lad := range []struct {
		mode   string
		rates  []float64
		recips int
	}{{"pairs", c.Ladder, 2}, {"group", c.GroupLadder, c.Recipients}} {
		rates := slices.Clone(lad.rates)
		for k := 0; k < c.Extend && len(rates) > 0; k++ {
			rates = append(rates, math.Round(rates[len(rates)-1]*1.5))
		}
		for k, rate := range rates {
			idx++
			// Alternate which variant runs first, so neither always gets
			// the stack the other just warmed (or backed up).
			first := k%2 == 1
			for _, acks := range []bool{first, !first} {
				add(rung{mode: lad.mode, acks: acks, rate: rate, dur: c.StepFor, recips: lad.recips,
					extra: k >= len(lad.rates), pairIdx: idx})
			}
		}
	}
	burstLo := seq
	specs = append(specs, [2]int{c.Burst, 2})
	tr := newTracker(c.Recipients, specs...)
	ss, err := connect(ctx, tg, rTokens, tr)
	if err != nil {
		return Result{}, err
	}
	defer ss.stop()
	snd := &sender{
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}},
		gateway: tg.Gateway, tokens: sTokens, names: rNames, size: c.PayloadSize,
	}
	res := Result{P99Bound: float64(c.P99Bound.Milliseconds()), SteadyRate: c.Steady, Sessions: len(rTokens),
		Drain: c.Drain.Seconds(), BurstDrain: c.BurstDrain.Seconds()}
	// Per mode: rates in a row where a variant broke; whether the last
	// rate held in both; whether the ladder has ended.
	brokenRun, held, ended := map[string]int{}, map[string]bool{}, map[string]bool{}
	var failed error
	for i, st := range plan {
		if ended[st.mode] || (st.extra && !held[st.mode] && (i == 0 || plan[i-1].pairIdx != st.pairIdx)) {
			ended[st.mode] = ended[st.mode] || st.extra
			continue
		}
		if i > 0 && plan[i-1].pairIdx != st.pairIdx && !st.warmup {
			held[st.mode] = true // reset at the first variant of a rate
		}
		tr.acks.Store(st.acks)
		lo, hi := st.lo, st.hi
		rf := &refusals{by: map[string]int{}}
		cpu0 := cpuNow(tg.Pids)
		mark := tg.Meter.Start()
		edges0 := scrapeAll(ctx, tg.Scrape)
		worker0 := scrapeAll(ctx, workerScraper(tg))
		errs0 := tr.errFrames.Load()
		start, skipped := openloop.Run(ctx, st.rate, hi-lo, c.MaxInFlight, func(i int, due time.Time) {
			s := lo + i
			tr.due[s].Store(due.UnixNano())
			if why := snd.post(ctx, s%c.Senders, int64(s), tr.to[s]); why != "" {
				tr.state[s].Store(refused)
				rf.add(why)
				return
			}
			tr.state[s].Store(accepted)
		})
		waitFor(ctx, func() bool { return tr.undelivered(lo, hi) == 0 }, c.Drain)
		elapsed := time.Since(start)
		counts, lat, last := tr.count(lo, hi, skipped, rf.by)
		sr := StepResult{Warmup: st.warmup, Mode: st.mode, Acks: st.acks, Recipients: st.recips, Rate: st.rate,
			Seconds: st.dur.Seconds(), Counts: counts,
			Latency: stats.Summarize(lat), CPU: cores(cpu0, cpuNow(tg.Pids), elapsed), Usage: mark.Stop(),
			AckErrors: int(tr.errFrames.Load() - errs0)}
		edges1 := scrapeAll(ctx, tg.Scrape)
		if w1 := scrapeAll(ctx, workerScraper(tg)); len(w1) == 1 && w1[0].Sums != nil && worker0[0].Sums != nil {
			if d, ok := promtext.Between(worker0[0], w1[0], "courier_pipeline_worker_message_age_seconds"); ok && d.Count > 0 {
				sr.WorkerLagP99 = d.P99
			}
		}
		for k := range edges0 {
			if k < len(edges1) && edges0[k].Sums != nil && edges1[k].Sums != nil {
				sr.CatchUps += promtext.Delta(edges0[k], edges1[k], "courier_ws_edge_catchups_total")
			}
		}
		if counts.Delivered > 0 {
			sr.Achieved = stats.Rate(counts.Delivered, last.Sub(start))
		}
		sr.Broken = broken(sr, c.P99Bound)
		res.Steps = append(res.Steps, sr)
		label := fmt.Sprintf("%s %.0f msg/s (%d recipients, acks %s)", st.mode, st.rate, st.recips, onOff(st.acks))
		if sr.Warmup {
			label = "warm-up " + label
		}
		progress(fmt.Sprintf("%s: accepted %d/%d, delivered %d, lost %d, p50 %.0f ms, p99 %.0f ms, load client %.2f cores, machine %.0f%% busy %s",
			label, counts.Accepted, counts.Scheduled, counts.Delivered, counts.Lost, sr.Latency.P50, sr.Latency.P99,
			sr.Usage.LoadClient, 100*sr.Usage.BusyFraction, sr.Broken))
		if err := counts.Check(); err != nil && failed == nil {
			// Recorded, and the run goes on: the rest of the ladder still
			// says where it breaks.
			failed = fmt.Errorf("accounting at %s: %w", label, err)
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if sr.Warmup {
			continue
		}
		if st.mode == "pairs" && st.rate == c.Steady && !st.acks {
			res.SteadyP99 = sr.Latency.P99
		}
		if sr.Broken != "" {
			held[st.mode] = false
		} else if st.mode == "pairs" {
			if st.acks {
				res.SustainedAcks = max(res.SustainedAcks, st.rate)
			} else {
				res.Sustained = max(res.Sustained, st.rate)
			}
		} else if st.acks {
			res.GroupSustainedAcks = max(res.GroupSustainedAcks, st.rate)
		} else {
			res.GroupSustained = max(res.GroupSustained, st.rate)
		}
		// At the second variant of a rate: one broken rate can be a
		// passing stall of the shared machine; two in a row end the
		// ladder, once the steady rate (the latency ratio's) has run.
		if i+1 < len(plan) && plan[i+1].pairIdx == st.pairIdx {
			continue
		}
		if !held[st.mode] {
			brokenRun[st.mode]++
			if brokenRun[st.mode] >= 2 && (st.mode != "pairs" || st.rate >= c.Steady) {
				ended[st.mode] = true
			}
		} else {
			brokenRun[st.mode] = 0
		}
	}
	tr.acks.Store(false)
	seq = burstLo

	// Burst: c.Burst messages from BurstSenders, BurstClients posting at once.
	lo, hi := seq, seq+c.Burst
	rf := &refusals{by: map[string]int{}}
	var next atomic.Int64
	next.Store(int64(lo))
	start := time.Now()
	var wg sync.WaitGroup
	for range c.BurstClients {
		wg.Go(func() {
			for {
				s := int(next.Add(1) - 1)
				if s >= hi || ctx.Err() != nil {
					return
				}
				tr.due[s].Store(time.Now().UnixNano())
				if why := snd.post(ctx, s%c.BurstSenders, int64(s), tr.to[s]); why != "" {
					tr.state[s].Store(refused)
					rf.add(why)
					continue
				}
				tr.state[s].Store(accepted)
			}
		})
	}
	wg.Wait()
	waitFor(ctx, func() bool { return tr.undelivered(lo, hi) == 0 }, c.BurstDrain)
	counts, lat, last := tr.count(lo, hi, 0, rf.by)
	res.Burst = BurstResult{Messages: c.Burst, Senders: c.BurstSenders, Recipients: c.Recipients, Clients: c.BurstClients,
		Counts: counts, Latency: stats.Summarize(lat)}
	if counts.Delivered > 0 {
		res.Burst.Seconds = last.Sub(start).Seconds()
		res.Burst.Throughput = stats.Rate(counts.Delivered, last.Sub(start))
	}
	progress(fmt.Sprintf("burst: %d messages, delivered %d, lost %d, %.0f msg/s end to end", c.Burst, counts.Delivered, counts.Lost, res.Burst.Throughput))
	ss.stop()
	res.Closes = ss.closes
	if err := counts.Check(); err != nil {
		failed = errors.Join(failed, fmt.Errorf("accounting of the burst: %w", err))
	}
	if failed != nil {
		return res, failed
	}
	return res, ctx.Err()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// scrapeAll reads every edge's metrics (an entry stays empty when its
// scrape fails).
func scrapeAll(ctx context.Context, scrapers []func(context.Context) (promtext.Snapshot, error)) []promtext.Snapshot {
	out := make([]promtext.Snapshot, len(scrapers))
	for i, f := range scrapers {
		out[i], _ = f(ctx)
	}
	return out
}

// broken says why a rung does not count as sustained ("" when it does):
// every reason that applies, the gateway's refusals by status, and the
// edges' catch-ups when there were any.
func broken(s StepResult, bound time.Duration) string {
	var why []string
	if err := s.Check(); err != nil && s.Lost == 0 {
		why = append(why, "accounting: "+err.Error())
	}
	if s.Lost > 0 {
		why = append(why, fmt.Sprintf("lost %d", s.Lost))
	}
	if n := s.RefusedTotal(); n > 0 {
		by := make([]string, 0, len(s.Refused))
		for k, v := range s.Refused {
			by = append(by, fmt.Sprintf("%d× %s", v, k))
		}
		slices.Sort(by)
		why = append(why, fmt.Sprintf("gateway refused %d (%s)", n, strings.Join(by, ", ")))
	}
	if s.Skipped > 0 {
		why = append(why, fmt.Sprintf("generator skipped %d", s.Skipped))
	}
	if s.Latency.P99 > float64(bound.Milliseconds()) {
		why = append(why, fmt.Sprintf("p99 %.0f ms > %d ms", s.Latency.P99, bound.Milliseconds()))
	}
	if len(why) > 0 && s.WorkerLagP99 > 0 {
		why = append(why, fmt.Sprintf("worker lag p99 %.0f ms", s.WorkerLagP99))
	}
	if len(why) > 0 && s.CatchUps > 0 {
		why = append(why, fmt.Sprintf("%.0f edge catch-ups", s.CatchUps))
	}
	return strings.Join(why, "; ")
}

func workerScraper(tg Target) []func(context.Context) (promtext.Snapshot, error) {
	if tg.ScrapeWorker == nil {
		return nil
	}
	return []func(context.Context) (promtext.Snapshot, error){tg.ScrapeWorker}
}
