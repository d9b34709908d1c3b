package mcpool

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Pool keeps MCP client sessions to one server warm and shares them between
// callers. One session carries up to MaxCallsPerSession calls at once
// (JSON-RPC multiplexes them by id), so the pool counts calls per session
// instead of lending sessions out exclusively.
//
// Create a Pool with [New], warm it with [Pool.Start], take room on a session
// with [Pool.Acquire] (or use [Pool.CallTool]), and shut it down with
// [Pool.Close]. All methods are safe for concurrent use.
type Pool struct {
	cfg    *settings
	dialer *dialer
	log    logger

	// ctx is the pool's own context: connects, probes and catalog fetches
	// run on it, so that a caller who gives up never wastes a half-made
	// session.
	ctx    context.Context
	cancel context.CancelFunc

	// breaker opens once connects have failed FailureThreshold times in a
	// row for BreakerOpenAfter (see health.go). It has its own lock and does
	// no I/O, so it is consulted under mu.
	breaker *breaker

	// mu guards the fields below. Nothing under it does I/O or blocks.
	mu         sync.Mutex
	sessions   []*session // taking calls, oldest first: selection prefers the oldest
	leaving    []*session // dead or retiring, still finishing calls
	connecting int        // connects in flight (backing off or dialling), counted against MaxSessions
	dialing    int        // those of them past their backoff and the breaker
	waiters    list.List  // of *waiter, first in first out
	inFlight   int        // leases held across the pool
	closed     bool
	drained    chan struct{} // closed when inFlight reaches 0 after Close began
	gen        uint64        // lease generations; a stale lease never matches
	nextID     uint64
	failures   int // connects failed in a row
	// youngDeaths counts the sessions in a row that died before they
	// proved themselves (session.go); they steepen the backoff (health.go).
	youngDeaths int
	lastErr     error // the latest connect failure
	// connectEvent is closed (and replaced) whenever a connect ends and
	// when Close begins: Start waits on it.
	connectEvent chan struct{}
	lost         int       // dead sessions not yet replaced: their replacements are reconnects
	nextExpiry   time.Time // the earliest session expiry; zero when none
	waits        waitStats // acquire waits
	// version is the negotiated protocol version that later sessions pin.
	version string
	// subs maps each URI subscribed with Subscribe to its subscription;
	// healing says the healer that re-subscribes orphaned ones runs
	// (subscriptions.go).
	subs    map[string]*subscription
	healing bool

	bg        sync.WaitGroup // connects, probes, watchers, closes: Close waits for them
	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error

	catalog catalog
	// store shares the catalog with other processes; nil without a
	// CatalogStore.
	store *storeGate
	// breakerNote holds the breaker's latest state change, and recovered
	// how many connects had failed before one worked, until the maintainer
	// logs them outside the lock.
	breakerNote atomic.Pointer[string]
	recovered   atomic.Int64
	// server is "name version" of the server the first session reported;
	// a later session reporting another empties the catalog.
	server string
	counters

	// Observation (observe.go): observers, lease tracking, health score.
	obs    atomic.Pointer[observer]
	obsMu  sync.Mutex // serializes Observe
	leases *leaseTracker
	health healthTracker
	target target

	// limit is the adaptive per-session call limit (limit.go), under mu.
	limit sessionLimit
	// stall fires while callers wait, to let the limit grow for calls that
	// run long (see stallCheck); stallArmed, under mu, says it is set.
	stall      *time.Timer
	stallArmed bool
}

// waiter is a caller queued for room. ready has room for one lease so that a
// hand-off under the lock never blocks.
type waiter struct {
	ready chan Lease
	start time.Time
	err   error         // set, under mu, before a failed waiter's hand-off
	elem  *list.Element // nil once served, failed or given up
	// failFast: a Group's call that another replica can take; failed as
	// soon as a connect fails with no session left (pool_group.go).
	failFast bool
}

// New validates cfg and returns a pool that has not connected yet: call
// [Pool.Start] to connect MinSessions, or let the first Acquire connect on
// demand. A bad field yields an [*ConfigError] (errors.Is ErrInvalidConfig)
// naming it. New does no I/O; it starts the pool's maintenance goroutine
// (health checks, lifetimes, idle retirement, replacement), which Close
// stops, so every pool must be closed.
func New(cfg Config) (*Pool, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: s, closeDone: make(chan struct{}), version: s.ProtocolVersion, connectEvent: make(chan struct{})}
	p.log = logger{s.Logger}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.dialer = newDialer(s, p.onListChanged)
	if p.dialer.raw != nil {
		p.dialer.raw.ctx = p.ctx
	}
	p.initObserve() // observe.go
	p.counters.started = time.Now()
	p.catalog.init(s.cacheTTL)
	p.limit.init(s.MaxCallsPerSession)
	p.stall = time.AfterFunc(time.Hour, p.stallCheck)
	p.stall.Stop()
	p.breaker = newBreaker(s, func(from, to gobreaker.State) {
		note := to.String() + " (was " + from.String() + ")"
		p.breakerNote.Store(&note)
	})
	p.bg.Add(1)
	go p.maintain()
	if s.CatalogStore != nil {
		p.store = &storeGate{store: s.CatalogStore, base: "catalog:" + s.CatalogKey}
		p.subscribeStore()
	}
	return p, nil
}

// Acquire takes room for one call on a session. Among the sessions with
// room it picks the one carrying the fewest calls, the oldest on a tie: a
// lone caller always gets the oldest session (spare ones go idle and
// retire), while many concurrent calls spread across sessions. Once every
// session carries a call, it connects in the background, on the pool's
// context, as many sessions as the calls in flight and waiting need at
// the per-session limit, within MaxSessions (a session is a process for a
// stdio server, often one core: see growLocked); until they arrive a
// caller may share a session with one other call rather than wait. If
// every session is full it queues the caller, first in first out, until
// room appears, ctx ends or AcquireTimeout passes. A session is full at
// its adaptive limit: one call, as exclusive lending, until the pool has
// MaxSessions sessions and callers still wait; then up to
// MaxCallsPerSession while more calls at once raise calls/s (calls that
// wait on the network, a disk, a model), so that callers queue here,
// served in order, rather than inside the server, which serves them in no
// order (see Stats.CallsPerSessionLimit).
//
// While the server is unreachable (a restart), callers wait, within ctx and
// AcquireTimeout, while connects back off; they fail fast only once the
// circuit breaker opens (see Config.BreakerOpenAfter).
//
// Errors: ErrPoolClosed; an [*ExhaustedError] (errors.Is ErrPoolExhausted,
// and the context error) when the wait ends first; when it ends while the
// pool has no session and connects are failing, a [*ConnectError] matching
// the context error and wrapping the last failure instead; an
// [*UnavailableError] (ErrServerUnavailable) at once while the circuit
// breaker is open and no session is left (a caller already waiting gets it
// too when the breaker opens); with the breaker disabled (FailureThreshold
// < 0), a [*ConnectError] when the pool has no session and the connect it
// needed failed.
//
// Every successful Acquire must be followed by exactly one [Lease.Release].
func (p *Pool) Acquire(ctx context.Context) (l Lease, err error) {
	if o := p.obs.Load(); o != nil { // observe.go: metrics, traces, leak detection
		ctx = o.acquireStart(ctx)
		defer o.acquireEnd(ctx, time.Now(), &l, &err)
	}
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	start := time.Now()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return Lease{}, ErrPoolClosed
		}
		if !p.nextExpiry.IsZero() && start.After(p.nextExpiry) {
			p.expireLocked(start)
		}
		s := p.pickLocked(start)
		if s == nil {
			if err := p.unavailableLocked(); err != nil {
				p.mu.Unlock()
				p.counters.unavailable.Add(1)
				return Lease{}, err
			}
			if err := p.failFastLocked(ctx); err != nil { // a Group's call another replica can take
				p.mu.Unlock()
				return Lease{}, err
			}
			w := &waiter{ready: make(chan Lease, 1), start: start, failFast: ctx.Value(failFastKey{}) != nil}
			w.elem = p.waiters.PushBack(w)
			if p.onlyLimitGivesRoomLocked() {
				p.limit.waited = true
			}
			p.growLocked()
			p.armStallLocked(start)
			p.mu.Unlock()
			return p.wait(ctx, w)
		}
		if p.cfg.ProbeOnAcquire > 0 && s.inFlight == 0 && start.Sub(s.idleSince()) >= p.cfg.ProbeOnAcquire {
			// Probe it first, outside the lock, within the caller's
			// time; then choose again.
			s.beginProbeLocked()
			p.mu.Unlock()
			p.probe(ctx, s)
			if err := ctx.Err(); err != nil {
				return Lease{}, err
			}
			continue
		}
		// The caller found room at once: no clock read for a wait
		// that did not happen (on a VM a read costs tens of ns, a
		// quarter of this path).
		l := p.leaseLocked(s, start, start)
		if s.inFlight > 1 {
			// Every session carries a call: connect what the demand
			// needs, without making this caller wait.
			p.growLocked()
		}
		p.mu.Unlock()
		return l, nil
	}
}

func (p *Pool) wait(ctx context.Context, w *waiter) (Lease, error) {
	var timeout <-chan time.Time
	if p.cfg.AcquireTimeout > 0 {
		t := time.NewTimer(p.cfg.AcquireTimeout)
		defer t.Stop()
		timeout = t.C
	}
	var cause error
	select {
	case l := <-w.ready:
		if w.err != nil {
			return Lease{}, w.err
		}
		return l, nil
	case <-ctx.Done():
		cause = ctx.Err()
	case <-timeout:
		cause = context.DeadlineExceeded
	}
	p.mu.Lock()
	if w.elem != nil {
		p.waiters.Remove(w.elem)
		w.elem = nil
	} else {
		// Served or failed while we gave up: the hand-off is already in
		// ready. Room we no longer want goes to the next waiter.
		p.mu.Unlock()
		l := <-w.ready
		if w.err != nil {
			return Lease{}, w.err
		}
		l.Release()
		p.mu.Lock()
	}
	if err := p.gaveUpLocked(w.start, cause); err != nil {
		p.mu.Unlock()
		p.counters.exhausted.Add(1)
		return Lease{}, err
	}
	e := &ExhaustedError{
		Sessions: len(p.sessions), Connecting: p.connecting, MaxSessions: p.cfg.MaxSessions,
		CallsInFlight: p.inFlight, Waiters: p.waiters.Len(),
		Waited: int64(time.Since(w.start)), Cause: cause,
	}
	p.mu.Unlock()
	p.counters.exhausted.Add(1)
	return Lease{}, e
}

// gaveUpLocked is the error of a caller that began waiting at start and
// whose ctx ended (cause) while the pool had no session and its connects
// were failing: not a full pool, but a server not answering (restarting,
// or gone and the breaker not open yet), and the error says so. It returns
// nil when that is not the case.
func (p *Pool) gaveUpLocked(start time.Time, cause error) error {
	if len(p.sessions) > 0 || p.failures == 0 {
		return nil
	}
	what := "no session"
	if waited := time.Since(start); waited >= time.Millisecond { // 0: ctx had ended before the wait
		what += fmt.Sprintf(" after waiting %v", waited.Round(time.Millisecond))
	}
	return p.stillFailingLocked(what, cause)
}

// stillFailingLocked is the error of a caller whose ctx ended while
// connects were failing: a *ConnectError that matches cause (the context
// error) and wraps the last failure's cause.
func (p *Pool) stillFailingLocked(what string, cause error) error {
	return p.lastFailureLocked(func(last error) error {
		return fmt.Errorf("%s (%w), %d connects failed in a row; the last: %w", what, cause, p.failures, last)
	})
}

// lastFailureLocked is a *ConnectError whose cause is wrap of the last
// connect failure's cause, keeping how a stdio server exited and the end
// of its stderr, when it did: what a person needs to fix it.
func (p *Pool) lastFailureLocked(wrap func(last error) error) error {
	last := p.lastErr
	var ce *ConnectError
	out := &ConnectError{Target: p.dialer.target}
	if errors.As(last, &ce) {
		last, out.Exit, out.Stderr = ce.Cause, ce.Exit, ce.Stderr
	}
	out.Cause = wrap(last)
	return out
}

// pickLocked returns the session with room that carries the fewest calls,
// the oldest on a tie, or nil. Expired sessions (kept only until their
// replacement arrives) come last.
func (p *Pool) pickLocked(now time.Time) *session {
	var best, expired *session
	room := p.limit.n
	if room < 2 && len(p.sessions) < p.cfg.MaxSessions {
		// Below MaxSessions a caller shares a session (two calls each)
		// rather than wait for a connect: a stdio server takes from a
		// fraction of a second to seconds to start.
		room = min(2, p.limit.max)
	}
	for _, s := range p.sessions {
		// A suspect session (a call timed out or failed in transit) takes
		// no new call until its calls drain and a probe clears it: a
		// stalled session kept busy would otherwise never be probed.
		if !s.takesCalls() || s.inFlight >= room {
			continue
		}
		if !s.expires.IsZero() && now.After(s.expires) {
			if expired == nil {
				expired = s
			}
			continue
		}
		if s.inFlight == 0 {
			return s // none carries fewer, and it is the oldest such
		}
		if best == nil || s.inFlight < best.inFlight {
			best = s
		}
	}
	if best == nil {
		return expired
	}
	return best
}

// onlyLimitGivesRoomLocked reports whether more room can come only from
// more calls per session: no connect is under way, and MaxSessions are
// connected (or connects are failing).
func (p *Pool) onlyLimitGivesRoomLocked() bool {
	return p.connecting == 0 && (len(p.sessions) >= p.cfg.MaxSessions || p.failures > 0)
}

// armStallLocked sets the stall timer, if it is not set, while the
// per-session limit can grow: one timer for the pool, not one per waiter,
// so that waiting costs a caller no more than a channel receive.
func (p *Pool) armStallLocked(now time.Time) {
	if p.stallArmed || p.limit.n >= p.limit.max {
		return
	}
	p.stallArmed = true
	p.stall.Reset(p.limit.stallIn(now))
}

// stallCheck runs when the stall timer fires: when callers still wait, no
// connect is under way and no lease was released for the stall's time,
// the limit grows (calls that run long need the room the sessions have);
// while callers wait, the timer is set again.
func (p *Pool) stallCheck() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stallArmed = false
	if p.closed || p.waiters.Len() == 0 {
		return
	}
	now := time.Now()
	if p.inFlight > 0 && p.connecting == 0 && p.limit.stalled(now) {
		p.serveWaitersLocked()
	}
	if p.waiters.Len() > 0 {
		p.armStallLocked(now)
	}
}

// leaseLocked lends room on s to a caller that began to acquire at start
// and gets it at now.
func (p *Pool) leaseLocked(s *session, start, now time.Time) Lease {
	slot := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	p.gen++
	s.slots[slot] = p.gen
	s.inFlight++
	p.inFlight++
	s.lastUsed = now
	wait := now.Sub(start)
	p.waits.add(wait)
	p.limit.leased(s.inFlight, wait)
	return Lease{p: p, s: s, slot: slot, gen: p.gen}
}

// growLocked starts connects while the sessions and the connects under way
// fall short of what the demand needs, within MaxSessions: the waiters'
// share of the limit's room, and, while connects succeed, the sessions
// that every call in flight or waiting needs at the limit (a cold pool
// facing N callers connects min(N, MaxSessions) sessions at once, rather
// than one at a time). The callers do not wait for them (below
// MaxSessions they share a session meanwhile); later callers get the new
// sessions. One busy session serializes calls whenever the server handles
// one at a time per session (a single-threaded stdio server is one
// process, one core), so spreading to MaxSessions comes first; at
// MaxSessions the per-session limit decides. While connects fail and no
// session is left, it keeps one spare connect going: a connect killed
// while it initializes (a crash-looping child) must not leave the waiters
// with nothing on the way.
func (p *Pool) growLocked() {
	n := p.limit.n
	need := (p.waiters.Len() + n - 1) / n
	if need > 0 && p.failures > 0 && len(p.sessions) == 0 {
		need++
	}
	if p.failures == 0 {
		demand := p.inFlight + p.waiters.Len()
		need = max(need, min(p.cfg.MaxSessions, (demand+n-1)/n)-len(p.sessions))
	}
	for p.connecting < need && p.canConnectLocked(len(p.sessions)) {
		p.startConnectLocked(false)
	}
}

// replenishLocked keeps MinSessions and serves waiters. While connects
// fail it also keeps one going (after its backoff) even when no session is
// needed: only a connect that proves itself clears the failure, and until
// then the pool neither spreads load nor reports itself healthy.
func (p *Pool) replenishLocked() {
	for len(p.sessions)+p.connecting < p.cfg.MinSessions && p.canConnectLocked(len(p.sessions)) {
		p.startConnectLocked(false)
	}
	p.growLocked()
	if p.failures > 0 && p.connecting == 0 && p.canConnectLocked(len(p.sessions)) {
		p.startConnectLocked(false)
	}
}

// canConnectLocked reports whether one more connect may start, given how
// many sessions count against MaxSessions. While connects fail, every
// connect needed still starts, each after its own backoff: they are
// bounded by MaxSessions, and one killed while it initializes must not
// hold back the rest. Only the half-open breaker's probe goes alone.
func (p *Pool) canConnectLocked(counted int) bool {
	if p.closed || counted+p.connecting >= p.cfg.MaxSessions {
		return false
	}
	if p.breaker == nil {
		return true
	}
	switch p.breaker.State() {
	case gobreaker.StateOpen:
		return false
	case gobreaker.StateHalfOpen:
		return p.connecting == 0 // its one probe connect
	}
	return true
}

// unavailableLocked returns an *UnavailableError when the breaker is open
// and nothing can serve: no session and no connect past the breaker.
// (Connects still backing off will find the breaker open and give up.)
func (p *Pool) unavailableLocked() error {
	if p.breaker == nil || len(p.sessions) > 0 || p.dialing > 0 || p.breaker.State() != gobreaker.StateOpen {
		return nil
	}
	return &UnavailableError{Failures: p.failures, RetryIn: p.breakerRetryIn(), Cause: p.lastErr}
}

// noteConnectOKLocked records a connect that proved itself.
func (p *Pool) noteConnectOKLocked() {
	if p.failures > 0 {
		p.recovered.Store(int64(p.failures))
	}
	p.failures, p.lastErr = 0, nil
}

// noteConnectFailLocked records a failed connect (or a session that died
// before it proved itself).
func (p *Pool) noteConnectFailLocked(err error) {
	p.failures++
	p.lastErr = err
}

// signalLocked wakes whoever waits on connectEvent (Start).
func (p *Pool) signalLocked() {
	close(p.connectEvent)
	p.connectEvent = make(chan struct{})
}

// startConnectLocked connects one session in the background on the pool's
// context. The caller has checked canConnectLocked. A connect that follows
// failures first sleeps a backoff with full jitter (the half-open probe
// does not: the cool-down was its backoff), then asks the breaker, which
// may have opened meanwhile.
func (p *Pool) startConnectLocked(renewal bool) {
	p.connecting++
	delay := p.connectDelayLocked() // health.go
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		if sleepCtx(p.ctx, delay) != nil {
			p.connectAborted()
			return
		}
		var report func(error)
		if p.breaker != nil {
			r, err := p.breaker.Allow()
			if err != nil {
				// Opened while we backed off, or half-open with its
				// one probe already out.
				p.connectAborted()
				return
			}
			report = p.breaker.verdict(r)
		}
		p.mu.Lock()
		p.dialing++
		version := p.version
		p.mu.Unlock()
		dialStart := time.Now()
		c, err := p.cfg.connects.dial(p.ctx, p.dialer, version, p.cfg.ConnectTimeout, p.cfg.ConnectQueueWait, &p.bg, &dialStart)
		p.observeConnect(dialStart, err) // observe.go
		if report != nil && err != nil {
			if p.ctx.Err() != nil || errors.Is(err, ErrConnectQueueFull) {
				report(nil) // closing, or backpressure: not a server failure
			} else {
				report(err)
			}
		}
		// A connect that worked is reported to the breaker only once its
		// session proves itself (see proveLocked).
		p.connected(c, err, renewal, report)
	}()
}

// connectAborted ends a connect that never dialled (Close, or the breaker
// refused it after its backoff).
func (p *Pool) connectAborted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connecting--
	p.signalLocked()
	if p.closed {
		return
	}
	if uerr := p.unavailableLocked(); uerr != nil && p.waiters.Len() > 0 {
		p.failWaitersLocked(uerr)
	}
}

// backoff returns a random delay in [0, min(maxDelay, initial×2^(failures-1))]:
// exponential backoff with full jitter, so that many pools retrying the same
// server spread out.
func backoff(initial, maxDelay time.Duration, failures int) time.Duration {
	ceiling := initial << min(failures-1, 30)
	if ceiling <= 0 || ceiling > maxDelay {
		ceiling = maxDelay
	}
	return rand.N(ceiling + 1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connected adds a new session, or records a failed connect, and serves
// waiters.
func (p *Pool) connected(c conn, err error, renewal bool, report func(error)) {
	if err != nil {
		p.connectFailed(err)
		return
	}
	p.counters.created.Add(1)
	s := p.newSession(c)
	s.report = report
	p.mu.Lock()
	p.connecting--
	p.dialing--
	p.signalLocked()
	if p.closed {
		p.mu.Unlock()
		if report != nil {
			report(nil)
		}
		p.log.debug("session connected after Close: closing it")
		p.closeSession(s)
		return
	}
	p.nextID++
	s.id = p.nextID
	if p.version == "" {
		p.version = s.version()
	}
	var changedFrom, changedTo string // logged after the lock
	if server := s.server(); server != p.server {
		if p.server != "" {
			// The server was upgraded or replaced behind the same address:
			// what it listed before may be stale.
			changedFrom, changedTo = p.server, server
			p.catalog.invalidateAll()
		}
		p.server = server
	}
	if p.lost > 0 && !renewal {
		p.lost--
		p.counters.reconnects.Add(1)
	}
	p.sessions = append(p.sessions, s)
	if !s.expires.IsZero() && (p.nextExpiry.IsZero() || s.expires.Before(p.nextExpiry)) {
		p.nextExpiry = s.expires
	}
	p.watch(s)
	if !p.nextExpiry.IsZero() {
		p.expireLocked(time.Now()) // a renewal may let an expired session go
	}
	p.serveWaitersLocked()
	p.mu.Unlock()
	if changedTo != "" {
		p.log.debug("server changed: catalog invalidated", "from", changedFrom, "to", changedTo)
	}
	p.log.debug("session connected", "session", s.id, "protocol", s.version())
}

// logConnectFailed logs a failed connect: the first of a run (first) at
// warning level; the retries that follow (several a second while backing
// off, one per cool-down once the breaker is open) at debug level, until
// one works (logged then: logRecovery). n counts the run's failures.
func (p *Pool) logConnectFailed(err error, first bool, n int) {
	switch {
	case errors.Is(err, ErrConnectQueueFull):
		p.log.debug("connect gave up its place in the queue", "target", p.dialer.target, "error", err)
	case first && errors.Is(err, ErrMisconfigured):
		p.log.warn("connect failed, and retrying will not cure it: fix the server or its config (further failures are logged at debug level)", "target", p.dialer.target, "error", err)
	case first:
		p.log.warn("connect failed (retrying with backoff; further failures are logged at debug level until a connect succeeds)", "target", p.dialer.target, "error", err)
	default:
		p.log.debug("connect failed again", "target", p.dialer.target, "failures", n, "error", err)
	}
}

func (p *Pool) connectFailed(err error) {
	if p.ctx.Err() != nil {
		// Close cut the connect short: not the server's failure.
		p.mu.Lock()
		p.connecting--
		p.dialing--
		p.signalLocked()
		p.mu.Unlock()
		return
	}
	p.counters.errors.Add(1)
	p.counters.connectErrors.Add(1)
	p.mu.Lock()
	// The first failure of a run is news (a give-up in the connect queue
	// is backpressure, not the server's failure, and starts none).
	first := p.failures == 0 || errors.Is(p.lastErr, ErrConnectQueueFull)
	defer p.logConnectFailed(err, first, p.failures+1) // after the unlock
	defer p.mu.Unlock()
	p.connecting--
	p.dialing--
	p.signalLocked()
	if p.closed {
		return
	}
	p.noteConnectFailLocked(err)
	p.failFastWaitersLocked()
	if len(p.sessions) == 0 && p.waiters.Len() > 0 {
		if uerr := p.unavailableLocked(); uerr != nil {
			// The breaker just opened: tell the waiters now rather than
			// let them wait out their timeouts.
			p.failWaitersLocked(uerr)
			return
		}
		if p.breaker == nil && p.connecting == 0 {
			// No breaker to stop a storm: waiters get the cause at once.
			p.failWaitersLocked(err)
			return
		}
	}
	p.replenishLocked() // the next attempts, each after a backoff
}

// serveWaitersLocked hands room to waiters in arrival order.
func (p *Pool) serveWaitersLocked() {
	now := time.Now()
	for p.waiters.Len() > 0 {
		s := p.pickLocked(now)
		if s == nil {
			p.growLocked()
			return
		}
		w := p.waiters.Remove(p.waiters.Front()).(*waiter)
		w.elem = nil
		w.ready <- p.leaseLocked(s, w.start, now)
	}
}

// failWaitersLocked fails every waiter with err. Close calls it as it
// begins, so it also wakes a waiting Start.
func (p *Pool) failWaitersLocked(err error) {
	if err == ErrPoolClosed {
		p.signalLocked()
	}
	if errors.Is(err, ErrServerUnavailable) {
		p.counters.unavailable.Add(uint64(p.waiters.Len()))
	}
	for p.waiters.Len() > 0 {
		w := p.waiters.Remove(p.waiters.Front()).(*waiter)
		w.elem = nil
		w.err = err
		w.ready <- Lease{}
	}
}

// release returns a lease's room. A stale or zero lease is ignored.
func (p *Pool) release(l *Lease) {
	p.mu.Lock()
	s := l.s
	if s.slots[l.slot] != l.gen {
		p.mu.Unlock()
		return
	}
	s.slots[l.slot] = 0
	s.free = append(s.free, l.slot)
	if p.waiters.Len() > 0 && p.onlyLimitGivesRoomLocked() {
		p.limit.waited = true // callers still wait for room: the round saw them
	}
	p.limit.released(time.Now(), p.inFlight, p.waiters.Len(), len(p.sessions))
	s.inFlight--
	s.lastUsed = p.limit.lastRel
	p.inFlight--
	if p.closed {
		if p.inFlight == 0 && p.drained != nil {
			close(p.drained)
			p.drained = nil
		}
	} else if !p.releasedLocked(s) && !s.expires.IsZero() && s.lastUsed.After(s.expires) {
		p.expireLocked(s.lastUsed)
	}
	if !p.closed && p.waiters.Len() > 0 {
		p.serveWaitersLocked()
	}
	p.mu.Unlock()
}

// counters are the pool's monotonic figures, updated without the lock.
type counters struct {
	started       time.Time
	created       atomic.Uint64
	destroyed     atomic.Uint64
	reconnects    atomic.Uint64
	errors        atomic.Uint64
	connectErrors atomic.Uint64
	exhausted     atomic.Uint64
	unavailable   atomic.Uint64
	deaths        atomic.Uint64
	probes        atomic.Uint64
	probeFailures atomic.Uint64
	retired       atomic.Uint64
	retries       atomic.Uint64
	lostCalls     atomic.Uint64
}
