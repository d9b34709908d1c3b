package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The gateway declares completions only when a server it serves declares
// them: not with one server without, yes for sessions that start after
// Reload adds an (isolated) server with them, whatever the client's era.
func TestCompletionsDeclaredWhenAServerDeclares(t *testing.T) {
	// Made first, so that it closes after the gateway.
	s := mcp.NewServer(&mcp.Implementation{Name: "comp", Version: "1"}, &mcp.ServerOptions{
		CompletionHandler: func(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{req.Params.Ref.Name + ":" + req.Params.Argument.Value + "x"}}}, nil
		},
	})
	s.AddPrompt(&mcp.Prompt{Name: "greet", Arguments: []*mcp.PromptArgument{{Name: "who"}}}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{}, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	p := newPool(t, mcpool.Config{URL: newGate().url(t), MaxSessions: 1})
	plain := gateway.Server{Name: "plain", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{plain}})
	declared := func(cs *mcp.ClientSession) bool {
		ir := cs.InitializeResult()
		return ir != nil && ir.Capabilities != nil && ir.Capabilities.Completions != nil
	}
	before := connect(t, url, "2025-11-25", nil)
	if declared(before) {
		t.Fatal("completions declared with no server declaring them")
	}
	if declared(connect(t, url, "", nil)) {
		t.Fatal("completions declared to a 2026-07-28 client with no server declaring them")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Reload(ctx, []gateway.Server{plain, {Name: "comp", Mode: gateway.ModeIsolated, Spares: -1, Config: mcpool.Config{URL: ts.URL}}}, nil); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	for _, version := range []string{"2025-11-25", ""} {
		cs := connect(t, url, version, nil)
		if !declared(cs) {
			t.Fatalf("version %q: completions not declared after a server that declares them was added", version)
		}
		res, err := cs.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "comp__greet"},
			Argument: mcp.CompleteParamsArgument{Name: "who", Value: "a"}})
		if err != nil || len(res.Completion.Values) != 1 || res.Completion.Values[0] != "greet:ax" {
			t.Fatalf("version %q: completion through the gateway: %+v, %v", version, res, err)
		}
	}
}
