package mcpool

import (
	"context"
	"errors"
	"fmt"
)

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
	last := p.lastErr
	var ce *ConnectError
	if errors.As(last, &ce) {
		last = ce.Cause
	}
	return &ConnectError{Target: p.dialer.target, Cause: fmt.Errorf("no session: %d connects failed in a row; the last: %w", p.failures, last)}
}
