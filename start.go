package mcpool

import (
	"context"
	"errors"
)

// Start connects MinSessions sessions and waits for them: it returns nil
// once MinSessions are connected, or once at least one is and no connect is
// left in flight (the others are retried in the background with backoff).
//
// Like HikariCP's initializationFailTimeout, Start rides out a server that
// is still starting or restarting: a transient failure (connection
// refused, EOF, a child that exited, ConnectTimeout) is retried with
// backoff until a session connects, ctx ends, or the circuit breaker opens
// (connects failing for BreakerOpenAfter, 10s by default). A permanent
// failure fails at once, with an error matching ErrMisconfigured that says
// what was seen: the executable not found or not executable, a stdio
// server writing something other than JSON-RPC on stdout (or a line over
// the 16 MB frame limit) before it answers initialize, an HTTP answer that
// is not MCP (HTML, text/plain, a redirect loop), the server's 401 or 403
// (errors.Is ErrUnauthorized for 401), 404 at the URL. A TokenFunc that
// fails is not permanent: the token source may recover, so the connect is
// retried (its error still matches ErrUnauthorized). Bound Start with ctx
// to wait less.
//
// Errors: ErrPoolClosed if Close has begun or begins while Start waits;
// an [*UnavailableError] (matching ErrServerUnavailable) once the circuit
// breaker is open, which a permanent failure opens at once: it unwraps to
// the last failure, so errors.As(err, &ce) with ce a [*ConnectError] finds
// the failed connect and errors.Is(err, ErrConnectFailed) holds. With the
// breaker disabled (FailureThreshold < 0) the first failure is returned as
// a [*ConnectError] alone. When ctx ends first: a [*ConnectError] that
// matches ctx's error and wraps the last failure, or ctx's error alone if
// no connect had failed yet. Connects still running when Start returns go
// on in the background and their sessions join the pool. Start is
// optional: Acquire connects on demand.
func (p *Pool) Start(ctx context.Context) error {
	failedBefore := p.counters.connectErrors.Load()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ErrPoolClosed
		}
		n := len(p.sessions)
		if n >= p.cfg.MinSessions || (n > 0 && p.connecting == 0) {
			p.mu.Unlock()
			return nil
		}
		if n == 0 && p.lastErr != nil {
			failed := p.counters.connectErrors.Load() > failedBefore
			if uerr := p.unavailableLocked(); uerr != nil {
				p.mu.Unlock()
				return uerr
			}
			// A queue that is full will not empty for waiting here:
			// the caller hears of the backpressure at once.
			if failed && (p.breaker == nil || isPermanent(p.lastErr) || errors.Is(p.lastErr, ErrConnectQueueFull)) {
				err := p.lastErr
				p.mu.Unlock()
				return err
			}
		}
		p.replenishLocked()
		ev := p.connectEvent
		p.mu.Unlock()
		select {
		case <-ev:
		case <-ctx.Done():
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.closed {
				return ErrPoolClosed
			}
			if p.lastErr != nil && len(p.sessions) == 0 && p.counters.connectErrors.Load() > failedBefore {
				return p.stillFailingLocked("Start gave up", ctx.Err())
			}
			return ctx.Err()
		}
	}
}
