package mcpool

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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

	// ctx is the pool's own context: connects and catalog fetches run on it,
	// so that a caller who gives up never wastes a half-made session.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards the fields below. Nothing under it does I/O or blocks.
	mu         sync.Mutex
	sessions   []*session // oldest first: selection prefers the oldest
	connecting int        // connects in flight, counted against MaxSessions
	waiters    list.List  // of *waiter, first in first out
	inFlight   int        // leases held across the pool
	closed     bool
	drained    chan struct{} // closed when inFlight reaches 0 after Close began
	gen        uint64        // lease generations; a stale lease never matches
	nextID     uint64
	lastErr    error     // the latest connect failure, for Start's error
	waits      waitStats // acquire waits, guarded by mu
	// version is the negotiated protocol version that later sessions pin.
	version string

	bg        sync.WaitGroup // connects, closes: Close waits for them
	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error

	catalog toolCatalog
	counters
}

// session is one MCP session and its bookkeeping. All fields but the
// immutable ones are guarded by Pool.mu.
type session struct {
	id      uint64
	cs      *mcp.ClientSession
	created time.Time
	// ctx is cancelled when the pool aborts the session's calls (Close after
	// DrainTimeout). Calls made through Pool helpers run under it.
	ctx    context.Context
	cancel context.CancelFunc

	inFlight int
	lastUsed time.Time
	slots    []uint64 // generation of the lease holding each slot; 0 = free
	free     []int32  // free slot indexes, used as a stack
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
// naming it. New starts no goroutines and does no I/O.
func New(cfg Config) (*Pool, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: s, closeDone: make(chan struct{}), version: s.ProtocolVersion}
	p.log = logger{s.Logger}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.dialer = newDialer(s, p.onToolsChanged)
	p.counters.started = time.Now()
	p.catalog.init(s.cacheTTL)
	return p, nil
}

// Start connects MinSessions sessions concurrently and waits for them. It
// returns nil if at least one connected (failures are logged and counted in
// Stats.Errors), the first [*ConnectError] if none did, ErrPoolClosed after
// Close, or ctx's error if ctx ends first; connects still running then go on
// in the background and their sessions join the pool. Start is optional:
// Acquire connects on demand.
func (p *Pool) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPoolClosed
	}
	n := p.cfg.MinSessions - len(p.sessions) - p.connecting
	results := make(chan error, max(n, 0))
	for range n {
		p.startConnectLocked(results)
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
// and the context error) when the wait ends first; a [*ConnectError] when
// the pool has no session and the connect it needed failed.
//
// Every successful Acquire must be followed by exactly one [Lease.Release].
func (p *Pool) Acquire(ctx context.Context) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	start := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return Lease{}, ErrPoolClosed
	}
	if s := p.pickLocked(); s != nil {
		l := p.leaseLocked(s, start)
		p.mu.Unlock()
		return l, nil
	}
	w := &waiter{ready: make(chan Lease, 1), start: start}
	w.elem = p.waiters.PushBack(w)
	p.growLocked()
	p.mu.Unlock()
	return p.wait(ctx, w)
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

// pickLocked returns the oldest session with room, or nil.
func (p *Pool) pickLocked() *session {
	for _, s := range p.sessions {
		if s.inFlight < p.cfg.MaxCallsPerSession {
			return s
		}
	}
	return nil
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
	for p.waiters.Len() > p.connecting*p.cfg.MaxCallsPerSession &&
		len(p.sessions)+p.connecting < p.cfg.MaxSessions {
		p.startConnectLocked(nil)
	}
}

// startConnectLocked connects one session in the background on the pool's
// context. The result, if asked for, goes to done.
func (p *Pool) startConnectLocked(done chan<- error) {
	p.connecting++
	version := p.version
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		cs, err := p.dialer.dial(p.ctx, version, p.cfg.ConnectTimeout)
		p.connected(cs, err)
		if done != nil {
			done <- err
		}
	}()
}

// connected adds a new session, or records a failed connect, and serves
// waiters.
func (p *Pool) connected(cs *mcp.ClientSession, err error) {
	if err != nil {
		p.counters.errors.Add(1)
		p.counters.connectErrors.Add(1)
		p.log.warn("connect failed", "target", p.dialer.target, "error", err)
		p.mu.Lock()
		p.connecting--
		p.lastErr = err
		// With no session to wait for, waiters would only wait out their
		// timeout: hand them the cause now.
		if len(p.sessions) == 0 && p.connecting == 0 {
			p.failWaitersLocked(err)
		}
		p.mu.Unlock()
		return
	}
	p.counters.created.Add(1)
	s := &session{cs: cs, created: time.Now()}
	s.ctx, s.cancel = context.WithCancel(p.ctx)
	s.slots = make([]uint64, p.cfg.MaxCallsPerSession)
	s.free = make([]int32, p.cfg.MaxCallsPerSession)
	for i := range s.free {
		// Reversed so that slot 0 is taken first: it reads better in a debugger.
		s.free[i] = int32(len(s.free) - 1 - i)
	}
	version := ""
	if ir := cs.InitializeResult(); ir != nil {
		version = ir.ProtocolVersion
	}
	p.mu.Lock()
	p.connecting--
	if p.closed {
		p.mu.Unlock()
		p.log.debug("session connected after Close: closing it")
		p.closeSession(s)
		return
	}
	p.nextID++
	s.id = p.nextID
	if p.version == "" {
		p.version = version
	}
	p.sessions = append(p.sessions, s)
	p.serveWaitersLocked()
	p.mu.Unlock()
	p.log.debug("session connected", "session", s.id, "protocol", version)
}

// serveWaitersLocked hands room to waiters in arrival order.
func (p *Pool) serveWaitersLocked() {
	for p.waiters.Len() > 0 {
		s := p.pickLocked()
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
	if p.closed {
		if p.inFlight == 0 && p.drained != nil {
			close(p.drained)
			p.drained = nil
		}
	} else if p.waiters.Len() > 0 {
		p.serveWaitersLocked()
	}
	p.mu.Unlock()
}

// Close shuts the pool down. New acquires fail with ErrPoolClosed at once and
// waiting callers get it too. Calls in flight may finish until ctx ends or
// DrainTimeout passes; then the calls made through the pool's helpers are
// cancelled (the server gets notifications/cancelled) and every session is
// closed: streamable HTTP sessions are deleted and stdio children are
// stopped (stdin closed, then SIGTERM, then SIGKILL) and reaped.
//
// Close is idempotent and safe from many goroutines: every call waits for
// the same shutdown and returns the same result, which is nil or the first
// error from closing a session. Sessions are closed even if ctx has ended.
func (p *Pool) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { go p.shutdown(ctx) })
	<-p.closeDone
	return p.closeErr
}

func (p *Pool) shutdown(ctx context.Context) {
	defer close(p.closeDone)
	p.mu.Lock()
	p.closed = true
	p.failWaitersLocked(ErrPoolClosed)
	var drained chan struct{}
	if p.inFlight > 0 {
		drained = make(chan struct{})
		p.drained = drained
	}
	p.mu.Unlock()

	if drained != nil {
		t := time.NewTimer(p.cfg.DrainTimeout)
		select {
		case <-drained:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	// Cancelling the pool's context aborts connects in flight and the calls
	// still running through pool helpers; ClientSession.Close would
	// otherwise wait for them.
	p.cancel()
	p.mu.Lock()
	sessions := p.sessions
	p.sessions = nil
	p.mu.Unlock()
	errs := make([]error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() { errs[i] = p.closeSession(s) })
	}
	wg.Wait()
	p.bg.Wait()
	if p.dialer.ownedHTTP != nil {
		p.dialer.ownedHTTP.CloseIdleConnections()
	}
	p.closeErr = errors.Join(errs...)
	p.log.debug("pool closed", "sessions", len(sessions))
}

// closeSession cancels a session's pool-made calls and closes it.
func (p *Pool) closeSession(s *session) error {
	s.cancel()
	err := s.cs.Close()
	p.counters.destroyed.Add(1)
	if err != nil && !errors.Is(err, mcp.ErrConnectionClosed) {
		p.log.debug("closing session", "session", s.id, "error", err)
		return err
	}
	return nil
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
}
