package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// awkwardTools are tool names that are not valid tool names, or too long.
var awkwardTools = []string{"echo", "say hello", "grüßen", "a.b-c_d", strings.Repeat("t", 130)}

// awkwardServers are server names of every kind the naming rule must
// handle: a space, a dot, 200 characters, other scripts.
var awkwardServers = []string{"my server", "Acme.Docs", strings.Repeat("a long server name ", 11)[:200], "données", "日本語"}

// awkwardURL serves a go-sdk server with awkwardTools and two prompts over
// HTTP; each tool and prompt answers label/its own name.
func awkwardURL(t *testing.T, label string) string {
	s := mcp.NewServer(&mcp.Implementation{Name: label, Version: "1"}, nil)
	for _, name := range awkwardTools {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: map[string]any{"type": "object"}}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: label + "/" + req.Params.Name}}}, nil
		})
	}
	for _, name := range []string{"greet", "hi there"} {
		s.AddPrompt(&mcp.Prompt{Name: name}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Description: label + "/" + req.Params.Name, Messages: []*mcp.PromptMessage{}}, nil
		})
	}
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	return ts.URL
}

// closedURL is a loopback URL where nothing listens.
func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/mcp"
}

func validToolName(s string) bool {
	return len(s) >= 1 && len(s) <= 128 && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == ""
}

// In every mode the gateway lists the tool and prompt names the Group
// lists, whatever the servers' and tools' names hold (spaces, dots, 200
// characters, other scripts), all valid tool names, and each one calls the
// server's own tool or prompt. An unreachable server is left out of both.
func TestNamingSameAsGroupInEveryMode(t *testing.T) {
	gc := &mcpool.GroupConfig{Logger: quiet()}
	for i, name := range awkwardServers {
		gc.Servers = append(gc.Servers, mcpool.ServerConfig{Name: name, Config: mcpool.Config{URL: awkwardURL(t, fmt.Sprint(i))}})
	}
	gc.Servers = append(gc.Servers, mcpool.ServerConfig{Name: "down", Config: mcpool.Config{URL: closedURL(t),
		FailureThreshold: 1, BreakerOpenAfter: -1, BreakerCooldown: time.Hour}})
	naming, err := gc.Naming()
	if err != nil {
		t.Fatal(err)
	}
	group, err := mcpool.NewGroup(*gc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = group.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tools, err := group.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prompts, err := group.ListPrompts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wantTools, wantPrompts []string
	for _, tl := range tools {
		wantTools = append(wantTools, tl.Name)
	}
	for _, p := range prompts {
		wantPrompts = append(wantPrompts, p.Name)
	}
	slices.Sort(wantTools)
	slices.Sort(wantPrompts)
	if len(wantTools) != len(awkwardServers)*len(awkwardTools) || !slices.Contains(wantTools, "my_server__echo") || !slices.Contains(wantTools, "Acme.Docs__echo") {
		t.Fatalf("the group lists %v", wantTools)
	}
	// label is what server's own name answers.
	label := func(server, own string) string {
		return fmt.Sprint(slices.Index(awkwardServers, server)) + "/" + own
	}

	for _, mode := range []gateway.Mode{gateway.ModeShared, gateway.ModeIsolated, gateway.ModePassthrough} {
		t.Run(string(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			settings := map[string]config.GatewayServer{}
			for _, sc := range gc.Servers {
				settings[sc.Name] = config.GatewayServer{Mode: string(mode), Spares: -1, ForwardHeaders: []string{"X-User"}}
			}
			g := group
			if mode == gateway.ModePassthrough {
				g = nil // passthrough servers are never the Group's
			}
			_, url := startGateway(t, gateway.Options{Servers: gateway.GroupServers(g, gc, settings), Naming: naming})
			c := mcp.NewClient(&mcp.Implementation{Name: "downstream", Version: "1"}, nil)
			cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: headers{"X-User": "user-a"}}},
				&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			lt, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tl := range lt.Tools {
				got = append(got, tl.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, wantTools) {
				t.Fatalf("tools/list gives\n%q\nthe group lists\n%q", got, wantTools)
			}
			for _, name := range got {
				if !validToolName(name) {
					t.Errorf("invalid tool name %q", name)
				}
				server, own, err := group.ResolveTool(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				if res, err := call(ctx, cs, name, map[string]any{}); err != nil || res != label(server, own) {
					t.Errorf("tools/call %q = %q, %v; want %s", name, res, err, label(server, own))
				}
			}
			lp, err := cs.ListPrompts(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			got = got[:0]
			for _, p := range lp.Prompts {
				got = append(got, p.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, wantPrompts) {
				t.Fatalf("prompts/list gives %q, the group lists %q", got, wantPrompts)
			}
			for _, name := range got {
				server, own, err := group.ResolvePrompt(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				res, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: name})
				if err != nil || res.Description != label(server, own) {
					t.Errorf("prompts/get %q = %v, %v; want %s", name, res, err, label(server, own))
				}
			}
			// A name no server has is refused as unknown, naming no rule.
			if _, err := call(ctx, cs, "my_server__nope", map[string]any{}); rpcCode(err) != gateway.CodeUnknownName {
				t.Errorf("unknown tool: %v; want code %d", err, gateway.CodeUnknownName)
			}
		})
	}
}

// Two servers whose names become the same in tool names are refused at
// New, naming both, when the gateway makes its Naming itself.
func TestNamingCollisionRefused(t *testing.T) {
	_, err := gateway.New(gateway.Options{Logger: quiet(), Servers: []gateway.Server{
		{Name: "my server", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(nil)},
		{Name: "my_server", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(nil)},
	}})
	if !errors.Is(err, mcpool.ErrInvalidConfig) || !strings.Contains(err.Error(), `"my server"`) || !strings.Contains(err.Error(), `"my_server"`) {
		t.Errorf("New with servers \"my server\" and \"my_server\": %v; want ErrInvalidConfig naming both", err)
	}
}
