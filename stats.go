package mcpool

import (
	"slices"
	"time"
)

// Stats is a snapshot of a pool's state and counters, from [Pool.Stats].
// Counts since New are monotonic; the others describe the moment of the call.
type Stats struct {
	Sessions       int // sessions connected and in the pool
	ActiveSessions int // sessions carrying at least one call
	IdleSessions   int // sessions carrying none
	Connecting     int // connects in flight
	MaxSessions    int // the configured cap
	CallsInFlight  int // leases held across the pool
	// CallsPerSessionLimit is how many calls one session takes before
	// callers queue. It starts at 1 (exclusive lending) and adapts while
	// the pool runs: up, to at most MaxCallsPerSession, while callers wait
	// with MaxSessions sessions connected and more calls at once raise
	// calls/s; down while they do not (see Pool.Acquire).
	CallsPerSessionLimit int
	Waiters              int // callers queued for room

	Acquires        uint64        // successful acquires since New
	AcquireTimeouts uint64        // acquires that gave up waiting (ErrPoolExhausted)
	AcquireWaitMean time.Duration // mean wait over all successful acquires
	AcquireWaitP50  time.Duration // median wait over the last 1024 acquires
	AcquireWaitP99  time.Duration // 99th percentile over the last 1024 acquires

	CacheHits    uint64  // ListTools, ListPrompts, ListResources answered from the catalog cache
	CacheMisses  uint64  // those that fetched from the server (or joined a fetch)
	CacheHitRate float64 // hits / (hits + misses); 0 before the first ListTools
	// CacheInvalidations counts catalog invalidations: each list_changed
	// notification received, InvalidateTools and server changes (per list).
	CacheInvalidations uint64

	SessionsCreated   uint64 // sessions connected since New
	SessionsDestroyed uint64 // sessions closed since New
	Reconnects        uint64 // sessions connected to replace one the pool lost
	ConnectErrors     uint64 // failed connects
	Errors            uint64 // failed connects plus calls through Pool helpers that returned an error

	Deaths        uint64 // sessions found dead (ended, failed a call or a health check)
	Probes        uint64 // health checks run
	ProbeFailures uint64 // health checks failed
	Retired       uint64 // sessions retired for lifetime or idleness
	Retries       uint64 // calls retried on another session after their session died
	LostCalls     uint64 // calls that got ErrSessionLost
	Unavailable   uint64 // acquires refused with ErrServerUnavailable

	// Status is healthy, degraded or unavailable; it is judged with Health
	// and HealthScore from the same facts (see Health): Health is connected
	// only when Status is healthy, and unavailable exactly when Status is.
	Status  Status
	Breaker string // the circuit breaker: "closed", "open", "half-open" or "disabled"
	// ConsecutiveFailures counts connects failed in a row (0 after a success).
	ConsecutiveFailures int

	// HealthScore is in [0, 1]: recent request and connect outcomes and
	// tools/call latency (see docs/library.md, "Health score"); 0 when no
	// session is left (Health unavailable, connecting or reconnecting with
	// none), at most HealthyScore/2 while the breaker is open.
	HealthScore float64
	Health      Health // connected, connecting, reconnecting, degraded or unavailable
	// LeakedLeases counts leases held longer than LeakThreshold.
	LeakedLeases uint64
	// StoreHits counts lists served from Config.CatalogStore instead of the
	// server; StoreErrors counts store operations that failed (the pool then
	// fell back to its local cache and the server). Store is "" without a
	// store, "ok", or "failing" while the last operation failed.
	StoreHits   uint64
	StoreErrors uint64
	Store       string

	ProtocolVersion string        // the version later sessions pin; "" before the first connect
	Uptime          time.Duration // time since New
	Closed          bool          // Close has begun
}

// Stats returns a snapshot of the pool. It is cheap (one short lock, no I/O)
// and safe to call at any time, before Start and after Close included.
func (p *Pool) Stats() Stats {
	var st Stats
	p.mu.Lock()
	st.Sessions = len(p.sessions)
	for _, s := range p.sessions {
		if s.inFlight > 0 {
			st.ActiveSessions++
		}
	}
	st.IdleSessions = st.Sessions - st.ActiveSessions
	st.Connecting = p.connecting
	st.CallsInFlight = p.inFlight
	st.CallsPerSessionLimit = p.limit.n
	st.Waiters = p.waiters.Len()
	st.Closed = p.closed
	st.ConsecutiveFailures = p.failures
	st.Breaker = "disabled"
	if p.breaker != nil {
		st.Breaker = p.breaker.State().String()
	}
	st.ProtocolVersion = p.version
	st.Acquires = p.waits.count
	if p.waits.count > 0 {
		st.AcquireWaitMean = time.Duration(p.waits.sum / int64(p.waits.count))
	}
	recent := slices.Clone(p.waits.recent())
	p.mu.Unlock()

	st.MaxSessions = p.cfg.MaxSessions
	st.AcquireWaitP50, st.AcquireWaitP99 = percentile(recent, 0.50), percentile(recent, 0.99)
	st.AcquireTimeouts = p.counters.exhausted.Load()
	st.CacheHits, st.CacheMisses = p.catalog.stats.hits.Load(), p.catalog.stats.misses.Load()
	st.CacheInvalidations = p.catalog.stats.invalidations.Load()
	if n := st.CacheHits + st.CacheMisses; n > 0 {
		st.CacheHitRate = float64(st.CacheHits) / float64(n)
	}
	st.SessionsCreated = p.counters.created.Load()
	st.SessionsDestroyed = p.counters.destroyed.Load()
	st.Reconnects = p.counters.reconnects.Load()
	st.ConnectErrors = p.counters.connectErrors.Load()
	st.Errors = p.counters.errors.Load()
	st.Uptime = time.Since(p.counters.started)
	st.Deaths = p.counters.deaths.Load()
	st.Probes = p.counters.probes.Load()
	st.ProbeFailures = p.counters.probeFailures.Load()
	st.Retired = p.counters.retired.Load()
	st.Retries = p.counters.retries.Load()
	st.LostCalls = p.counters.lostCalls.Load()
	st.Unavailable = p.counters.unavailable.Load()
	if g := p.store; g != nil {
		st.StoreHits, st.StoreErrors = g.hits.Load(), g.errors.Load()
		st.Store = "ok"
		if g.failing() {
			st.Store = "failing"
		}
	}
	p.observeStats(&st) // leaks; Status, Health and HealthScore (health_score.go)
	return st
}

// Failing reports whether the pool has no session and its last connect
// failed, or is closed: a server that is down or refusing, whose connects
// go on with backoff. It is what [Group.Start] stops waiting for in a
// replica once another has started, and what a caller deciding whether to
// wait for a pool's first session can stop at. Stats summed over a
// server's replicas ([GroupServer.Stats]) are failing when no replica has
// a session and one has failed.
func (s Stats) Failing() bool { return failing(s.Sessions, s.ConsecutiveFailures, s.Closed) }

func failing(sessions, failures int, closed bool) bool {
	return sessions == 0 && failures > 0 || closed
}

// Status sums up a pool's health, as in Stats.Status.
type Status string

// The values of Status.
const (
	// StatusHealthy: MinSessions are connected, the breaker is closed (or
	// disabled) and the last connect worked.
	StatusHealthy Status = "healthy"
	// StatusDegraded: fewer than MinSessions sessions (before Start too), or
	// connects are failing, or the breaker is open or half-open. Calls may
	// still succeed on the sessions left.
	StatusDegraded Status = "degraded"
	// StatusUnavailable: the pool is closed, or the breaker is open and no
	// session is left; acquires fail at once (ErrPoolClosed,
	// ErrServerUnavailable).
	StatusUnavailable Status = "unavailable"
)

const waitWindow = 1024

// waitStats keeps the sum and count of acquire waits and a ring of the most
// recent ones for percentiles. Adding is O(1) and allocation-free: it runs
// on every Acquire, under the pool's lock.
type waitStats struct {
	ring  [waitWindow]int64
	count uint64
	sum   int64
}

func (w *waitStats) add(d time.Duration) {
	w.ring[w.count%waitWindow] = int64(d)
	w.count++
	w.sum += int64(d)
}

func (w *waitStats) recent() []int64 {
	return w.ring[:min(w.count, waitWindow)]
}

func percentile(v []int64, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return time.Duration(v[int(q*float64(len(v)-1)+0.5)])
}
