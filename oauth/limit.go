package oauth

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter rate-limits calls per key (an identity's subject) with a token
// bucket per key (golang.org/x/time/rate): Rate calls per second on
// average, Burst at once. Buckets of keys idle long enough to have refilled
// are evicted, so memory is bounded by the keys active within that time,
// not by every key ever seen. Its methods are safe for concurrent use.
type Limiter struct {
	rate     rate.Limit
	burst    int
	override func(key string) (rate.Limit, int, bool)
	idle     time.Duration
	now      func() time.Time // time.Now; tests move it

	seed   maphash.Seed
	shards [limiterShards]limiterShard
}

const limiterShards = 64

type limiterShard struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep int64 // unix nanoseconds
	peak      int   // most buckets since the map was last rebuilt
}

type bucket struct {
	lim      rate.Limiter
	lastUsed int64 // unix nanoseconds
}

// LimiterConfig configures a [Limiter].
type LimiterConfig struct {
	// Rate is the sustained calls per second allowed per key; zero or
	// negative (or +Inf) means no limit.
	Rate float64
	// Burst is how many calls a key may make at once; zero means
	// max(1, ceil(Rate)).
	Burst int
	// Override, if set, is asked once per key when its bucket is made
	// (again after an eviction): ok true replaces Rate and Burst for that
	// key (a rate of rate.Inf exempts it).
	Override func(key string) (r rate.Limit, burst int, ok bool)
	// IdleEviction is how long a key may go without calls before its
	// bucket is dropped; it is raised to the time the bucket takes to
	// refill, so that eviction never lets a key call more than its limit.
	// Zero means 10 minutes.
	IdleEviction time.Duration
}

// NewLimiter returns a Limiter for cfg.
func NewLimiter(cfg LimiterConfig) *Limiter {
	l := &Limiter{rate: rate.Inf, override: cfg.Override, idle: cfg.IdleEviction, seed: maphash.MakeSeed(), now: time.Now}
	if cfg.Rate > 0 && !math.IsInf(cfg.Rate, 1) {
		l.rate = rate.Limit(cfg.Rate)
	}
	l.burst = cfg.Burst
	if l.burst <= 0 {
		l.burst = max(1, int(math.Ceil(cfg.Rate)))
	}
	if l.idle <= 0 {
		l.idle = 10 * time.Minute
	}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// Allow reports whether key may make a call now, and if not, how long it
// should wait before it may (0 if it never may: a burst of zero).
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l.rate == rate.Inf && l.override == nil {
		return true, 0
	}
	now := l.now()
	sh := &l.shards[maphash.String(l.seed, key)%limiterShards]
	sh.mu.Lock()
	b := sh.buckets[key]
	if b == nil {
		r, burst := l.rate, l.burst
		if l.override != nil {
			if or, ob, ok := l.override(key); ok {
				r, burst = or, ob
			}
		}
		if r == rate.Inf {
			sh.mu.Unlock()
			return true, 0
		}
		// The bucket holds its limiter by value (one allocation per key);
		// copying a fresh, unused limiter is safe.
		b = &bucket{lim: *rate.NewLimiter(r, burst)}
		sh.buckets[key] = b
		sh.peak = max(sh.peak, len(sh.buckets))
	}
	b.lastUsed = now.UnixNano()
	l.sweepLocked(sh, now)
	res := b.lim.ReserveN(now, 1)
	sh.mu.Unlock()
	if !res.OK() {
		return false, 0
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evictAfter is the idle time after which a bucket is dropped: at least
// the time it takes to refill from empty.
func (l *Limiter) evictAfter(b *bucket) time.Duration {
	lim := b.lim.Limit()
	if lim <= 0 || lim == rate.Inf {
		return l.idle
	}
	refill := time.Duration(float64(b.lim.Burst()) / float64(lim) * float64(time.Second))
	return max(l.idle, refill)
}

// sweepLocked drops the shard's idle buckets, at most once per tenth of
// the idle time, so that the cost is spread over calls.
func (l *Limiter) sweepLocked(sh *limiterShard, now time.Time) {
	n := now.UnixNano()
	if n-sh.lastSweep < int64(l.idle/10) {
		return
	}
	sh.lastSweep = n
	for k, b := range sh.buckets {
		if time.Duration(n-b.lastUsed) >= l.evictAfter(b) {
			delete(sh.buckets, k)
		}
	}
	// A Go map keeps its table after deletions: rebuild it once it is
	// mostly empty, so that a burst of keys does not pin memory.
	if sh.peak > 64 && len(sh.buckets) < sh.peak/4 {
		m := make(map[string]*bucket, len(sh.buckets))
		for k, b := range sh.buckets {
			m[k] = b
		}
		sh.buckets = m
		sh.peak = len(m)
	}
}

// Sweep drops every bucket idle long enough now, rather than waiting for
// calls to do it.
func (l *Limiter) Sweep() {
	now := l.now()
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		sh.lastSweep = 0
		l.sweepLocked(sh, now)
		sh.mu.Unlock()
	}
}

// Len is the number of keys with a bucket.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
