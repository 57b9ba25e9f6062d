package ratelimit

import (
	"fmt"
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
	l := New(Options{PerSecond: 10, Burst: 10, Now: c.now})
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
	l := New(Options{PerSecond: 1, Burst: 1, MaxKeys: 100, Now: c.now})
	for i := range 1000 {
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
