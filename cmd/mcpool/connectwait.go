package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
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
// for its server, once per server whichever replica failed. A failure no
// retry cures (ErrMisconfigured) ends the wait at once and is not
// announced. Safe for concurrent use.
type connectNotice struct {
	stderr io.Writer
	start  time.Time
	// mu guards waiting and the writes: once done returns, nothing more is
	// written (the pools' observers outlive the wait, and stderr may be a
	// buffer the caller reads next).
	mu      sync.Mutex
	waiting bool
	told    map[string]bool // the servers announced: once each, whichever replica failed
}

func newConnectNotice(stderr io.Writer) *connectNotice {
	return &connectNotice{stderr: stderr, start: time.Now(), waiting: true, told: map[string]bool{}}
}

// watch announces p's failing connects. server is the group's name for
// it, or "" for the one server of --url, --sse or --stdio; cfg is p's
// Config, for its circuit breaker; siblings are the server's other
// replicas: while one of them has a session, calls go there and nothing
// waits for p.
func (n *connectNotice) watch(p *mcpool.Pool, server string, cfg *mcpool.Config, siblings ...*mcpool.Pool) {
	until, rides := rideOut(cfg)
	if !rides {
		return // no breaker: the first failure is the command's error, at once
	}
	p.Observe(mcpool.Observer{Connect: func(e mcpool.ConnectEvent) {
		if e.Err == nil || errors.Is(e.Err, mcpool.ErrMisconfigured) || time.Since(n.start) < noticeAfter {
			return
		}
		for _, q := range siblings {
			if q.Stats().Sessions > 0 {
				return
			}
		}
		who := waitTarget(e.Err)
		if server != "" {
			who = fmt.Sprintf("server %q at %s", server, who)
		}
		line := fmt.Sprintf("waiting for %s (%s); retrying %s in case it is starting (--timeout bounds the wait)", who, waitReason(e.Err), until)
		n.mu.Lock()
		defer n.mu.Unlock()
		if !n.waiting || n.told[server] {
			return
		}
		n.told[server] = true
		// The reason may quote a stdio server's stderr: untrusted, and it
		// may hold a secret of the config.
		fmt.Fprintf(n.stderr, "mcpool: %s\n", strings.Join(strings.Fields(printable(hideSecrets(line))), " "))
	}})
}

// rideOut says how long a Start or a first call rides out failing connects
// under cfg, the circuit breaker's rule (see mcpool.Config.FailureThreshold):
// until FailureThreshold connects in a row have failed and the first is
// BreakerOpenAfter old. With the defaults (5 connects backing off from
// 100ms to 1s, 10s) the window decides. rides is false when the breaker is
// off: a caller then gets the first failure at once.
func rideOut(cfg *mcpool.Config) (until string, rides bool) {
	threshold, window := cfg.FailureThreshold, cfg.BreakerOpenAfter
	switch {
	case threshold < 0:
		return "", false
	case threshold == 0:
		threshold = mcpool.DefaultFailureThreshold
	}
	if window == 0 {
		window = mcpool.DefaultBreakerOpenAfter
	}
	switch {
	case window < 0:
		return fmt.Sprintf("until %d connects in a row have failed", threshold), true
	case threshold <= mcpool.DefaultFailureThreshold:
		return fmt.Sprintf("for up to %v", window), true
	default:
		return fmt.Sprintf("until %d connects in a row have failed over at least %v", threshold, window), true
	}
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
// stdio server exited, a connect timeout, or the last part of the error
// ("connection refused", "Service Unavailable"; the go-sdk's chain of
// wrapped messages does not keep the error values to unwrap to). The error
// the command ends with, if it gives up, has the whole chain.
func waitReason(err error) string {
	var ce *mcpool.ConnectError
	if errors.As(err, &ce) && ce.Exit != nil {
		return fmt.Sprintf("the server exited: %v", ce.Exit)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The command's own deadline has not passed (it is still
		// waiting): the connect ran out of its own.
		return "no answer within its connect timeout"
	}
	msg := oneLine(err)
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}
