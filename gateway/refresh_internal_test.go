package gateway

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// countingLists is an Upstream whose ListTools blocks until released and
// counts its calls (a unit test of refreshAsync: no I/O needed).
type countingLists struct {
	Upstream
	mu      sync.Mutex
	calls   int
	release chan struct{}
}

func (c *countingLists) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	select {
	case <-c.release:
	case <-ctx.Done():
	}
	return nil, nil
}
func (c *countingLists) ListPrompts(context.Context) ([]*mcp.Prompt, error)     { return nil, nil }
func (c *countingLists) ListResources(context.Context) ([]*mcp.Resource, error) { return nil, nil }
func (c *countingLists) Stats() mcpool.Stats                                    { return mcpool.Stats{} }

func (c *countingLists) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// Refreshes asked for while one is under way run once more after it (a
// list_changed may have come after its lists were read), not once each,
// and never two at once.
func TestRefreshAsyncCoalesces(t *testing.T) {
	up := &countingLists{release: make(chan struct{})}
	g, err := New(Options{Logger: slog.New(slog.DiscardHandler), Servers: []Server{{Name: "s", Mode: ModeShared, Upstream: up}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	srv := g.set.Load().servers[0] // not started: no refresh but these
	g.refreshAsync(srv)
	waitFor(t, "the first refresh to list", func() bool { return up.n() == 1 })
	for range 5 {
		g.refreshAsync(srv) // while the first is under way
	}
	close(up.release)
	waitFor(t, "the refreshes to end", func() bool { return !srv.refreshing.Load() })
	g.bg.Wait()
	if n := up.n(); n != 2 {
		t.Errorf("%d refreshes ran, want 2 (the first and one for the five asked meanwhile)", n)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
