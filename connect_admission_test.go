package mcpool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// initCounter is a go-sdk server whose initialize handler counts the
// initializes in progress and holds each for hold.
type initCounter struct {
	now, peak, total atomic.Int64
	hold             atomic.Int64 // ns
}

func (c *initCounter) server() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "init-counter", Version: "1"}, nil)
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != "initialize" {
				return next(ctx, method, req)
			}
			n := c.now.Add(1)
			c.total.Add(1)
			for {
				p := c.peak.Load()
				if n <= p || c.peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Duration(c.hold.Load()))
			c.now.Add(-1)
			return next(ctx, method, req)
		}
	})
	return srv
}

// Pools sharing a limiter of 2 never have more than 2 initializes in
// progress at the server, however many connect at once, and every one of
// them connects.
func TestConnectLimiterCapsSharedPools(t *testing.T) {
	var c initCounter
	c.hold.Store(int64(50 * time.Millisecond))
	url := httpServer(t, c.server(), false)
	lim := mcpool.NewConnectLimiter(2, nil)
	const pools = 8
	ps := make([]*mcpool.Pool, pools)
	for i := range ps {
		ps[i] = newPool(t, mcpool.Config{URL: url, ProtocolVersion: "2025-11-25", MinSessions: 2, MaxSessions: 2, ConnectLimiter: lim})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, pools)
	for _, p := range ps {
		wg.Go(func() { errs <- p.Start(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	eventually(t, "16 sessions connected", func() bool { return c.total.Load() >= 2*pools })
	if got := c.peak.Load(); got > 2 {
		t.Errorf("peak initializes in progress = %d, want at most 2 (the limiter's cap)", got)
	}
	st := lim.Stats()
	if st.Max != 2 || st.InFlight != 0 || st.Queued != 0 || st.Admitted < 2*pools || st.MaxQueued < 1 {
		t.Errorf("Stats = %+v: want Max 2, nothing in flight or queued, %d admitted, some queued once", st, 2*pools)
	}
}

// A parent caps connects across its children: two servers' limiters of 2
// under a shared one of 3 never have more than 3 initializes at once.
func TestConnectLimiterParent(t *testing.T) {
	var c initCounter
	c.hold.Store(int64(50 * time.Millisecond))
	url := httpServer(t, c.server(), false)
	shared := mcpool.NewConnectLimiter(3, nil)
	a, b := mcpool.NewConnectLimiter(2, shared), mcpool.NewConnectLimiter(2, shared)
	var ps []*mcpool.Pool
	for i := range 6 {
		lim := a
		if i%2 == 1 {
			lim = b
		}
		ps = append(ps, newPool(t, mcpool.Config{URL: url, ProtocolVersion: "2025-11-25", MinSessions: 2, MaxSessions: 2, ConnectLimiter: lim}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() {
			if err := p.Start(ctx); err != nil {
				t.Errorf("Start: %v", err)
			}
		})
	}
	wg.Wait()
	eventually(t, "12 sessions connected", func() bool { return c.total.Load() >= 12 })
	if got := c.peak.Load(); got > 3 {
		t.Errorf("peak initializes in progress = %d, want at most 3 (the shared cap)", got)
	}
}

// A connect queued behind a slow one gets its full ConnectTimeout once it
// leaves the queue: it waits longer than ConnectTimeout in the queue and
// still connects.
func TestConnectLimiterTimeoutStartsAfterQueue(t *testing.T) {
	var slow, fast initCounter
	slow.hold.Store(int64(1500 * time.Millisecond))
	slowURL := httpServer(t, slow.server(), false)
	fastURL := httpServer(t, fast.server(), false)
	lim := mcpool.NewConnectLimiter(1, nil)
	first := newPool(t, mcpool.Config{URL: slowURL, ProtocolVersion: "2025-11-25", ConnectTimeout: 20 * time.Second, ConnectLimiter: lim})
	queued := newPool(t, mcpool.Config{URL: fastURL, ProtocolVersion: "2025-11-25", ConnectTimeout: 500 * time.Millisecond, ConnectLimiter: lim, FailureThreshold: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- first.Start(ctx) }()
	eventually(t, "the slow connect holds the only turn", func() bool { return slow.now.Load() == 1 })
	start := time.Now()
	if err := queued.Start(ctx); err != nil {
		t.Fatalf("queued Start: %v (its ConnectTimeout must not run while it queues)", err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("queued Start returned after %v: it did not wait for the turn", waited)
	}
	if err := <-done; err != nil {
		t.Fatalf("slow Start: %v", err)
	}
	if st := lim.Stats(); st.MaxQueued != 1 || st.MaxWait < 500*time.Millisecond || st.Queued != 0 {
		t.Errorf("Stats = %+v: want one connect queued once, for longer than ConnectTimeout", st)
	}
	if fast.total.Load() != 1 {
		t.Errorf("fast server saw %d initializes, want 1 (no retry)", fast.total.Load())
	}
}

// A queued connect leaves the queue when its pool closes: the turn goes to
// the next connect, and Close does not wait for the turn.
func TestConnectLimiterQueuedConnectLeavesOnClose(t *testing.T) {
	var slow, fast initCounter
	slow.hold.Store(int64(1500 * time.Millisecond))
	slowURL := httpServer(t, slow.server(), false)
	fastURL := httpServer(t, fast.server(), false)
	lim := mcpool.NewConnectLimiter(1, nil)
	first := newPool(t, mcpool.Config{URL: slowURL, ProtocolVersion: "2025-11-25", ConnectLimiter: lim})
	p, err := mcpool.New(mcpool.Config{URL: fastURL, ProtocolVersion: "2025-11-25", ConnectLimiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { _ = first.Start(ctx) }()
	eventually(t, "the slow connect holds the only turn", func() bool { return slow.now.Load() == 1 })
	sctx, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if err := p.Start(sctx); err == nil {
		t.Fatal("Start returned nil while its connect could not have had a turn")
	}
	scancel()
	eventually(t, "one connect queued", func() bool { return lim.Stats().Queued == 1 })
	closed := time.Now()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(closed); d > time.Second {
		t.Errorf("Close took %v: it waited for the queued turn", d)
	}
	if q := lim.Stats().Queued; q != 0 {
		t.Errorf("queued = %d after Close, want 0", q)
	}
	if fast.total.Load() != 0 {
		t.Errorf("the closed pool's connect reached the server")
	}
}

// A connect whose turn would come after Config.ConnectQueueWait does not
// queue: Start fails at once with ErrConnectQueueFull, nothing reaches the
// server, and the refusal is not held against the server.
func TestConnectQueueWaitRefusesAtOnce(t *testing.T) {
	var slow, fast initCounter
	slow.hold.Store(int64(3 * time.Second))
	slowURL := httpServer(t, slow.server(), false)
	fastURL := httpServer(t, fast.server(), false)
	lim := mcpool.NewConnectLimiter(1, nil)
	first := newPool(t, mcpool.Config{URL: slowURL, ProtocolVersion: "2025-11-25", ConnectTimeout: 20 * time.Second, ConnectLimiter: lim})
	refused := newPool(t, mcpool.Config{URL: fastURL, ProtocolVersion: "2025-11-25", ConnectLimiter: lim, ConnectQueueWait: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- first.Start(ctx) }()
	eventually(t, "the slow connect holds the only turn", func() bool { return slow.now.Load() == 1 })
	// No connect has finished: the limiter assumes a quarter of the
	// ConnectTimeout (5s), past the second's queue wait.
	err := refused.Start(ctx)
	var ce *mcpool.ConnectError
	if !errors.Is(err, mcpool.ErrConnectQueueFull) || !errors.As(err, &ce) {
		t.Fatalf("Start = %v, want a *ConnectError matching ErrConnectQueueFull", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("slow Start: %v", err)
	}
	if fast.total.Load() != 0 || lim.Stats().Queued != 0 {
		t.Errorf("the refused connect reached the server (%d initializes) or stayed queued (%d)", fast.total.Load(), lim.Stats().Queued)
	}
	if err := refused.Start(ctx); err != nil {
		t.Errorf("Start once the turn is free: %v (a full queue is not the server's failure)", err)
	}
}

// A queued connect estimates its turn again while it waits: when the
// connect ahead of it runs much longer than connects did, it leaves the
// queue as soon as the turn would come after its ConnectQueueWait, not
// when the wait runs out.
func TestConnectQueueWaitLeavesWhenConnectsSlow(t *testing.T) {
	var srv initCounter
	srv.hold.Store(int64(10 * time.Millisecond))
	url := httpServer(t, srv.server(), false)
	lim := mcpool.NewConnectLimiter(1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A quick connect teaches the limiter that connects are quick.
	if err := newPool(t, mcpool.Config{URL: url, ProtocolVersion: "2025-11-25", ConnectLimiter: lim}).Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv.hold.Store(int64(5 * time.Second))
	slow := newPool(t, mcpool.Config{URL: url, ProtocolVersion: "2025-11-25", ConnectTimeout: 20 * time.Second, ConnectLimiter: lim})
	done := make(chan error, 1)
	go func() { done <- slow.Start(ctx) }()
	eventually(t, "the slow connect holds the only turn", func() bool { return srv.now.Load() == 1 })
	const queueWait = 4 * time.Second
	queued := newPool(t, mcpool.Config{URL: url, ProtocolVersion: "2025-11-25", ConnectLimiter: lim, ConnectQueueWait: queueWait})
	start := time.Now()
	err := queued.Start(ctx)
	took := time.Since(start)
	if !errors.Is(err, mcpool.ErrConnectQueueFull) {
		t.Fatalf("Start = %v, want ErrConnectQueueFull", err)
	}
	// The connect ahead has run for about took when the queued one
	// leaves, and its turn would come after another took at least:
	// leaving at about half the wait, well before all of it.
	if took >= queueWait {
		t.Errorf("the queued connect left after %v: it waited out its ConnectQueueWait (%v) instead of leaving when the estimate passed it", took, queueWait)
	}
	if st := lim.Stats(); st.MaxQueued != 1 || st.Queued != 0 {
		t.Errorf("Stats = %+v: want one connect queued once, none now", st)
	}
	if err := <-done; err != nil {
		t.Fatalf("slow Start: %v", err)
	}
	t.Logf("left the queue after %v", took)
}
