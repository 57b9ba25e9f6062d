package ratelimit

import (
	"fmt"
	"math"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBurstThenRefill(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{PerSecond: 2, Burst: 3, Now: c.now})
	for i := range 3 {
		if ok, _ := l.Allow("alice"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, retry := l.Allow("alice")
	if ok || retry <= 0 || retry > 500*time.Millisecond {
		t.Fatalf("4th request: ok=%v retry=%v, want refused with retry in (0, 500ms]", ok, retry)
	}
	// Other users have their own bucket.
	if ok, _ := l.Allow("bob"); !ok {
		t.Fatal("bob refused because of alice")
	}
	// Refused requests do not consume tokens: after the advertised wait one
	// request passes, even though alice kept knocking.
	for range 10 {
		l.Allow("alice")
	}
	c.advance(retry)
	if ok, _ := l.Allow("alice"); !ok {
		t.Fatal("refused after waiting Retry-After")
	}
	if ok, _ := l.Allow("alice"); ok {
		t.Fatal("second request after one refill allowed")
	}
}

func TestIdleBucketsAreEvicted(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{PerSecond: 10, Burst: 10, Shards: 1, Now: c.now}) // one shard: the sweep is per shard
	for i := range 50 {
		l.Allow(fmt.Sprint("user", i))
	}
	if l.Len() != 50 {
		t.Fatalf("len = %d", l.Len())
	}
	c.advance(2 * time.Minute)
	l.Allow("fresh")
	if l.Len() != 1 {
		t.Fatalf("after idle sweep len = %d, want 1", l.Len())
	}
}

func TestMapIsBounded(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	// Each user spends its one token and is evicted owing it; a newcomer
	// whose debt slot collides with a live debt starts lower (by design), so
	// the clock moves on by one refill per user.
	l := New(Options{PerSecond: 1000, Burst: 1, MaxKeys: 100, Now: c.now})
	for i := range 1000 {
		c.advance(time.Millisecond)
		if ok, _ := l.Allow(fmt.Sprint("user", i)); !ok {
			t.Fatalf("new user %d refused", i)
		}
		if l.Len() > 100 {
			t.Fatalf("len %d exceeds MaxKeys", l.Len())
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	l := New(Options{PerSecond: 1000, Burst: 1000})
	done := make(chan int)
	for g := range 8 {
		go func() {
			n := 0
			for range 200 {
				if ok, _ := l.Allow(fmt.Sprint("u", g%2)); ok {
					n++
				}
			}
			done <- n
		}()
	}
	total := 0
	for range 8 {
		total += <-done
	}
	// Two users, burst 1000 each, 800 requests each: all pass, none twice.
	if total != 1600 {
		t.Fatalf("allowed %d, want 1600", total)
	}
}

// An evicted user must not come back with a full bucket: eviction is not a
// refill. The old limiter dropped an arbitrary bucket and gave it back full.
func TestEvictionIsNotARefill(t *testing.T) {
	tests := []struct {
		name    string
		wait    time.Duration // after alice drains her bucket and is evicted
		allowed int           // alice's requests then allowed (2 tokens/s)
	}{
		{"at once", 0, 0},
		{"partly refilled", time.Second, 2},
		{"refilled", 10 * time.Second, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1000, 0)}
			l := New(Options{PerSecond: 2, Burst: 3, MaxKeys: 1, Now: c.now})
			for range 3 {
				if ok, _ := l.Allow("alice"); !ok {
					t.Fatal("alice's burst refused")
				}
			}
			if ok, _ := l.Allow("mallory"); !ok { // evicts alice: the map holds one key
				t.Fatal("mallory refused")
			}
			if l.Len() != 1 {
				t.Fatalf("len = %d, want 1", l.Len())
			}
			c.advance(tt.wait)
			n := 0
			for range 5 {
				if ok, _ := l.Allow("alice"); ok {
					n++
				}
			}
			if n != tt.allowed {
				t.Fatalf("alice allowed %d after %v, want %d", n, tt.wait, tt.allowed)
			}
		})
	}
}

// The victim of a full shard is its least recently used bucket.
func TestEvictsLeastRecentlyUsed(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{PerSecond: 1, Burst: 5, MaxKeys: 3, Shards: 1, Now: c.now})
	for _, k := range []string{"a", "b", "c", "a", "d"} { // b is the oldest when d arrives
		l.Allow(k)
	}
	s := &l.shards[0]
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, held := s.buckets[k]; held != want {
			t.Errorf("bucket %q held = %v, want %v", k, held, want)
		}
	}
}

func TestAllowN(t *testing.T) {
	type step struct {
		advance time.Duration
		cost    float64
		ok      bool
		retry   time.Duration // checked when !ok
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"costs add up", []step{{0, 4, true, 0}, {0, 4, true, 0}, {0, 4, false, time.Second}}},
		{"a refused request takes nothing", []step{{0, 8, true, 0}, {0, 5, false, 1500 * time.Millisecond}, {0, 2, true, 0}}},
		{"dearer than the burst is served from a full bucket, then repaid", []step{
			{0, 30, true, 0},
			{0, 1, false, 10500 * time.Millisecond}, // -20 tokens: 21 to earn at 2/s
			{10 * time.Second, 1, false, 500 * time.Millisecond},
			{500 * time.Millisecond, 1, true, 0},
		}},
		{"dearer than the burst waits for a full bucket", []step{{0, 1, true, 0}, {0, 30, false, 500 * time.Millisecond}}},
		{"zero and negative costs are free", []step{{0, 10, true, 0}, {0, 0, true, 0}, {0, -3, true, 0}, {0, 1, false, 500 * time.Millisecond}}},
		{"NaN costs a burst", []step{{0, math.NaN(), true, 0}, {0, 1, false, 500 * time.Millisecond}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1000, 0)}
			l := New(Options{PerSecond: 2, Burst: 10, Now: c.now})
			for i, s := range tt.steps {
				c.advance(s.advance)
				ok, retry := l.AllowN("alice", s.cost)
				if ok != s.ok || (!ok && retry != s.retry) {
					t.Fatalf("step %d (cost %v): ok=%v retry=%v, want ok=%v retry=%v", i, s.cost, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

// Keys spread over shards, and the total stays within MaxKeys however the
// keys fall.
func TestShardsStayWithinMaxKeys(t *testing.T) {
	l := New(Options{PerSecond: 1, Burst: 1, MaxKeys: 1000, Shards: 7})
	for i := range 10_000 {
		l.Allow(fmt.Sprint("user", i))
	}
	if n := l.Len(); n > 1000 || n < 900 {
		t.Fatalf("len = %d, want (900, 1000]", n)
	}
	used := 0
	for i := range l.shards {
		if l.shards[i].lru.Len() > 0 {
			used++
		}
	}
	if used != 7 {
		t.Fatalf("%d of 7 shards used", used)
	}
}
