package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/pkg/ephemeral"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

// BenchmarkSignalsThroughOneEdge measures ephemeral signals through one
// edge holding 1,000 sessions (one user each), on the emulators: signals
// published to the fan-out topic at a fixed offered rate (1,000, 2,000, 4,000/s) for 10 s, each to
// one user in turn, carrying their publish time; every session reads its
// frames and records publish → receipt latency. It reports the rate
// received, the latency percentiles and the signals lost (at most once: a
// loss is a drop, never a duplicate). Run once:
//
//	go test -run '^$' -bench SignalsThroughOneEdge -benchtime 1x ./internal/edge
func BenchmarkSignalsThroughOneEdge(b *testing.B) {
	const sessions = 1000
	for _, rate := range []int{1000, 2000, 4000} {
		b.Run(fmt.Sprintf("offered=%d/s", rate), func(b *testing.B) {
			for range b.N {
				benchSignals(b, sessions, rate, 10*time.Second)
			}
		})
	}
}

func benchSignals(b *testing.B, sessions, rate int, d time.Duration) {
	w := newWorld(b)
	te := startEdge(b, w, "edge-bench", func(c *edge.Config, _ *edge.Deps) {
		c.MaxSessions, c.ConnectRate, c.ConnectBurst = sessions+10, 100, 100
	})
	var mu sync.Mutex
	var lat []time.Duration
	var received atomic.Int64
	users := make([]string, sessions)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32) // dial 32 at a time
	for i := range users {
		users[i] = fmt.Sprintf("u%04d", i)
		sem <- struct{}{}
		c := dial(b, te, users[i], dialOpts{noRead: true})
		<-sem
		wg.Go(func() {
			for {
				_, data, err := c.conn.Read(context.Background())
				if err != nil {
					return
				}
				var f struct {
					Type string `json:"type"`
					Data struct {
						T int64 `json:"t"`
					} `json:"data"`
				}
				if json.Unmarshal(data, &f) != nil || f.Type != "signal" {
					continue
				}
				l := time.Since(time.Unix(0, f.Data.T))
				received.Add(1)
				mu.Lock()
				lat = append(lat, l)
				mu.Unlock()
			}
		})
	}
	m, err := ephemeral.NewMetrics(prometheus.NewRegistry(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	pub := ephemeral.New(w.ps, w.topo.DeliveriesTopic, ephemeral.Options{MaxOutstanding: 20000}, m, nil)
	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	sent, dropped := 0, 0
	for time.Since(start) < d {
		<-tick.C
		due := int(time.Since(start).Seconds()*float64(rate)) - sent - dropped
		for range due {
			u := users[(sent+dropped)%sessions]
			f := fmt.Appendf(nil, `{"type":"signal","from":"bench","kind":"typing","data":{"t":%d},"sent_at":"x"}`, time.Now().UnixNano())
			if pub.Publish(context.Background(), []string{u}, "signal", f) {
				sent++
			} else {
				dropped++
			}
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	// Wait for the tail: until nothing more arrives for a second.
	for last := int64(-1); last != received.Load(); {
		last = received.Load()
		time.Sleep(time.Second)
	}
	b.StopTimer()
	_ = pub.Stop(context.Background())
	mu.Lock()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(received.Load())/elapsed.Seconds(), "signals/s")
	b.ReportMetric(pct(0.5), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(sent-int(received.Load())), "lost")
	b.ReportMetric(float64(dropped), "publisher_drops")
	mu.Unlock()
	b.Logf("%d sessions, offered %d/s for %s: published %d (publisher dropped %d), received %d; edge ephemeral written %v, dropped_queue_full %v",
		sessions, rate, d, sent, dropped, received.Load(),
		te.counter(b, "courier_ws_edge_ephemeral_total", "kind", "signal", "result", "written"),
		te.counter(b, "courier_ws_edge_ephemeral_total", "kind", "signal", "result", "dropped_queue_full"))
}
