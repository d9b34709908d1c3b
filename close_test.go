package mcpool_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func sleepCall(p *mcpool.Pool, ctx context.Context, ms int) (*mcp.CallToolResult, error) {
	return p.CallTool(ctx, &mcp.CallToolParams{Name: "sleep", Arguments: map[string]any{"ms": ms}})
}

// Close lets calls in flight finish within DrainTimeout.
func TestCloseDrainsCallsInFlight(t *testing.T) {
	ctx := context.Background()
	p := memPool(t, mcpool.Config{DrainTimeout: 10 * time.Second})
	type result struct {
		res *mcp.CallToolResult
		err error
	}
	done := make(chan result, 1)
	go func() { r, err := sleepCall(p, ctx, 300); done <- result{r, err} }()
	eventually(t, "call in flight", func() bool { return p.Stats().CallsInFlight == 1 })
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || text(r.res) != "slept 300ms" {
			t.Fatalf("drained call: %v %q", r.err, text(r.res))
		}
	default:
		t.Fatal("Close returned before the call in flight finished")
	}
	_, err := p.Acquire(ctx)
	mustIs(t, err, mcpool.ErrPoolClosed)
	if st := p.Stats(); !st.Closed || st.Sessions != 0 || st.SessionsDestroyed != 1 {
		t.Fatalf("stats after Close: %+v", st)
	}
}

// After DrainTimeout, Close cancels what is still running and returns promptly.
func TestCloseCancelsAfterDrainTimeout(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]mcpool.Config{
		"memory": {DrainTimeout: 100 * time.Millisecond},
		"stdio":  {DrainTimeout: 100 * time.Millisecond, Command: stdioCommand(t)},
	} {
		t.Run(name, func(t *testing.T) {
			p := memPool(t, cfg)
			errc := make(chan error, 1)
			go func() { _, err := sleepCall(p, ctx, 60_000); errc <- err }()
			eventually(t, "call in flight", func() bool { return p.Stats().CallsInFlight == 1 })
			start := time.Now()
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("Close took %v with a 100ms drain", took)
			}
			mustIs(t, <-errc, mcpool.ErrPoolClosed)
			if cfg.Command != nil {
				if left := children(t, cfg.Command.Path); len(left) != 0 {
					t.Fatalf("stdio children left after Close: %v", left)
				}
			}
		})
	}
}

// Close's ctx bounds the drain as DrainTimeout does.
func TestCloseContextBoundsDrain(t *testing.T) {
	p := memPool(t, mcpool.Config{DrainTimeout: time.Minute})
	errc := make(chan error, 1)
	go func() { _, err := sleepCall(p, context.Background(), 60_000); errc <- err }()
	eventually(t, "call in flight", func() bool { return p.Stats().CallsInFlight == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// The teardown after the drain may or may not be done by ctx's end.
	if err := p.Close(ctx); err != nil && !errors.Is(err, mcpool.ErrCloseIncomplete) {
		t.Fatal(err)
	}
	mustIs(t, <-errc, mcpool.ErrPoolClosed)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Close from many goroutines at once, and again later: all return the same,
// and waiting callers are told the pool closed.
func TestCloseConcurrentAndIdempotent(t *testing.T) {
	ctx := context.Background()
	p := memPool(t, mcpool.Config{MaxSessions: 1, MaxCallsPerSession: 1, AcquireTimeout: -1})
	held, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { _, err := p.Acquire(ctx); waitErr <- err }()
	eventually(t, "waiter queued", func() bool { return p.Stats().Waiters == 1 })
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := p.Close(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	mustIs(t, <-waitErr, mcpool.ErrPoolClosed)
	held.Release() // lets the drain finish
	wg.Wait()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	held.Release() // after Close: still harmless
	_, err = p.CallTool(ctx, &mcp.CallToolParams{Name: "echo"})
	mustIs(t, err, mcpool.ErrPoolClosed)
	mustIs(t, p.Start(ctx), mcpool.ErrPoolClosed)
}

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
