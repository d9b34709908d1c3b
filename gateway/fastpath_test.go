package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// relayPeer is a go-sdk server with the tools the fast path's edge cases
// need, added to the gate's.
func relayPeer(t *testing.T, g *gate) string {
	t.Helper()
	s := g.server()
	mcp.AddTool(s, &mcp.Tool{Name: "big", Description: "Returns n bytes of text."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct {
			N int `json:"n"`
		}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", in.N)}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "fail", Description: "Fails as a tool."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return nil, nil, errors.New("it failed <&>")
		})
	mcp.AddTool(s, &mcp.Tool{Name: "sum", Description: "Adds, with structured output."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct {
			A int `json:"a"`
			B int `json:"b"`
		}) (*mcp.CallToolResult, struct {
			Sum int `json:"sum"`
		}, error) {
			return nil, struct {
				Sum int `json:"sum"`
			}{in.A + in.B}, nil
		})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	return ts.URL
}

// The fast path answers plain calls in both eras as the SDK path would:
// results (isError, structured, huge), upstream JSON-RPC errors and the
// gateway's own errors; cancellation reaches the upstream call.
func TestRelayFastPath(t *testing.T) {
	g := newGate()
	url := relayPeer(t, g)
	up := newPool(t, mcpool.Config{URL: url})
	gw, gwURL := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "p", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up)}}})
	direct := connect(t, url, "2025-11-25", nil)

	for _, version := range []string{"2025-11-25", ""} {
		t.Run("version="+version, func(t *testing.T) {
			cs := connect(t, gwURL, version, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			before := gateway.RelayHandled(gw)
			// A name the server does not list is refused by the gateway
			// (the Group's catalog), on the fast path as on the SDK's.
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "p__nope"}); rpcCode(err) != gateway.CodeUnknownName {
				t.Fatalf("p__nope: %v (code %d), want CodeUnknownName", err, rpcCode(err))
			}
			for _, c := range []struct {
				tool string
				args map[string]any
			}{
				{"set", map[string]any{"value": "v"}},
				{"big", map[string]any{"n": 1 << 20}},
				{"fail", nil},
				{"sum", map[string]any{"a": 2, "b": 3}},
			} {
				want, werr := direct.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
				got, gerr := cs.CallTool(ctx, &mcp.CallToolParams{Name: "p__" + c.tool, Arguments: c.args})
				if (werr == nil) != (gerr == nil) || rpcCode(werr) != rpcCode(gerr) {
					t.Fatalf("%s: error %v (code %d) through the gateway, want %v (code %d)", c.tool, gerr, rpcCode(gerr), werr, rpcCode(werr))
				}
				if werr != nil {
					continue
				}
				if text(got) != text(want) || got.IsError != want.IsError {
					t.Errorf("%s: got %.60q (isError %v), want %.60q (isError %v)", c.tool, text(got), got.IsError, text(want), want.IsError)
				}
				if gs, ws := jsonOf(got.StructuredContent), jsonOf(want.StructuredContent); gs != ws {
					t.Errorf("%s: structured content %s, want %s", c.tool, gs, ws)
				}
			}
			// The gateway's own error: an unknown server.
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "nobody__x"}); rpcCode(err) != gateway.CodeUnknownName {
				t.Errorf("unknown server: %v (code %d), want code %d", err, rpcCode(err), gateway.CodeUnknownName)
			}
			if n := gateway.RelayHandled(gw) - before; n < 6 {
				t.Errorf("the fast path served %d of 6 calls", n)
			}

			// Cancellation mid-call reaches the upstream call.
			cancelled := g.cancelled.Load()
			cctx, ccancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			handled := gateway.RelayHandled(gw)
			go func() { _, err := call(cctx, cs, "p__block", map[string]any{}); done <- err }()
			eventually(t, "the call running upstream", func() bool { return g.running.Load() == 1 })
			if gateway.RelayHandled(gw) != handled+1 {
				t.Errorf("the blocking call did not take the fast path")
			}
			ccancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled call: %v", err)
			}
			eventually(t, "the upstream call cancelled", func() bool { return g.cancelled.Load() == cancelled+1 })
			eventually(t, "no call running upstream", func() bool { return g.running.Load() == 0 })
		})
	}
}

// A call with a progress token leaves the fast path for the SDK's, whose
// streams carry the notifications.
func TestRelayLeavesProgressToSDK(t *testing.T) {
	var gw *gateway.Gateway
	relay := func(ctx context.Context, r *mcp.ProgressNotificationClientRequest) { gw.OnProgress(ctx, r) }
	every := newPool(t, mcpool.Config{Command: everythingStdio(t), OnProgress: relay})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "e", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(every)}}})
	for _, version := range []string{"2025-11-25", ""} {
		t.Run("version="+version, func(t *testing.T) {
			got := make(chan float64, 16)
			cs := connect(t, url, version, &mcp.ClientOptions{ProgressNotificationHandler: func(ctx context.Context, r *mcp.ProgressNotificationClientRequest) {
				got <- r.Params.Progress
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			before := gateway.RelayHandled(gw)
			params := &mcp.CallToolParams{Name: "e__trigger-long-running-operation", Arguments: map[string]any{"duration": 1, "steps": 3}}
			params.SetProgressToken("tok")
			if _, err := cs.CallTool(ctx, params); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
			case <-ctx.Done():
				t.Fatal("no progress notification")
			}
			if gateway.RelayHandled(gw) != before {
				t.Errorf("a call with a progress token took the fast path")
			}
		})
	}
}

func jsonOf(v any) string {
	if v == nil {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// A 2025-11-25 session whose calls all take the fast path stays open: the
// SDK's idle timer, which the fast path does not touch, still sees the
// session in use.
func TestRelayKeepsBusySessionOpen(t *testing.T) {
	up := newPool(t, mcpool.Config{URL: demoURL(t)})
	gw, url := startGateway(t, gateway.Options{SessionIdleTimeout: time.Second,
		Servers: []gateway.Server{{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up)}}})
	cs := connect(t, url, "2025-11-25", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := gateway.RelayHandled(gw)
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := call(ctx, cs, "demo__echo", map[string]any{"message": "hi"}); err != nil {
			t.Fatalf("a call of a busy session: %v", err)
		}
	}
	if gateway.RelayHandled(gw) == before {
		t.Error("no call took the fast path")
	}
}
