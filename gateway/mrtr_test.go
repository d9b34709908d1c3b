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

// A 2026-07-28 upstream asks for input with an input_required result, in
// tools/call, prompts/get and resources/read (the last two in two rounds). A 2026-07-28 client gets it
// through the gateway and retries with the answers; a 2025-11-25 client is
// asked as a server-to-client request and the gateway retries. Either way
// the answer reaches the server, in the retry that carries the server's
// requestState.
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
			return &mcp.CallToolResult{RequestState: "state-1", InputRequests: askName()}, nil
		})
	s.AddPrompt(&mcp.Prompt{Name: "greet"}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		r, ok := req.Params.InputResponses["name"].(*mcp.ElicitResult)
		switch {
		case !ok:
			return &mcp.GetPromptResult{RequestState: "state-p1", InputRequests: askName()}, nil
		case req.Params.RequestState == "state-p1": // a second round
			return &mcp.GetPromptResult{RequestState: "state-p2", InputRequests: askName()}, nil
		case req.Params.RequestState != "state-p2":
			badState.Add(1)
		}
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: fmt.Sprint("greet ", r.Content["name"])}}}}, nil
	})
	s.AddResource(&mcp.Resource{Name: "card", URI: "mrtr://card"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		r, ok := req.Params.InputResponses["name"].(*mcp.ElicitResult)
		switch {
		case !ok:
			return &mcp.ReadResourceResult{RequestState: "state-r1", InputRequests: askName()}, nil
		case req.Params.RequestState == "state-r1": // a second round
			return &mcp.ReadResourceResult{RequestState: "state-r2", InputRequests: askName()}, nil
		case req.Params.RequestState != "state-r2":
			badState.Add(1)
		}
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "mrtr://card", Text: fmt.Sprint("card of ", r.Content["name"])}}}, nil
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
			opts := &mcp.ClientOptions{ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "v" + version}}, nil
			}}
			if version < "2026-07-28" {
				// As a client of that era: it cannot read input_required
				// results (the go-sdk's client would answer them itself).
				opts.MultiRoundTrip = &mcp.MultiRoundTripOptions{Disabled: true}
			}
			cs := connect(t, url, version, opts)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := call(ctx, cs, "up__whoami", nil)
			if want := "hello v" + version; err != nil || got != want {
				t.Fatalf("tools/call: got %q, %v; want %q", got, err, want)
			}
			pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "up__greet"})
			if err != nil || len(pr.Messages) != 1 {
				t.Fatalf("prompts/get: %+v, %v", pr, err)
			}
			if got, want := pr.Messages[0].Content.(*mcp.TextContent).Text, "greet v"+version; got != want {
				t.Fatalf("prompts/get: got %q; want %q", got, want)
			}
			rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mrtr://card"})
			if err != nil || len(rr.Contents) != 1 {
				t.Fatalf("resources/read: %+v, %v", rr, err)
			}
			if got, want := rr.Contents[0].Text, "card of v"+version; got != want {
				t.Fatalf("resources/read: got %q; want %q", got, want)
			}
		})
	}
	if badState.Load() != 0 {
		t.Errorf("%d retries without the server's requestState", badState.Load())
	}
}

// askName is an input request for the caller's name, as a form elicitation.
func askName() mcp.InputRequestMap {
	return mcp.InputRequestMap{"name": &mcp.ElicitParams{Message: "name?", RequestedSchema: map[string]any{"type": "object",
		"properties": map[string]any{"name": map[string]any{"type": "string"}}}}}
}
