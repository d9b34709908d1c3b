package mcpool

import (
	"container/list"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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

	// breaker opens after FailureThreshold connect failures in a row. It has
	// its own lock and does no I/O, so it is consulted under mu.
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]

	// mu guards the fields below. Nothing under it does I/O or blocks.
	mu         sync.Mutex
	sessions   []*session // taking calls, oldest first: selection prefers the oldest
	leaving    []*session // dead or retiring, still finishing calls
	connecting int        // connects in flight, counted against MaxSessions
	waiters    list.List  // of *waiter, first in first out
	inFlight   int        // leases held across the pool
	closed     bool
	drained    chan struct{} // closed when inFlight reaches 0 after Close began
	gen        uint64        // lease generations; a stale lease never matches
	nextID     uint64
	failures   int       // connects failed in a row
	lastErr    error     // the latest connect failure
	lost       int       // dead sessions not yet replaced: their replacements are reconnects
	nextExpiry time.Time // the earliest session expiry; zero when none
	waits      waitStats // acquire waits
	// version is the negotiated protocol version that later sessions pin.
	version string

	bg        sync.WaitGroup // connects, probes, watchers, closes: Close waits for them
	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error

	catalog catalog
	// store shares the catalog with other processes; nil without a
	// CatalogStore.
	store *storeGate
	// breakerNote holds the breaker's latest state change until the
	// maintainer logs it outside the lock.
	breakerNote atomic.Pointer[string]
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
}

// session is one MCP session and its bookkeeping. id, cs, created, expires,
// ctx and cancel never change; the rest is guarded by Pool.mu.
type session struct {
	id      uint64
	cs      *mcp.ClientSession
	created time.Time
	expires time.Time // zero: no lifetime limit
	// ctx is cancelled when the pool aborts the session's calls (Close after
	// DrainTimeout). Calls made through Pool helpers run under it.
	ctx    context.Context
	cancel context.CancelFunc
	// connCancel ends the context the transport was connected with. SSE
	// and the streamable GET stream and DELETE keep using that context, so
	// it lives until the session is closed.
	connCancel context.CancelFunc

	inFlight  int
	lastUsed  time.Time
	lastProbe time.Time
	slots     []uint64 // generation of the lease holding each slot; 0 = free
	free      []int32  // free slot indexes, used as a stack

	// served is set, without the lock, when a call on the session succeeds.
	served atomic.Bool
	// proven: the session served a call, passed a probe or lived
	// provenAfter. Until then its connect is not counted a success: a
	// server that accepts initialize and drops the session at once must
	// meet backoff and the breaker, not a reconnect loop.
	proven bool
	report func(error) // the breaker's verdict on its connect, until proven

	probing bool // a probe owns the session: it takes no calls meanwhile
	suspect bool // a call failed oddly: probe as soon as it is idle
	leaving bool // dead or retiring: out of sessions, no new calls
	closing bool // its Close has been started

	closeReason string // why it left service, for observers (observe.go)
}

func (s *session) idleSince() time.Time {
	if s.lastProbe.After(s.lastUsed) {
		return s.lastProbe
	}
	return s.lastUsed
}

// waiter is a caller queued for room. ready has room for one lease so that a
// hand-off under the lock never blocks.
type waiter struct {
	ready chan Lease
	start time.Time
	err   error         // set, under mu, before a failed waiter's hand-off
	elem  *list.Element // nil once served, failed or given up
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
	p := &Pool{cfg: s, closeDone: make(chan struct{}), version: s.ProtocolVersion}
	p.log = logger{s.Logger}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.dialer = newDialer(s, p.onListChanged)
	p.initObserve() // observe.go
	p.counters.started = time.Now()
	p.catalog.init(s.cacheTTL)
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

// Start connects MinSessions sessions concurrently and waits for them. It
// returns nil if at least one connected (failures are logged, counted in
// Stats, and retried in the background with backoff), the first
// [*ConnectError] if none did, ErrPoolClosed after Close, or ctx's error if
// ctx ends first; connects still running then go on in the background and
// their sessions join the pool. Start is optional: Acquire connects on
// demand.
func (p *Pool) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPoolClosed
	}
	n := p.cfg.MinSessions - len(p.sessions) - p.connecting
	results := make(chan error, max(n, 0))
	for range n {
		p.startConnectLocked(results, false)
	}
	p.mu.Unlock()

	var firstErr error
	ok := n <= 0
	for range n {
		select {
		case err := <-results:
			if err == nil {
				ok = true
			} else if firstErr == nil {
				firstErr = err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !ok {
		return firstErr
	}
	return nil
}

// Acquire takes room for one call on a session: the oldest session with
// fewer than MaxCallsPerSession calls. If every session is full it connects a
// new one (while under MaxSessions) on the pool's context and queues the
// caller, first in first out, until room appears, ctx ends or AcquireTimeout
// passes.
//
// Errors: ErrPoolClosed; an [*ExhaustedError] (errors.Is ErrPoolExhausted,
// and the context error) when the wait ends first; an [*UnavailableError]
// (ErrServerUnavailable) at once while the circuit breaker is open and no
// session is left (a caller already waiting gets it too when the breaker
// opens); with the breaker disabled (FailureThreshold < 0), a
// [*ConnectError] when the pool has no session and the connect it needed
// failed.
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
			w := &waiter{ready: make(chan Lease, 1), start: start}
			w.elem = p.waiters.PushBack(w)
			p.growLocked()
			p.mu.Unlock()
			return p.wait(ctx, w)
		}
		if p.cfg.ProbeOnAcquire > 0 && s.inFlight == 0 && start.Sub(s.idleSince()) >= p.cfg.ProbeOnAcquire {
			// Probe it first, outside the lock, within the caller's
			// time; then choose again.
			s.probing = true
			p.mu.Unlock()
			p.probe(ctx, s)
			if err := ctx.Err(); err != nil {
				return Lease{}, err
			}
			continue
		}
		l := p.leaseLocked(s, start)
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
	e := &ExhaustedError{
		Sessions: len(p.sessions), Connecting: p.connecting, MaxSessions: p.cfg.MaxSessions,
		CallsInFlight: p.inFlight, Waiters: p.waiters.Len(),
		Waited: int64(time.Since(w.start)), Cause: cause,
	}
	p.mu.Unlock()
	p.counters.exhausted.Add(1)
	return Lease{}, e
}

// pickLocked returns the oldest session with room, or nil. Expired sessions
// (kept only until their replacement arrives) come last.
func (p *Pool) pickLocked(now time.Time) *session {
	var expired *session
	for _, s := range p.sessions {
		// A suspect session (a call timed out or failed in transit) takes
		// no new call until its calls drain and a probe clears it: a
		// stalled session kept busy would otherwise never be probed.
		if s.probing || s.suspect || s.inFlight >= p.cfg.MaxCallsPerSession {
			continue
		}
		if !s.expires.IsZero() && now.After(s.expires) {
			if expired == nil {
				expired = s
			}
			continue
		}
		return s
	}
	return expired
}

func (p *Pool) leaseLocked(s *session, start time.Time) Lease {
	slot := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	p.gen++
	s.slots[slot] = p.gen
	s.inFlight++
	p.inFlight++
	now := time.Now()
	s.lastUsed = now
	p.waits.add(now.Sub(start))
	return Lease{p: p, s: s, slot: slot, gen: p.gen}
}

// growLocked starts connects while the waiters outnumber the room that
// connects already in flight will bring, within MaxSessions.
func (p *Pool) growLocked() {
	for p.waiters.Len() > p.connecting*p.cfg.MaxCallsPerSession && p.canConnectLocked(len(p.sessions)) {
		if !p.startConnectLocked(nil, false) {
			return
		}
	}
}

// replenishLocked keeps MinSessions and serves waiters.
func (p *Pool) replenishLocked() {
	for len(p.sessions)+p.connecting < p.cfg.MinSessions && p.canConnectLocked(len(p.sessions)) {
		if !p.startConnectLocked(nil, false) {
			break
		}
	}
	p.growLocked()
}

// canConnectLocked reports whether one more connect may start, given how
// many sessions count against MaxSessions.
func (p *Pool) canConnectLocked(counted int) bool {
	if p.closed || counted+p.connecting >= p.cfg.MaxSessions {
		return false
	}
	// While connects fail, one at a time: no reconnect storm.
	if p.failures > 0 && p.connecting > 0 {
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
// and nothing can serve: no session and no connect in flight.
func (p *Pool) unavailableLocked() error {
	if p.breaker == nil || len(p.sessions) > 0 || p.connecting > 0 || p.breaker.State() != gobreaker.StateOpen {
		return nil
	}
	return &UnavailableError{Failures: p.failures, RetryIn: p.breakerRetryIn(), Cause: p.lastErr}
}

// startConnectLocked connects one session in the background on the pool's
// context. The result, if asked for, goes to done. A connect that follows
// failures first sleeps a backoff with full jitter. It reports false when
// the breaker refused the connect: loops that start connects must stop.
func (p *Pool) startConnectLocked(done chan<- error, renewal bool) bool {
	var report func(error)
	if p.breaker != nil {
		var err error
		report, err = p.breaker.Allow()
		if err != nil {
			// Open, or half-open with its one probe already out.
			if done != nil {
				done <- &UnavailableError{Failures: p.failures, RetryIn: p.breakerRetryIn(), Cause: p.lastErr}
			}
			return false
		}
	}
	p.connecting++
	version := p.version
	var delay time.Duration
	if p.failures > 0 {
		delay = backoff(p.cfg.BackoffInitial, p.cfg.BackoffMax, p.failures)
	}
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		var c conn
		err := sleepCtx(p.ctx, delay)
		if err == nil {
			dialStart := time.Now()
			c, err = p.dialer.dial(p.ctx, version, p.cfg.ConnectTimeout, &p.bg)
			p.observeConnect(dialStart, err) // observe.go
		}
		if report != nil && err != nil {
			if p.ctx.Err() != nil {
				report(nil) // closing, not a server failure
			} else {
				report(err)
			}
		}
		// A connect that worked is reported to the breaker only once its
		// session proves itself (see proveLocked).
		p.connected(c, err, renewal, report)
		if done != nil {
			done <- err
		}
	}()
	return true
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
	if server := s.server(); server != p.server {
		if p.server != "" {
			// The server was upgraded or replaced behind the same address:
			// what it listed before may be stale.
			p.log.debug("server changed: catalog invalidated", "from", p.server, "to", server)
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
	p.log.debug("session connected", "session", s.id, "protocol", s.version())
}

func (p *Pool) connectFailed(err error) {
	if p.ctx.Err() != nil {
		// Close cut the connect short: not the server's failure.
		p.mu.Lock()
		p.connecting--
		p.mu.Unlock()
		return
	}
	p.counters.errors.Add(1)
	p.counters.connectErrors.Add(1)
	p.log.warn("connect failed", "target", p.dialer.target, "error", err)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connecting--
	if p.closed {
		return
	}
	p.failures++
	p.lastErr = err
	if len(p.sessions) > 0 || p.connecting > 0 {
		return
	}
	if uerr := p.unavailableLocked(); uerr != nil {
		// The breaker just opened: tell the waiters now rather than let them
		// wait out their timeouts.
		p.failWaitersLocked(uerr)
		return
	}
	if p.breaker == nil && p.waiters.Len() > 0 {
		// No breaker to stop a storm: waiters get the cause at once.
		p.failWaitersLocked(err)
		return
	}
	p.replenishLocked() // the next attempt, after a backoff
}

func (p *Pool) newSession(c conn) *session {
	now := time.Now()
	s := &session{cs: c.cs, connCancel: c.cancel, created: now, lastUsed: now}
	if lt := p.cfg.MaxSessionLifetime; lt > 0 {
		// Jitter fixed at creation (pgx#1437): sessions made together do
		// not all retire together.
		s.expires = now.Add(lt - rand.N(lt/10+1))
	}
	s.ctx, s.cancel = context.WithCancel(p.ctx)
	s.slots = make([]uint64, p.cfg.MaxCallsPerSession)
	s.free = make([]int32, p.cfg.MaxCallsPerSession)
	for i := range s.free {
		// Reversed so that slot 0 is taken first: it reads better in a debugger.
		s.free[i] = int32(len(s.free) - 1 - i)
	}
	return s
}

func (s *session) server() string {
	if ir := s.cs.InitializeResult(); ir != nil && ir.ServerInfo != nil {
		return ir.ServerInfo.Name + " " + ir.ServerInfo.Version
	}
	return ""
}

func (s *session) version() string {
	if ir := s.cs.InitializeResult(); ir != nil {
		return ir.ProtocolVersion
	}
	return ""
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
		w.ready <- p.leaseLocked(s, w.start)
	}
}

func (p *Pool) failWaitersLocked(err error) {
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
	s.inFlight--
	s.lastUsed = time.Now()
	p.inFlight--
	switch {
	case p.closed:
		if p.inFlight == 0 && p.drained != nil {
			close(p.drained)
			p.drained = nil
		}
	case s.leaving:
		if s.inFlight == 0 {
			p.closeLeavingLocked(s)
		}
	case !s.proven && s.served.Load():
		p.proveLocked(s)
	case s.suspect && s.inFlight == 0:
		p.startProbeLocked(s)
	case !s.expires.IsZero() && s.lastUsed.After(s.expires):
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
