package hub_test

import (
	"fmt"
	"testing"

	"github.com/courierhq/courier/services/ws-edge/internal/frame"
)

// BenchmarkDeliver measures what the hub costs per recipient of a group
// message: 1,000 users with one session each get one delivery each, in
// order, from parallel receivers.
func BenchmarkDeliver(b *testing.B) {
	h := newHub(20000, 16)
	conns := make([]*fakeConn, 1000)
	for i := range conns {
		conns[i] = newConn(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i))
		if err := h.Add(conns[i]); err != nil {
			b.Fatal(err)
		}
		h.Start(conns[i].user, 0)
	}
	m := newMessage(b)
	b.ReportAllocs()
	seq := int64(0)
	for b.Loop() {
		seq++
		for _, c := range conns {
			h.Deliver(c.user, frame.Item{M: m, Seq: seq})
		}
		if seq%64 == 0 {
			for _, c := range conns {
				c.mu.Lock()
				c.got = c.got[:0]
				c.mu.Unlock()
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*int64(len(conns))), "ns/recipient")
}

// BenchmarkLookup measures what every delivery costs the hub: finding the
// local sessions of one recipient among 10,000 sessions of 5,000 users,
// from parallel receivers (the fan-out subscription's callbacks).
func BenchmarkLookup(b *testing.B) {
	h := newHub(20000, 16)
	for i := range 10000 {
		if err := h.Add(newConn(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i%5000))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]*fakeConn, 0, 16)
		i := 0
		for pb.Next() {
			buf = h.AppendSessions(buf[:0], fmt.Sprintf("u%d", i%6000)) // a sixth of lookups miss
			i++
		}
	})
}
