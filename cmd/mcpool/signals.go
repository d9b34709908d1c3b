package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
