package mcpool_test

import (
	"context"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// elicitingServer's "ask" tool elicits a name during the call and answers
// with what the client said; "caps" answers with the declared capabilities.
func elicitingServer() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "asking", Version: "1"},
		&mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	mcp.AddTool(srv, &mcp.Tool{Name: "ask"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: "name?", RequestedSchema: map[string]any{
			"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}})
		if err != nil {
			return nil, nil, err
		}
		name, _ := res.Content["name"].(string)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: res.Action + ":" + name}}}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "caps"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		c := req.ClientCapabilities()
		s := ""
		if c != nil && c.Elicitation != nil {
			s += "elicitation "
		}
		if c != nil && c.Sampling != nil {
			s += "sampling "
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}, nil, nil
	})
	return srv
}

func TestClientHandlers(t *testing.T) {
	srv := elicitingServer()
	url := httpServer(t, srv, false)
	ctx := context.Background()

	answered := newPool(t, mcpool.Config{URL: url, ClientHandlers: &mcpool.ClientHandlers{
		Elicitation: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
		},
	}})
	res, err := answered.CallTool(ctx, &mcp.CallToolParams{Name: "ask"})
	if err != nil || text(res) != "accept:Ada" {
		t.Fatalf("ask with a handler: %v, %v; want accept:Ada", text(res), err)
	}
	res, err = answered.CallTool(ctx, &mcp.CallToolParams{Name: "caps"})
	if err != nil || text(res) != "elicitation " {
		t.Errorf("capabilities with an elicitation handler: %q, %v; want elicitation only", text(res), err)
	}

	plain := newPool(t, mcpool.Config{URL: url})
	res, err = plain.CallTool(ctx, &mcp.CallToolParams{Name: "caps"})
	if err != nil || text(res) != "" {
		t.Errorf("capabilities without handlers: %q, %v; want none", text(res), err)
	}
}
