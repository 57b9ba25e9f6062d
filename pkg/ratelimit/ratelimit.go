// Package ratelimit keeps one token bucket per user in a bounded, sharded
// map. Each shard evicts its least recently used bucket in O(1) when full, and
// remembers what an evicted bucket still owed, so that being evicted never
// hands a user tokens it would not have had.
package ratelimit

import (
	"container/list"
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// Options configure a Limiter.
type Options struct {
	// PerSecond is the sustained rate per user (default 20).
	PerSecond float64
	// Burst is how many tokens a user may spend at once (default 40).
	Burst int
	// MaxKeys bounds the number of buckets kept (default 100000). When a
	// shard is full its least recently used bucket is evicted; see debt.
	MaxKeys int
	// Shards splits the map so that requests of different users rarely wait
	// on the same lock (default 32, never more than MaxKeys).
	Shards int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// maxDebtBursts caps what one request can cost, in bursts.
const maxDebtBursts = 1000

// Allower grants or refuses one request of a user: what the REST and gRPC
// servers need of a Limiter (tests give them fakes).
type Allower interface {
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// Limiter is safe for concurrent use.
type Limiter struct {
	shards []shard
	seed   maphash.Seed
	rate   float64 // tokens per second
	burst  float64
	idle   time.Duration
	now    func() time.Time
}

// bucket is a token bucket: tokens as of at. tokens may be negative: a
// request costing more than is left is granted when the bucket holds at least
// min(cost, burst), and the rest is a debt its user repays by waiting.
type bucket struct {
	key    string
	hash   uint64
	tokens float64
	at     time.Time
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	lru     list.List                // front = most recently used
	max     int
	// debt remembers, per hash slot, until when an evicted bucket stays
	// below full. Eviction must not be a refill: without this, a user made
	// to wait could get a full bucket back by crowding itself out of the map
	// with fresh keys. A new bucket starts with what a bucket full at that
	// time would hold. We keep debt rather than evict only refilled buckets
	// because refusing new users whenever the map is full of active ones is
	// worse. A slot names its key by fingerprint; when two live debts fall
	// on one slot it keeps the later time for any key (fingerprint 0), so a
	// collision can only make a newcomer start lower, never higher.
	debt []debt
}

type debt struct {
	fp     uint64 // 0: applies to every key of the slot
	fullAt int64  // unix nanoseconds
}

// New returns a Limiter. Services pass every option from their settings;
// the zero-value fallbacks stay because tests build limiters from partial
// Options, and a zero rate would divide by zero and a zero burst refuse
// everything.
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
	if o.Shards <= 0 {
		o.Shards = 32
	}
	o.Shards = min(o.Shards, o.MaxKeys)
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Limiter{
		shards: make([]shard, o.Shards),
		seed:   maphash.MakeSeed(),
		rate:   o.PerSecond,
		burst:  float64(o.Burst),
		// A bucket idle this long is normally full again, so dropping it
		// costs nothing; a minute at least so steady callers are not churned.
		idle: max(time.Duration(float64(o.Burst)/o.PerSecond*float64(time.Second)), time.Minute),
		now:  o.Now,
	}
	per := o.MaxKeys / o.Shards // floor: the total never exceeds MaxKeys
	for i := range l.shards {
		// Twice as many debt slots as buckets keeps collisions rare.
		l.shards[i] = shard{buckets: make(map[string]*list.Element), max: per, debt: make([]debt, max(2*per, 64))}
	}
	return l
}

// Allow takes one token from key's bucket. When none is left it returns
// false and how long until one will be.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	return l.AllowN(key, 1)
}

// AllowN takes cost tokens from key's bucket (cost-weighted requests: a send
// to many recipients costs more than one). It is granted when the bucket holds
// at least min(cost, Burst): a request dearer than the whole burst is served
// from a full bucket and leaves it in debt, so it is paid for by waiting
// instead of being refused forever (the debt is capped at maxDebtBursts
// bursts, so no cost blocks a user forever). A refused request takes nothing;
// retryAfter says when it would pass. A cost <= 0 is always granted; NaN
// costs a whole burst.
func (l *Limiter) AllowN(key string, cost float64) (ok bool, retryAfter time.Duration) {
	if math.IsNaN(cost) {
		cost = l.burst
	}
	if cost <= 0 {
		return true, 0
	}
	cost = min(cost, l.burst*maxDebtBursts)
	now := l.now()
	h := maphash.String(l.seed, key)
	s := &l.shards[h%uint64(len(l.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	var b *bucket
	if e := s.buckets[key]; e != nil {
		s.lru.MoveToFront(e)
		b = e.Value.(*bucket)
		l.refill(b, now)
	} else {
		b = s.add(l, key, h, now)
	}
	need := min(cost, l.burst)
	if b.tokens >= need {
		b.tokens -= cost
		return true, 0
	}
	return false, l.wait(need - b.tokens)
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
}

// fullAt is when b, left alone, is full again.
func (l *Limiter) fullAt(b *bucket) time.Time {
	return b.at.Add(l.wait(l.burst - b.tokens))
}

func (l *Limiter) wait(tokens float64) time.Duration {
	s := tokens / l.rate * float64(time.Second)
	if s >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(s))
}

// add makes key's bucket, evicting first the buckets idle for l.idle from the
// back of the list (each bucket is evicted once, so this is O(1) amortised),
// then the least recently used one if the shard is still full.
func (s *shard) add(l *Limiter, key string, h uint64, now time.Time) *bucket {
	for e := s.lru.Back(); e != nil && now.Sub(e.Value.(*bucket).at) >= l.idle; e = s.lru.Back() {
		s.evict(l, e, now)
	}
	if s.lru.Len() >= s.max {
		s.evict(l, s.lru.Back(), now)
	}
	b := &bucket{key: key, hash: h, tokens: l.burst, at: now}
	if d := s.debt[l.slot(h, len(s.debt))]; d.fullAt > now.UnixNano() && (d.fp == 0 || d.fp == fingerprint(h)) {
		b.tokens = l.burst - float64(d.fullAt-now.UnixNano())/float64(time.Second)*l.rate
	}
	s.buckets[key] = s.lru.PushFront(b)
	return b
}

func (s *shard) evict(l *Limiter, e *list.Element, now time.Time) {
	b := e.Value.(*bucket)
	if full := l.fullAt(b).UnixNano(); full > now.UnixNano() {
		d := &s.debt[l.slot(b.hash, len(s.debt))]
		switch fp := fingerprint(b.hash); {
		case d.fullAt <= now.UnixNano() || d.fp == fp:
			*d = debt{fp: fp, fullAt: full}
		default: // another key's live debt: keep the later for both
			*d = debt{fp: 0, fullAt: max(d.fullAt, full)}
		}
	}
	s.lru.Remove(e)
	delete(s.buckets, b.key)
}

// fingerprint tells keys of one debt slot apart (never 0, which means any).
func fingerprint(h uint64) uint64 { return h | 1 }

// slot places a hash in a shard's debt table with the bits the shard index
// did not use, so a shard's keys spread over all of its slots.
func (l *Limiter) slot(h uint64, n int) uint64 {
	return h / uint64(len(l.shards)) % uint64(n)
}

// Len returns the number of live buckets.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}
