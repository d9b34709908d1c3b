package mcpool_test

import (
	"context"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A pool that answers a server's elicitation requests during calls by
// declining them. Setting a handler declares the capability; sampling,
// left nil here, stays undeclared.
func ExampleClientHandlers() {
	url := "http://127.0.0.1:8080/mcp"
	pool, _ := mcpool.New(mcpool.Config{
		URL: url,
		ClientHandlers: &mcpool.ClientHandlers{
			Elicitation: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				return &mcp.ElicitResult{Action: "decline"}, nil
			},
		},
	})
	_ = pool
}
