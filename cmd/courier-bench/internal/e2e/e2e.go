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
// duplicated.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/cmd/courier-bench/internal/openloop"
	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stats"
	"github.com/courierhq/courier/cmd/courier-bench/internal/wsclient"
	"github.com/courierhq/courier/pkg/auth"
)

// Target is the running system.
type Target struct {
	Gateway string   // host:port
	Edges   []string // host:port of each ws-edge
	Secret  string   // AUTH_HS256_SECRET
	// Pids of the services whose CPU is reported per step, by name.
	Pids map[string]int
}

// Config sizes the phase.
type Config struct {
	Senders     int
	Recipients  int // connected users; each message goes to 2 of them
	PayloadSize int
	Warmup      Step
	Ladder      []float64 // offered msg/s
	StepFor     time.Duration
	Drain       time.Duration // after the last POST, how long a frame may take before it counts as lost
	BurstDrain  time.Duration // the same for the burst, whose backlog takes longer to clear
	P99Bound    time.Duration
	Steady      float64 // the rate whose p99 forms the latency ratio (200)
	Burst       int     // burst scenario: messages
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
	Warmup  bool    `json:"warmup,omitempty"`
	Rate    float64 `json:"offered_msg_s"`
	Seconds float64 `json:"seconds"`
	Counts
	Latency  stats.Percentiles `json:"latency"`        // due → frame, per recipient frame
	Accept   stats.Percentiles `json:"accept_latency"` // due → 202
	Achieved float64           `json:"delivered_msg_s"`
	// CPU is each service's CPU in cores over the step (sending to drained).
	CPU    map[string]float64 `json:"cpu_cores,omitempty"`
	Broken string             `json:"broken,omitempty"` // why this rate is not sustained
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

// Check reports an accounting hole: a message neither skipped, accepted nor
// refused, or accepted and neither delivered nor lost.
func (c Counts) Check() error {
	if c.Scheduled != c.Skipped+c.Accepted+c.RefusedTotal() {
		return fmt.Errorf("scheduled %d != skipped %d + accepted %d + refused %d", c.Scheduled, c.Skipped, c.Accepted, c.RefusedTotal())
	}
	if c.Accepted != c.Delivered+c.Lost {
		return fmt.Errorf("accepted %d != delivered %d + lost %d", c.Accepted, c.Delivered, c.Lost)
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
	// Sustained is the highest rung with p99 under the bound and nothing
	// lost or refused (the ladder ends after two broken rungs in a row).
	Sustained  float64 `json:"sustained_msg_s"`
	Drain      float64 `json:"drain_s"`
	BurstDrain float64 `json:"burst_drain_s"`
	P99Bound   float64 `json:"p99_bound_ms"`
	// SteadyP99 is the p99 at Config.Steady (0 when that rung did not run).
	SteadyRate float64            `json:"steady_rate_msg_s"`
	SteadyP99  float64            `json:"steady_p99_ms"`
	Burst      BurstResult        `json:"burst"`
	Closes     map[string]int     `json:"closes_by_code,omitempty"`
	Sessions   int                `json:"sessions"`
	Metrics    map[string]float64 `json:"worker_metrics,omitempty"`
}

// tracker is the state the senders and the sessions share. Recipients are
// drawn for every message before any session starts; the rest is atomic.
type tracker struct {
	max   int
	to    [][2]int       // recipient indexes of seq (read-only once sessions run)
	due   []atomic.Int64 // UnixNano when seq's POST was due
	state []atomic.Int32
	got   []atomic.Int32 // 2 per seq: frames per recipient slot
	at    []atomic.Int64 // 2 per seq: UnixNano of the first frame
}

const (
	pending int32 = iota
	accepted
	refused
)

func newTracker(n, recipients int) *tracker {
	t := &tracker{max: n, to: make([][2]int, n), due: make([]atomic.Int64, n), state: make([]atomic.Int32, n),
		got: make([]atomic.Int32, 2*n), at: make([]atomic.Int64, 2*n)}
	for i := range t.to {
		t.to[i] = pickTwo(recipients)
	}
	return t
}

// frame records a message frame for recipient r.
func (t *tracker) frame(now time.Time, r int, seq int64) {
	if seq < 0 || seq >= int64(t.max) {
		return
	}
	s := int(seq)
	slot := 0
	if t.to[s][1] == r {
		slot = 1
	} else if t.to[s][0] != r {
		return
	}
	if t.got[2*s+slot].Add(1) == 1 {
		t.at[2*s+slot].Store(now.UnixNano())
	}
}

// count accounts for messages [lo, hi), with their latencies (due → first
// frame, per recipient) and the latest first arrival.
func (t *tracker) count(lo, hi int, skipped int, refusedBy map[string]int) (Counts, []time.Duration, time.Time) {
	c := Counts{Scheduled: hi - lo, Skipped: skipped, Refused: refusedBy}
	var lat []time.Duration
	var last int64
	for s := lo; s < hi; s++ {
		g0, g1 := t.got[2*s].Load(), t.got[2*s+1].Load()
		switch t.state[s].Load() {
		case accepted:
			c.Accepted++
			if g0 > 0 && g1 > 0 {
				c.Delivered++
			} else {
				c.Lost++
			}
			if g0 > 1 || g1 > 1 {
				c.Duplicated++
			}
			due := t.due[s].Load()
			for k := range 2 {
				if a := t.at[2*s+k].Load(); a != 0 {
					lat = append(lat, time.Duration(a-due))
					last = max(last, a)
				}
			}
		case refused:
			if g0 > 0 || g1 > 0 {
				c.Unconfirmed++
			}
		}
	}
	return c, lat, time.Unix(0, last)
}

func (t *tracker) undelivered(lo, hi int) int {
	n := 0
	for s := lo; s < hi; s++ {
		if t.state[s].Load() == accepted && (t.got[2*s].Load() == 0 || t.got[2*s+1].Load() == 0) {
			n++
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
			code := wsclient.Read(sctx, conn, func(now time.Time, f wsclient.Frame) {
				switch f.Kind {
				case wsclient.Message:
					tr.frame(now, r, f.Seq)
				case wsclient.Synced:
					if !synced {
						synced = true
						ready <- struct{}{}
					}
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
func (s *sender) post(ctx context.Context, from int, seq int64, to [2]int) string {
	body, _ := json.Marshal(struct {
		To      []string        `json:"to"`
		Payload json.RawMessage `json:"payload"`
	}{To: []string{s.names[to[0]], s.names[to[1]]}, Payload: wsclient.Payload(seq, s.size)})
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
	steps := append([]Step{c.Warmup}, make([]Step, 0, len(c.Ladder))...)
	for _, r := range c.Ladder {
		steps = append(steps, Step{Rate: r, For: c.StepFor})
	}
	total := c.Burst
	for _, st := range steps {
		total += int(st.Rate * st.For.Seconds())
	}
	tr := newTracker(total, c.Recipients)
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
	seq, brokenRun := 0, 0
	for i, st := range steps {
		n := int(st.Rate * st.For.Seconds())
		lo, hi := seq, seq+n
		seq = hi
		rf := &refusals{by: map[string]int{}}
		cpu0 := cpuNow(tg.Pids)
		start, skipped := openloop.Run(ctx, st.Rate, n, c.MaxInFlight, func(i int, due time.Time) {
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
		sr := StepResult{Warmup: i == 0, Rate: st.Rate, Seconds: st.For.Seconds(), Counts: counts,
			Latency: stats.Summarize(lat), CPU: cores(cpu0, cpuNow(tg.Pids), elapsed)}
		if counts.Delivered > 0 {
			sr.Achieved = stats.Rate(counts.Delivered, last.Sub(start))
		}
		sr.Broken = broken(sr, c.P99Bound)
		res.Steps = append(res.Steps, sr)
		if err := counts.Check(); err != nil {
			return res, fmt.Errorf("accounting at %.0f msg/s: %w", st.Rate, err)
		}
		label := fmt.Sprintf("%.0f msg/s", st.Rate)
		if sr.Warmup {
			label = "warm-up " + label
		}
		progress(fmt.Sprintf("%s: accepted %d/%d, delivered %d, lost %d, p50 %.0f ms, p99 %.0f ms %s",
			label, counts.Accepted, counts.Scheduled, counts.Delivered, counts.Lost, sr.Latency.P50, sr.Latency.P99, sr.Broken))
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if sr.Warmup {
			continue
		}
		if st.Rate == c.Steady {
			res.SteadyP99 = sr.Latency.P99
		}
		// One rung can break on a passing stall of the shared machine;
		// two in a row end the ladder, once the steady rate (the latency
		// ratio's) has run. Sustained is the highest rung that held.
		if sr.Broken != "" {
			brokenRun++
			if brokenRun >= 2 && st.Rate >= c.Steady {
				break
			}
			continue
		}
		brokenRun = 0
		res.Sustained = st.Rate
	}

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
		return res, fmt.Errorf("accounting of the burst: %w", err)
	}
	return res, ctx.Err()
}

// broken says why a rung does not count as sustained ("" when it does).
func broken(s StepResult, bound time.Duration) string {
	switch {
	case s.Lost > 0:
		return fmt.Sprintf("lost %d", s.Lost)
	case s.RefusedTotal() > 0:
		return fmt.Sprintf("refused %d", s.RefusedTotal())
	case s.Skipped > 0:
		return fmt.Sprintf("generator skipped %d", s.Skipped)
	case s.Latency.P99 > float64(bound.Milliseconds()):
		return fmt.Sprintf("p99 %.0f ms > %d ms", s.Latency.P99, bound.Milliseconds())
	}
	return ""
}
