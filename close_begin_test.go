package mcpool_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
)

// Close with a ctx that has ended already still marks the pool closed
// before it returns: the next Acquire fails with ErrPoolClosed at once,
// though the teardown goes on in the background.
func TestCloseWithEndedContextClosesBeforeReturning(t *testing.T) {
	nt, _ := inMemory(demoserver.New(demoserver.Options{}))
	p := newPool(t, mcpool.Config{NewTransport: nt, MinSessions: 1, Logger: slog.New(slog.DiscardHandler)})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Close(ended); err != nil && !errors.Is(err, mcpool.ErrCloseIncomplete) {
		t.Fatalf("Close with an ended ctx: %v", err)
	}
	l, err := p.Acquire(context.Background())
	if err == nil {
		l.Release()
	}
	if !errors.Is(err, mcpool.ErrPoolClosed) {
		t.Fatalf("Acquire after Close returned: %v; want ErrPoolClosed", err)
	}
	// newPool's cleanup calls Close again and waits for the teardown.
}
