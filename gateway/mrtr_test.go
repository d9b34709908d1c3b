package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A 2026-07-28 upstream asks for input with an input_required result. A
// 2026-07-28 client gets it through the gateway and retries with the
// answers; a 2025-11-25 client is asked as a server-to-client request and
// the gateway retries. Either way the answer reaches the server, in the
// retry that carries the server's requestState.
func TestMultiRoundTripThroughGateway(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "mrtr", Version: "1"}, nil)
	var badState atomic.Int64
	s.AddTool(&mcp.Tool{Name: "whoami", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if r, ok := req.Params.InputResponses["name"].(*mcp.ElicitResult); ok {
				if req.Params.RequestState != "state-1" {
					badState.Add(1)
				}
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint("hello ", r.Content["name"])}}}, nil
			}
			return &mcp.CallToolResult{RequestState: "state-1", InputRequests: mcp.InputRequestMap{
				"name": &mcp.ElicitParams{Message: "name?", RequestedSchema: map[string]any{"type": "object",
					"properties": map[string]any{"name": map[string]any{"type": "string"}}}},
			}}, nil
		})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(func() { closePeer(s, ts) })

	var gw atomic.Pointer[gateway.Gateway]
	cfg := mcpool.Config{URL: ts.URL, ProtocolVersion: "2026-07-28"}
	cfg.ClientHandlers = gateway.UpstreamHandlers("up", gw.Load)
	p := newPool(t, cfg)
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}})
	gw.Store(g)

	for _, version := range []string{"2026-07-28", "2025-11-25"} {
		t.Run(version, func(t *testing.T) {
			cs := connect(t, url, version, &mcp.ClientOptions{ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "v" + version}}, nil
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := call(ctx, cs, "up__whoami", nil)
			if want := "hello v" + version; err != nil || got != want {
				t.Fatalf("got %q, %v; want %q", got, err, want)
			}
		})
	}
	if badState.Load() != 0 {
		t.Errorf("%d retries without the server's requestState", badState.Load())
	}
}
