package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// exitInterrupted is the exit status of a command stopped by a signal, as
// shells report it: 128 plus the signal's number (130 for SIGINT).
func exitInterrupted(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitFailure
}

// interrupted is the cause of a command's context when a signal ended it.
type interrupted struct{ sig os.Signal }

// Error names the signal, the way a user knows it.
func (e *interrupted) Error() string { return "interrupted by " + signalName(e.sig) }

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// withSignals returns a context that the first SIGINT or SIGTERM cancels,
// with an *interrupted as its cause: the command then stops its work and
// cleans up within about a second. A second signal exits at once through
// exit, leaving whatever cleanup is under way. Call stop when the command
// is done.
func withSignals(stderr io.Writer, exit func(code int)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		var sig os.Signal
		select {
		case sig = <-sigs:
			cancel(&interrupted{sig})
		case <-done:
			return
		}
		select {
		case sig = <-sigs:
			fmt.Fprintf(stderr, "mcpool: %s again: exiting at once\n", signalName(sig))
			exit(exitInterrupted(sig))
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		<-ended
		cancel(nil)
	}
}

// stopReason says why ctx ended: "interrupted by SIGINT", or ctx's error.
func stopReason(ctx context.Context) string {
	var in *interrupted
	if errors.As(context.Cause(ctx), &in) {
		return in.Error()
	}
	if err := ctx.Err(); err != nil {
		return err.Error()
	}
	return "stopped"
}

// reloadSignals returns a channel that receives on each SIGHUP, the
// conventional "reload your config" signal, and the func that stops it
// (SIGHUP then ends the process again, its default).
func reloadSignals() (<-chan os.Signal, func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup, func() { signal.Stop(hup) }
}

// reloadTriggers are what makes the gateway read its config file again:
// SIGHUP, and with --watch a change of the file. They are set up before
// the file is first read, so that what comes while the gateway starts is
// kept for when it serves: a SIGHUP (whose default would end the process)
// or a change written after the first read.
type reloadTriggers struct {
	hup     <-chan os.Signal
	changed <-chan struct{} // nil without --watch
	stop    func()
}

// newReloadTriggers sets up the triggers; stop ends them.
func newReloadTriggers(ctx context.Context, path string, watch bool) *reloadTriggers {
	hup, stopHUP := reloadSignals()
	ctx, cancel := context.WithCancel(ctx)
	t := &reloadTriggers{hup: hup, stop: func() { cancel(); stopHUP() }}
	if watch {
		t.changed = watchFile(ctx, path, time.Second)
	}
	return t
}

// watchFile returns a channel that receives when path's content changes
// from what it is when watchFile is called: every interval it compares the
// file's size and modification time, and when they moved, a SHA-256 of its
// content (an editor that rewrites the same bytes is no change). A file
// that cannot be read counts as a change once (the reload then says why),
// and again once it can. It stops when ctx ends.
func watchFile(ctx context.Context, path string, interval time.Duration) <-chan struct{} {
	out := make(chan struct{}, 1)
	type state struct {
		size int64
		mod  time.Time
		sum  [sha256.Size]byte
		err  bool
	}
	look := func(prev state) state {
		fi, err := os.Stat(path)
		if err != nil {
			return state{err: true}
		}
		st := state{size: fi.Size(), mod: fi.ModTime()}
		if !prev.err && st.size == prev.size && st.mod.Equal(prev.mod) {
			st.sum = prev.sum
			return st
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return state{err: true}
		}
		st.sum = sha256.Sum256(b)
		return st
	}
	cur := look(state{err: true}) // now: the first read of the file comes after
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			next := look(cur)
			if next.err != cur.err || next.sum != cur.sum {
				select {
				case out <- struct{}{}:
				default: // a reload is pending: it reads the file anew
				}
			}
			cur = next
		}
	}()
	return out
}
