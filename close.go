package mcpool

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Close shuts the pool down. New acquires fail with ErrPoolClosed at once and
// waiting callers get it too. Calls in flight may finish until ctx ends or
// DrainTimeout passes; then the calls made through the pool's helpers are
// cancelled (the SDK sends notifications/cancelled) and every session is
// closed: streamable HTTP sessions are deleted (the SDK bounds that DELETE to
// 5s) and stdio children are stopped (stdin closed, then SIGTERM, then
// SIGKILL, each after Command.TerminateTimeout) and reaped.
//
// Close returns by ctx's deadline whatever the server does. If the teardown
// has not finished when ctx ends, Close returns an error matching ctx's error
// (context.DeadlineExceeded or context.Canceled) and ErrCloseIncomplete, and
// the teardown goes on in the background: the sessions still close and their
// stdio children are still reaped. To wait for it (before a program exits,
// or in a test that checks for leaked goroutines), call Close again with a
// longer ctx.
//
// Close is idempotent and safe from many goroutines: every call waits, as
// long as its own ctx allows, for the same shutdown, and once that is done
// returns the same result: nil or the errors from closing sessions, joined.
// Sessions are closed even if ctx has ended.
func (p *Pool) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		// Mark the pool closed before Close can return, even with ctx
		// ended already: only the drain and the teardown go on in the
		// background.
		drained := p.beginClose()
		go p.shutdown(ctx, drained)
	})
	select {
	case <-p.closeDone:
		return p.closeErr
	default:
	}
	select {
	case <-p.closeDone:
		return p.closeErr
	case <-ctx.Done():
		return &closeIncompleteError{cause: ctx.Err()}
	}
}

// ErrCloseIncomplete is matched by Close's error when ctx ended before the
// teardown finished; the teardown goes on in the background.
var ErrCloseIncomplete = errors.New("mcpool: close incomplete")

type closeIncompleteError struct{ cause error }

// Error says the teardown goes on in the background, and why Close returned.
func (e *closeIncompleteError) Error() string {
	return "mcpool: close incomplete: sessions are still closing in the background (call Close again to wait for them): " + unprefixed(e.cause)
}

// Unwrap returns ErrCloseIncomplete and the context error.
func (e *closeIncompleteError) Unwrap() []error { return []error{ErrCloseIncomplete, e.cause} }

// beginClose is the part of Close done before it returns: new acquires and
// waiters fail with ErrPoolClosed from here on, and leases still held no
// longer warn of leaks. It returns the channel closed when the last call in
// flight ends, or nil if none is.
func (p *Pool) beginClose() (drained chan struct{}) {
	p.mu.Lock()
	p.closed = true
	p.failWaitersLocked(ErrPoolClosed)
	if p.inFlight > 0 {
		drained = make(chan struct{})
		p.drained = drained
	}
	p.mu.Unlock()
	p.leases.stop()
	return drained
}

// shutdown drains the calls in flight (until ctx ends or DrainTimeout
// passes), then closes every session.
func (p *Pool) shutdown(ctx context.Context, drained chan struct{}) {
	defer close(p.closeDone)
	if drained != nil {
		t := time.NewTimer(p.cfg.DrainTimeout)
		select {
		case <-drained:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	// Cancelling the pool's context aborts connects, probes and the calls
	// still running through pool helpers; ClientSession.Close would
	// otherwise wait for them.
	p.cancel()
	p.mu.Lock()
	sessions := p.takeAllLocked() // session.go
	p.mu.Unlock()
	errs := make([]error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() { errs[i] = p.closeSession(s) })
	}
	wg.Wait()
	p.bg.Wait()
	if p.dialer.raw != nil {
		p.dialer.raw.handlers.close() // rawcall.go: answers to servers' requests
	}
	if p.dialer.ownedHTTP != nil {
		p.dialer.ownedHTTP.CloseIdleConnections()
	}
	p.closeErr = errors.Join(errs...)
	p.log.debug("pool closed", "sessions", len(sessions))
}

// closeSession closes a session, then ends its transport's context. Its
// calls' context is cancelled first, so Close does not wait on them.
func (p *Pool) closeSession(s *session) error {
	s.cancel()
	err := s.cs.Close()
	s.connCancel()
	p.counters.destroyed.Add(1)
	p.observeClosed(s) // observe.go
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		// A stdio child's exit status (killed, or stopped by SIGTERM on
		// close) is the child's business, not a failure to close.
		p.log.debug("stdio server exited", "session", s.id, "status", exit.String())
		return nil
	}
	if err != nil && !errors.Is(err, mcp.ErrConnectionClosed) && !errors.Is(err, mcp.ErrSessionMissing) {
		p.log.debug("closing session", "session", s.id, "error", err)
		return err
	}
	return nil
}
