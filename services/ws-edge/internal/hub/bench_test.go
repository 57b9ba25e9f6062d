package hub_test

import (
	"fmt"
	"testing"
)

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
