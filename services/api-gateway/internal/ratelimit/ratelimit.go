// Package ratelimit keeps one token bucket per user (golang.org/x/time/rate)
// in a bounded map: buckets idle long enough to have refilled are evicted,
// since a fresh bucket is then indistinguishable from the old one.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Options configure a Limiter.
type Options struct {
	// PerSecond is the sustained rate per user (default 20).
	PerSecond float64
	// Burst is how many requests a user may make at once (default 40).
	Burst int
	// MaxKeys bounds the map (default 100000). When it is full and nothing
	// is idle, an arbitrary bucket is dropped: that user gets a full bucket
	// back, which errs on the side of serving.
	MaxKeys int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// Allower grants or refuses one request of a user: what the REST and gRPC
// servers need of a Limiter (tests give them fakes).
type Allower interface {
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// Limiter is safe for concurrent use.
type Limiter struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	limit     rate.Limit
	burst     int
	maxKeys   int
	idle      time.Duration
	lastSweep time.Time
	now       func() time.Time
}

// New returns a Limiter.
func New(o Options) *Limiter {
	if o.PerSecond <= 0 {
		o.PerSecond = 20
	}
	if o.Burst <= 0 {
		o.Burst = 40
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// A bucket left alone for burst/rate seconds is full again: evicting it
	// then changes nothing for its user. Keep at least a minute so a steady
	// caller's bucket is not churned.
	refill := time.Duration(float64(o.Burst) / o.PerSecond * float64(time.Second))
	return &Limiter{
		buckets: make(map[string]*bucket),
		limit:   rate.Limit(o.PerSecond),
		burst:   o.Burst,
		maxKeys: o.MaxKeys,
		idle:    max(refill, time.Minute),
		now:     o.Now,
	}
}

// Allow takes one token from key's bucket. When none is left it returns
// false and how long until one will be.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) { return l.AllowN(key, 1) }

// AllowN takes cost tokens (rounded up to whole tokens) from key's bucket,
// for limits weighted by what a request costs. A cost above the burst can
// never be granted: false with the longest retry.
func (l *Limiter) AllowN(key string, cost float64) (ok bool, retryAfter time.Duration) {
	n := int(math.Ceil(cost))
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if now.Sub(l.lastSweep) >= l.idle || len(l.buckets) >= l.maxKeys {
			l.sweep(now)
		}
		if len(l.buckets) >= l.maxKeys {
			for k := range l.buckets { // arbitrary victim; see Options.MaxKeys
				delete(l.buckets, k)
				break
			}
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, max(n, 1))
	if !r.OK() {
		return false, time.Duration(math.MaxInt64)
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused request must not consume future tokens
		return false, d
	}
	return true, 0
}

func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.idle {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
}

// Len returns the number of live buckets.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
