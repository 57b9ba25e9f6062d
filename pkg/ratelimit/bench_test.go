package ratelimit

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAllowAtCapacity measures Allow when the map is full and every call
// brings a key it does not hold, so each call must evict: the case that used
// to scan the whole map under one lock.
func BenchmarkAllowAtCapacity(b *testing.B) {
	const maxKeys = 100_000
	start := time.Unix(1000, 0)
	l := New(Options{PerSecond: 20, Burst: 40, MaxKeys: maxKeys, Now: func() time.Time { return start }})
	for i := range maxKeys {
		l.Allow("warm" + strconv.Itoa(i))
	}
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "new" + strconv.Itoa(i)
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			l.Allow(keys[int(i)&(len(keys)-1)])
		}
	})
}

// BenchmarkAllowHotKeys measures Allow on keys it already holds, from every
// core: the steady state, where one lock used to serialise every request.
func BenchmarkAllowHotKeys(b *testing.B) {
	l := New(Options{PerSecond: 1e9, Burst: 1e9})
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "user" + strconv.Itoa(i)
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			l.Allow(keys[int(i)&(len(keys)-1)])
		}
	})
}
