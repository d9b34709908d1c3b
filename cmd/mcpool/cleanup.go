package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/proctest"
)

// closeGrace bounds the cleanup of a command that was stopped (its
// --timeout passed, or a signal came) or failed: closing its pools and the
// embedded server. A server that keeps working on a cancelled call, or a stdio
// server slow to exit, must not hold the command past its deadline; the
// process exits right after (see exit), which ends a stdio server's input
// and so stops any well-behaved one, and signals the others.
const closeGrace = 500 * time.Millisecond

// shutdown closes pools, then stops the target. After a normal end it waits
// for all of it, so stdio children are reaped; when abrupt is true (the
// command was stopped or failed) it
// runs them side by side (stopping the embedded server cancels its calls,
// which frees the sessions closing on them) and returns after closeGrace
// at most.
func shutdown(abrupt bool, tgt *target, pools ...*mcpool.Pool) {
	var closers []func(context.Context)
	for _, p := range pools {
		closers = append(closers, func(ctx context.Context) { _ = p.Close(ctx) })
	}
	if tgt != nil {
		closers = append(closers, func(context.Context) { tgt.close() })
	}
	closeAll(abrupt, closers...)
}

// closeAll runs closers: one after another, each with all the time it
// takes, or, when abrupt, side by side within closeGrace (see shutdown).
func closeAll(abrupt bool, closers ...func(context.Context)) {
	if !abrupt {
		for _, c := range closers {
			c(context.Background())
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range closers {
		wg.Go(func() { c(ctx) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		abandoned.Store(true)
	}
}

// abandoned records that a cleanup was cut short: stdio servers may still
// be running, waiting out their terminate grace.
var abandoned atomic.Bool

// exit ends the process with code. If a cleanup was cut short it first
// sends SIGTERM to the child processes still running (stdio servers that
// ignored the end of their input), which the cut-short close would have
// sent them after its grace: none is left behind, orphaned. Only main (and
// tests running the command as a process of its own) call it; in process,
// other children may be someone else's.
func exit(code int) {
	if abandoned.Load() {
		if pids, err := proctest.Children(""); err == nil {
			for _, pid := range pids {
				if proc, err := os.FindProcess(pid); err == nil {
					_ = proc.Signal(syscall.SIGTERM)
				}
			}
		}
	}
	os.Exit(code)
}

// explainConnect words a failed Start for a command that ends rather than
// retries later. After connects that failed in a way that can heal, the
// library's *UnavailableError says when its next try comes; the command
// makes none, so the message says it gave up, after how many connects and
// how long (waited). It names the flag to raise when connects ran out of
// --connect-timeout: where the library names its own setting
// (Config.ConnectTimeout) the message says --connect-timeout instead, also
// when the command's own deadline or a signal ended the wait; otherwise,
// when the connect failed on its own timeout (cmdCtx, under which it ran,
// still live), the flag and its value are added. errors.Is and errors.As
// see the library's error through every rewording.
func explainConnect(cmdCtx context.Context, err error, f *targetFlags, waited time.Duration) error {
	if err == nil || !errors.Is(err, mcpool.ErrConnectFailed) {
		return err
	}
	msg, reworded := err.Error(), false
	var ue *mcpool.UnavailableError
	if cmdCtx.Err() == nil && errors.As(err, &ue) && !errors.Is(err, mcpool.ErrMisconfigured) {
		msg, reworded = fmt.Sprintf("mcpool: gave up after %d failed connects in %v: %s",
			ue.Failures, waited.Round(100*time.Millisecond), withoutPrefix(ue.Cause)), true
	}
	if strings.Contains(msg, "Config.ConnectTimeout") {
		msg, reworded = strings.ReplaceAll(msg, "Config.ConnectTimeout", "--connect-timeout"), true
	}
	if reworded {
		return &renamed{err, msg}
	}
	// The library's cause is context.DeadlineExceeded (or, in older
	// versions, the cancellation that the timer caused).
	if cmdCtx.Err() != nil || (!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)) {
		return err
	}
	return fmt.Errorf("%w (--connect-timeout %v: raise it for a slow server)", err, f.connectTimeout)
}

// renamed is an error with another message: the command's words for the
// library's.
type renamed struct {
	err error
	msg string
}

// Error is the new message.
func (e *renamed) Error() string { return e.msg }

// Unwrap returns the original error, so errors.Is and As see through.
func (e *renamed) Unwrap() error { return e.err }
