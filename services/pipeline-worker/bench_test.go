package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
)

// BenchmarkPipeline measures the worker on the emulators: 1000 messages from
// 20 senders to 1–3 of 50 recipients, published at once (ordered per sender); it
// reports throughput, publish→delivery latency and Firestore requests per
// message, without and with targeted routing (one presence read per batch;
// half the recipients have a record); and "hot": 1000 messages from 200
// senders to one recipient.
//
//	go test -run '^$' -bench Pipeline -benchtime 1x ./internal/pipeline
func BenchmarkPipeline(b *testing.B) {
	for _, routed := range []bool{false, true} {
		b.Run(fmt.Sprintf("routing=%v", routed), func(b *testing.B) {
			benchPipeline(b, routed, 20, func() []string {
				var to []string
				for len(to) < 1+rand.IntN(3) {
					if u := fmt.Sprintf("u%02d", rand.IntN(50)); !slices.Contains(to, u) {
						to = append(to, u)
					}
				}
				return to
			})
		})
	}
	b.Run("hot", func(b *testing.B) { benchPipeline(b, false, 200, func() []string { return []string{"star"} }) })
}

func benchPipeline(b *testing.B, routed bool, senders int, recipients func() []string) {
	for b.Loop() {
		w := newWorld(b, nil)
		s := w.settings()
		s.TargetedRouting = routed
		if routed {
			tab := presence.NewTable(w.fs)
			for u := range 25 {
				if err := tab.Join(testenv.Context(b, 10*time.Second), fmt.Sprintf("u%02d", 2*u), fmt.Sprintf("edge-%d", u%4)); err != nil {
					b.Fatal(err)
				}
			}
		}
		wk := w.start(s, nil)
		// Warm up Firestore (the emulator's first writes are slow).
		w.publish(env("warm", "warm", "warm"))
		w.deliveries.waitFor(b, time.Minute, "warm")
		rpcs0 := roundTrips(wk)

		const n = 1000
		sentAt := make(map[string]time.Time, n)
		ids := make([]string, 0, n)
		var results []*pubsub.PublishResult
		ctx := testenv.Context(b, 5*time.Minute)
		start := time.Now()
		for i := range n {
			id := fmt.Sprintf("b%04d", i)
			from := fmt.Sprintf("s%03d", i%senders)
			data, err := proto.Marshal(env(id, from, recipients()...))
			if err != nil {
				b.Fatal(err)
			}
			sentAt[id] = time.Now()
			results = append(results, w.ingress.Publish(ctx, &pubsub.Message{Data: data, OrderingKey: from, Attributes: map[string]string{
				wire.AttrMessageID: id, wire.AttrSender: from, wire.AttrSchema: wire.SchemaEnvelope,
			}}))
			ids = append(ids, id)
		}
		for _, r := range results {
			if _, err := r.Get(ctx); err != nil {
				b.Fatal(err)
			}
		}
		published := time.Since(start)
		w.deliveries.waitFor(b, 5*time.Minute, ids...)
		total := time.Since(start)

		w.deliveries.mu.Lock()
		var lat []time.Duration
		for i, m := range w.deliveries.msgs {
			if t0, ok := sentAt[m.Attributes[wire.AttrMessageID]]; ok {
				lat = append(lat, w.deliveries.at[i].Sub(t0))
			}
		}
		w.deliveries.mu.Unlock()
		slices.Sort(lat)
		b.ReportMetric(float64(n)/total.Seconds(), "msgs/s")
		b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
		b.ReportMetric((roundTrips(wk)-rpcs0)/n, "firestore-rpcs/msg")
		b.Logf("published %d in %s (asynchronously, ordered per sender), all delivered after %s", n, published, total)
	}
}

// roundTrips is the worker's count of Firestore requests so far.
func roundTrips(wk *running) float64 {
	total := 0.0
	for _, op := range []string{"commit", "get_messages", "read_head", "read_presence"} {
		total += testutil.ToFloat64(wk.m.FirestoreRoundTrips.WithLabelValues(op))
	}
	return total
}
