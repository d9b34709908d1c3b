package mcpool

import (
	"context"
	"fmt"

	"github.com/sony/gobreaker/v2"
)

// What Group and Keyed need from a Pool, and nothing else uses: fail-fast
// for a group's attempt on one replica, whether the pool takes calls, and
// whether a keyed pool may be evicted. They read the pool's state under
// p.mu as the rest of the pool does; the Group and Keyed call only these
// and the Pool's exported methods.

// failFastKey marks the context of a Group's attempt on one replica while
// another replica is left to try. Under it, Acquire on a pool that has no
// session and whose connects are failing returns a *ConnectError at once
// instead of queuing for a reconnect, so that the call moves to another
// replica within the caller's deadline. Without the mark (a lone pool, or
// the group's last replica) callers wait through a restart as before.
type failFastKey struct{}

// failFastLocked returns the error for a marked caller of Acquire that would
// queue on a pool with no session whose connects are failing, and nil when
// it should queue. It is called only on Acquire's slow path.
func (p *Pool) failFastLocked(ctx context.Context) error {
	if len(p.sessions) > 0 || p.failures == 0 || ctx.Value(failFastKey{}) == nil {
		return nil
	}
	return p.noSessionLocked()
}

// failFastWait is failFastLocked for a caller waiting for something other
// than Acquire (the catalog's shared fetch): its error now, or a channel
// closed when a connect next ends, to check again then. Callers without
// the mark get neither (a nil channel is never ready).
func (p *Pool) failFastWait(ctx context.Context) (<-chan struct{}, error) {
	if ctx.Value(failFastKey{}) == nil {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.failFastLocked(ctx); err != nil {
		return nil, err
	}
	return p.connectEvent, nil
}

// failFastWaitersLocked fails the marked waiters when a connect has just
// failed and no session is left: a caller that queued while the pool's
// last session died (before any reconnect had failed) goes to another
// replica as soon as the reconnect fails.
func (p *Pool) failFastWaitersLocked() {
	if len(p.sessions) > 0 || p.waiters.Len() == 0 {
		return
	}
	var err error
	for e := p.waiters.Front(); e != nil; {
		next := e.Next()
		if w := e.Value.(*waiter); w.failFast {
			if err == nil {
				err = p.noSessionLocked()
			}
			p.waiters.Remove(e)
			w.elem = nil
			w.err = err
			w.ready <- Lease{}
		}
		e = next
	}
}

// noSessionLocked is a marked caller's error: a *ConnectError (errors.Is
// ErrConnectFailed) that wraps the last connect's failure.
func (p *Pool) noSessionLocked() error {
	return p.lastFailureLocked(func(last error) error { // pool.go
		return fmt.Errorf("no session: %d connects failed in a row; the last: %w", p.failures, last)
	})
}

// failingError is the error of a pool whose Start was stopped once it was
// failing (Group.Update): a *ConnectError that wraps the last failure.
func (p *Pool) failingError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.noSessionLocked()
}

// waitFailing returns once the pool has no session and a connect has
// failed, or when ctx ends.
func (p *Pool) waitFailing(ctx context.Context) {
	for {
		p.mu.Lock()
		failing := failing(len(p.sessions), p.failures, p.closed) // Stats.Failing
		ev := p.connectEvent
		p.mu.Unlock()
		if failing {
			return
		}
		select {
		case <-ev:
		case <-ctx.Done():
			return
		}
	}
}

// takesCalls reports whether the pool can take a call now: it is open, its
// breaker is not open, and it has a session that is neither suspect nor
// being probed. One short lock, no I/O.
func (p *Pool) takesCalls() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.breaker != nil && p.breaker.State() == gobreaker.StateOpen {
		return false
	}
	for _, s := range p.sessions {
		if !s.suspect && !s.probing {
			return true
		}
	}
	return false
}

// closeFinished reports whether the pool's teardown has finished.
func (p *Pool) closeFinished() bool {
	select {
	case <-p.closeDone:
		return true
	default:
		return false
	}
}

// busy reports whether the pool has leases out or callers waiting.
func (p *Pool) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inFlight > 0 || p.waiters.Len() > 0
}
