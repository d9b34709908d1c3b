package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// slowInitServer serves a go-sdk server over loopback HTTP whose
// initialize takes hold: a server slow to start.
func slowInitServer(t *testing.T, hold time.Duration) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "slow-init", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(ctx context.Context, _ *mcp.CallToolRequest, in struct {
		Message string `json:"message"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Message}}}, nil, nil
	})
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "initialize" {
				select {
				case <-time.After(hold):
				case <-ctx.Done():
				}
			}
			return next(ctx, method, req)
		}
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(ts.Close)
	return ts.URL
}

func sparesWarm(g *gateway.Gateway) int {
	var sessions, spares int
	_, _ = fmt.Sscanf(g.Status().Servers[0].Detail, "%d downstream sessions with their own upstream session, %d spares warm", &sessions, &spares)
	return spares
}

// Isolated spares follow the arrival of new downstream sessions: while
// sessions arrive faster than one connect takes, the gateway keeps more
// than Spares warm; once they stop, it lets the extra ones go.
func TestIsolatedSparesAdapt(t *testing.T) {
	url := slowInitServer(t, 300*time.Millisecond)
	g, gwURL := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "slow", Spares: 1,
		Config: mcpool.Config{URL: url, ProtocolVersion: "2025-11-25"}}}})
	eventually(t, "one spare warm", func() bool { return sparesWarm(g) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var peak atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			if n := int64(sparesWarm(g)); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	// Sessions arrive, each for one call, several at a time.
	var calls sync.WaitGroup
	for range 4 {
		calls.Go(func() {
			for range 6 {
				cs := connect(t, gwURL, "2025-11-25", nil)
				if _, err := call(ctx, cs, "slow__echo", map[string]any{"message": "hi"}); err != nil {
					t.Errorf("call: %v", err)
				}
				_ = cs.Close()
			}
		})
	}
	calls.Wait()
	close(stop)
	wg.Wait()
	if peak.Load() < 2 {
		t.Errorf("at most %d spare warm while sessions arrived, want more than Spares (1)", peak.Load())
	}
	t.Logf("peak spares warm: %d", peak.Load())
	eventually(t, "back to one spare once arrivals stop", func() bool { return sparesWarm(g) == 1 })
}
