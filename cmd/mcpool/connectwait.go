package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpool/mcpool"
)

// noticeAfter is how long a one-shot command waits on failing connects
// before it says so. A server started just before the command (the
// README's "demo-server &") is usually listening well within it, so the
// common case stays quiet.
const noticeAfter = time.Second

// connectNotice says on stderr that a command is waiting for a server.
// Pool.Start, Group.Start and the first call ride out a server that is
// starting: connects that fail in a way that can heal (refused, reset, 5xx,
// a child that exits) are retried until the circuit breaker opens,
// Config.BreakerOpenAfter (10 s by default), or the command's deadline
// passes. When the server is simply down that is a long silence, so once a
// pool's connects have failed for noticeAfter the notice writes one line
// for it, at most once. A failure no retry cures (ErrMisconfigured) ends
// the wait at once and is not announced. Safe for concurrent use.
type connectNotice struct {
	stderr io.Writer
	start  time.Time
	// mu guards waiting and the writes: once done returns, nothing more is
	// written (the pools' observers outlive the wait, and stderr may be a
	// buffer the caller reads next).
	mu      sync.Mutex
	waiting bool
}

func newConnectNotice(stderr io.Writer) *connectNotice {
	return &connectNotice{stderr: stderr, start: time.Now(), waiting: true}
}

// watch announces p's failing connects. server is the group's name for
// it, or "" for the one server of --url, --sse or --stdio; cfg is p's
// Config, for its breaker window.
func (n *connectNotice) watch(p *mcpool.Pool, server string, cfg *mcpool.Config) {
	rideOut := cfg.BreakerOpenAfter
	if rideOut <= 0 {
		rideOut = mcpool.DefaultBreakerOpenAfter
	}
	var told atomic.Bool
	p.Observe(mcpool.Observer{Connect: func(e mcpool.ConnectEvent) {
		if e.Err == nil || errors.Is(e.Err, mcpool.ErrMisconfigured) || time.Since(n.start) < noticeAfter || told.Load() {
			return
		}
		who := waitTarget(e.Err)
		if server != "" {
			who = fmt.Sprintf("server %q at %s", printable(server), who)
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		if !n.waiting || told.Swap(true) {
			return
		}
		fmt.Fprintf(n.stderr, "mcpool: waiting for %s (%s); retrying for up to %v in case it is starting (--timeout bounds the wait)\n",
			who, waitReason(e.Err), rideOut)
	}})
}

// done ends the wait: later connect failures (a server lost during a
// bench) are not announced.
func (n *connectNotice) done() {
	n.mu.Lock()
	n.waiting = false
	n.mu.Unlock()
}

// elapsed is the time since the wait began.
func (n *connectNotice) elapsed() time.Duration { return time.Since(n.start) }

// startPool starts p, the pool of a one-shot command (tools, call, bench)
// on tgt, announcing a wait (see connectNotice) and wording the error for
// a command that gives up rather than retries later (see explainConnect).
func startPool(ctx context.Context, p *mcpool.Pool, tgt *target, f *targetFlags, stderr io.Writer) error {
	n := newConnectNotice(stderr)
	n.watch(p, "", &tgt.cfg)
	err := p.Start(ctx)
	n.done()
	return explainConnect(ctx, err, f, n.elapsed())
}

// waitTarget names where the failed connect went: a URL (without
// credentials) or a command line.
func waitTarget(err error) string {
	var ce *mcpool.ConnectError
	if errors.As(err, &ce) {
		return ce.Target
	}
	return "the server"
}

// waitReason is the short reason of a failed connect for the notice: how a
// stdio server exited, or the last part of the error ("connection
// refused", "Service Unavailable"; the go-sdk's chain of wrapped messages
// does not keep the error values to unwrap to). The error the command ends
// with, if it gives up, has the whole chain.
func waitReason(err error) string {
	var ce *mcpool.ConnectError
	if errors.As(err, &ce) && ce.Exit != nil {
		return fmt.Sprintf("the server exited: %v", ce.Exit)
	}
	msg := oneLine(err)
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}
