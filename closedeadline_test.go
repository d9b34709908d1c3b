package mcpool_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
)

// closeSlack is what Close may take past its ctx's deadline: scheduling
// noise on a loaded machine (goroutine wake-ups under the race detector),
// not teardown work, which used to take the SDK's 5s DELETE bound.
const closeSlack = time.Second

// Close returns by its ctx's deadline against a server that accepts
// connections and never reads (the session's DELETE hangs), reports that
// the teardown goes on, and a second Close waits for it to finish.
func TestCloseHoldsDeadlineAgainstStalledServer(t *testing.T) {
	proxy, url := partitionedServer(t)
	p, err := mcpool.New(mcpool.Config{URL: url, MinSessions: 2, HealthCheckInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	echo(t, ctx, p, "warm")
	eventually(t, "both sessions", func() bool { return p.Stats().Sessions == 2 })
	proxy.Stall()

	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Close(cctx)
	took := time.Since(start)
	if took > 300*time.Millisecond+closeSlack {
		t.Errorf("Close with a 300ms ctx took %v against a stalled server", took)
	}
	mustIs(t, err, mcpool.ErrCloseIncomplete)
	mustIs(t, err, context.DeadlineExceeded)

	// Idempotent: a Close whose ctx has already ended says the same at once.
	done, cancelDone := context.WithCancel(ctx)
	cancelDone()
	if err := p.Close(done); !errors.Is(err, mcpool.ErrCloseIncomplete) || !errors.Is(err, context.Canceled) {
		t.Errorf("Close with an ended ctx during the teardown: %v", err)
	}

	// The teardown finishes in the background once the partition heals
	// (the stalled DELETEs are reset); Close without a deadline waits for
	// it, so goleak finds nothing left.
	proxy.Heal()
	if err := p.Close(ctx); err != nil && errors.Is(err, mcpool.ErrCloseIncomplete) {
		t.Fatalf("Close without a deadline: %v", err)
	}
	if st := p.Stats(); !st.Closed || st.Sessions != 0 || st.SessionsDestroyed != 2 {
		t.Fatalf("stats after the teardown: %+v", st)
	}
}
