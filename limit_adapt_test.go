package mcpool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// adaptServer has three tools: "serial" holds a server-wide lock for 1 ms
// (one call at a time, however many sessions), "slow" sleeps 200 ms (every
// call in flight runs at once) and "block" waits for release. slow is slow
// enough that 32 callers need a twentieth of a core (under -race): a
// loaded machine still has the CPU, so the limit's growth shows the
// server's concurrency, not the machine's spare cycles.
func adaptServer(release <-chan struct{}) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "adapt", Version: "1"}, nil)
	var mu sync.Mutex
	mcp.AddTool(srv, &mcp.Tool{Name: "serial"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		mu.Lock()
		time.Sleep(time.Millisecond)
		mu.Unlock()
		return &mcp.CallToolResult{}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "slow"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		time.Sleep(200 * time.Millisecond)
		return &mcp.CallToolResult{}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "block"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &mcp.CallToolResult{}, nil, nil
	})
	return srv
}

// hammer keeps callers closed-loop callers of tool busy until the returned
// func is called, which waits for them.
func hammer(t *testing.T, p *mcpool.Pool, tool string, callers int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := p.CallTool(ctx, &mcp.CallToolParams{Name: tool}); err != nil && ctx.Err() == nil {
					t.Errorf("%s: %v", tool, err)
					return
				}
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// limitWait bounds the waits for the limit to adapt: the pool judges the
// server in rounds of calls, which a loaded machine slows.
const limitWait = 60 * time.Second

// shrink runs 16 callers of the serial tool until the pool has learnt that
// more than one call per session gains nothing.
func shrink(t *testing.T, p *mcpool.Pool) {
	stop := hammer(t, p, "serial", 16)
	eventuallyWithin(t, limitWait, "the per-session limit to fall to 1 on a serial server", func() bool { return p.Stats().CallsPerSessionLimit == 1 })
	stop()
}

// The per-session call limit follows the server: it falls to one call per
// session where more only queue inside the server, and grows back to carry
// every caller when calls wait on something else.
func TestSessionLimitFollowsTheServer(t *testing.T) {
	transport, _ := inMemory(adaptServer(nil))
	p := newPool(t, mcpool.Config{NewTransport: transport, MinSessions: 2, MaxSessions: 2})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := p.Stats().CallsPerSessionLimit; got != 1 {
		t.Fatalf("a new pool's limit is %d, want 1 (exclusive lending)", got)
	}
	shrink(t, p)
	stop := hammer(t, p, "slow", 32)
	defer stop()
	eventuallyWithin(t, limitWait, "all 32 callers of a 200 ms tool in flight on 2 sessions", func() bool { return p.Stats().CallsInFlight == 32 })
}

// Calls that never end complete no round to measure: callers waiting with
// no call returning still get the room the sessions have.
func TestSessionLimitGrowsForLongCalls(t *testing.T) {
	release := make(chan struct{})
	transport, _ := inMemory(adaptServer(release))
	p := newPool(t, mcpool.Config{NewTransport: transport, MinSessions: 2, MaxSessions: 2})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	shrink(t, p)
	stop := hammer(t, p, "block", 6)
	eventuallyWithin(t, limitWait, "6 blocked calls in flight on 2 sessions", func() bool { return p.Stats().CallsInFlight == 6 })
	close(release)
	stop()
}
