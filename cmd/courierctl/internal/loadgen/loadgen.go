// Package loadgen drives a running Courier system the way its clients do:
// one WebSocket session per user spread over the edges, and messages posted
// to the gateway at a fixed rate. It measures the gateway's answer time
// (POST → 202) and the end-to-end time (POST → frame on the recipient's
// socket), and counts what never arrived.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/courierhq/courier/pkg/harness/wsclient"
)

// Config of one run.
type Config struct {
	GatewayURL string
	Edges      []string // host:port of each ws-edge
	Users      int
	Rate       float64 // messages per second
	Duration   time.Duration
	Payload    int           // payload bytes
	Drain      time.Duration // how long to wait for stragglers after the last send
	Token      func(user string) (string, error)
}

// Result summarises a run.
type Result struct {
	Sent, Accepted, Delivered, Lost int
	Errors                          map[string]int
	Accept, EndToEnd                Percentiles
	Throughput                      float64 // delivered per second of sending
}

// Percentiles of a latency sample, in milliseconds.
type Percentiles struct {
	P50, P90, P99, Max float64
	N                  int
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
	}
	return Percentiles{P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: float64(d[len(d)-1].Microseconds()) / 1000, N: len(d)}
}

func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d, accepted %d, delivered %d, lost %d, throughput %.1f msg/s\n", r.Sent, r.Accepted, r.Delivered, r.Lost, r.Throughput)
	fmt.Fprintf(&b, "accept (POST→202) ms:   p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", r.Accept.P50, r.Accept.P90, r.Accept.P99, r.Accept.Max)
	fmt.Fprintf(&b, "end-to-end (POST→ws) ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", r.EndToEnd.P50, r.EndToEnd.P90, r.EndToEnd.P99, r.EndToEnd.Max)
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "errors: %v\n", r.Errors)
	}
	return b.String()
}

type tracker struct {
	mu       sync.Mutex
	start    map[string]time.Time // message id → POST start
	pending  map[string]bool
	early    map[string]time.Time // frames that arrived before the 202
	e2e      []time.Duration
	accept   []time.Duration
	errors   map[string]int
	arrivals int
}

// Run executes one load run.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Users < 2 || len(cfg.Edges) == 0 || cfg.Rate <= 0 {
		return Result{}, fmt.Errorf("need at least 2 users, 1 edge and a positive rate")
	}
	tr := &tracker{start: map[string]time.Time{}, pending: map[string]bool{}, early: map[string]time.Time{}, errors: map[string]int{}}
	tokens := make([]string, cfg.Users)
	for i := range tokens {
		tok, err := cfg.Token(fmt.Sprintf("bench-%d", i))
		if err != nil {
			return Result{}, err
		}
		tokens[i] = tok
	}
	rctx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()
	var readers sync.WaitGroup
	for i, tok := range tokens {
		edge := cfg.Edges[i%len(cfg.Edges)]
		// The shared protocol client (pkg/harness/wsclient): batched frames,
		// and each session's order checked (cursors rise strictly).
		conn, err := wsclient.Dial(ctx, edge, tok, "")
		if err != nil {
			return Result{}, err
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer conn.CloseNow()
			var order wsclient.Order
			wsclient.Read(rctx, conn, func(now time.Time, f wsclient.Frame) {
				if f.Kind != wsclient.Message {
					_ = order.Observe(f)
					return
				}
				outOfOrder := order.Observe(f) != nil
				tr.mu.Lock()
				defer tr.mu.Unlock()
				if outOfOrder {
					tr.errors["out_of_order"]++
				}
				if t0, ok := tr.start[f.ID]; ok && tr.pending[f.ID] {
					tr.e2e = append(tr.e2e, now.Sub(t0))
					delete(tr.pending, f.ID)
					tr.arrivals++
				} else if !ok {
					tr.early[f.ID] = now
				}
			})
		}()
	}

	payload := strings.Repeat("x", cfg.Payload)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	began := time.Now()
	sent := 0
	var senders sync.WaitGroup
	for time.Since(began) < cfg.Duration {
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-tick.C:
		}
		from := rand.IntN(cfg.Users)
		to := (from + 1 + rand.IntN(cfg.Users-1)) % cfg.Users
		sent++
		senders.Add(1)
		go func() {
			defer senders.Done()
			t0 := time.Now()
			id, err := post(ctx, client, cfg.GatewayURL, tokens[from], fmt.Sprintf("bench-%d", to), payload)
			t1 := time.Now()
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if err != nil {
				tr.errors[err.Error()]++
				return
			}
			tr.accept = append(tr.accept, t1.Sub(t0))
			tr.start[id] = t0
			if at, ok := tr.early[id]; ok {
				tr.e2e = append(tr.e2e, at.Sub(t0))
				tr.arrivals++
				delete(tr.early, id)
				return
			}
			tr.pending[id] = true
		}()
	}
	sendTime := time.Since(began)
	senders.Wait()
	deadline := time.Now().Add(cfg.Drain)
	for time.Now().Before(deadline) {
		tr.mu.Lock()
		n := len(tr.pending)
		tr.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopReaders()
	readers.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return Result{
		Sent: sent, Accepted: len(tr.accept), Delivered: tr.arrivals, Lost: len(tr.pending), Errors: tr.errors,
		Accept: percentiles(tr.accept), EndToEnd: percentiles(tr.e2e),
		Throughput: float64(tr.arrivals) / sendTime.Seconds(),
	}, nil
}

func post(ctx context.Context, client *http.Client, gateway, token, to, payload string) (string, error) {
	body, _ := json.Marshal(map[string]any{"to": []string{to}, "payload": map[string]string{"text": payload}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gateway+"/v1/messages", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("post: status %d", resp.StatusCode)
	}
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
		return "", fmt.Errorf("post: bad answer %q", b)
	}
	return r.ID, nil
}
