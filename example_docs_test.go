package mcpool_test

import (
	"context"
	"log"
	"net/http"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
)

// Credentials: headers on every request, a token read from an
// oauth2.TokenSource for every request, and headers on one call's request
// only.
func ExampleTokenSourceFunc() {
	var src oauth2.TokenSource = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}) // yours refreshes
	pool, err := mcpool.New(mcpool.Config{
		URL:     "https://gateway.example/mcp",
		Headers: http.Header{"X-Tenant": {"acme"}},                         // every request
		Token:   mcpool.TokenSourceFunc(oauth2.ReuseTokenSource(nil, src)), // read per request
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())
	ctx := mcpool.WithHeaders(context.Background(), http.Header{"X-Request-Id": {"req-42"}}) // this call's request only
	res, err := pool.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hi"}})
	_, _ = res, err
}

// A group from the mcpServers file other MCP clients already read, started
// and used as one.
func ExampleNewGroup_file() {
	ctx := context.Background()
	f, err := config.Load(".mcp.json") // the mcpServers file your MCP clients already read
	if err != nil {
		log.Fatal(err) // one line: file, server, field (*config.FileError)
	}
	for _, w := range f.Warnings {
		log.Print(w) // e.g. one of mcpool's keys in another client's section
	}
	g, err := mcpool.NewGroup(f.Group) // or build GroupConfig{Servers: []mcpool.ServerConfig{…}} in code
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close(context.Background())
	if err := g.Start(ctx); err != nil {
		log.Print(err) // servers that did not start (*mcpool.ServerError each); the rest serve
	}
	tools, err := g.ListTools(ctx) // github__create_issue, search__query, …
	res, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "github__create_issue",
		Arguments: map[string]any{"title": "hi"}})
	_, _, _ = tools, res, err
}
