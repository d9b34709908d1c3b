package mcpool

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ClientHandlers answer the requests a server may send to the client during
// a call: elicitation (MCP spec 2025-11-25, "Elicitation") and sampling
// ("Sampling"). The pool declares a capability only when its handler is set,
// so a server never asks for what the client cannot give. The handlers are
// shared by every session of the pool and may run concurrently: they must be
// safe for concurrent use. A nil field leaves that capability undeclared.
//
// Requests reach a handler with the context of the server's request, which
// ends when the call that caused it ends.
type ClientHandlers struct {
	// Elicitation answers elicitation/create. The SDK validates the
	// requested schema before calling it, and an accepted result's content
	// against the schema afterwards (applying the schema's defaults).
	Elicitation func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error)
	// CreateMessage answers sampling/createMessage.
	CreateMessage func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error)
}

// applyClientHandlers copies the configured handlers into the options of
// the pool's client; the SDK then declares the matching capabilities.
func applyClientHandlers(opts *mcp.ClientOptions, h *ClientHandlers) *mcp.ClientOptions {
	if h != nil {
		opts.ElicitationHandler = h.Elicitation
		opts.CreateMessageHandler = h.CreateMessage
	}
	return opts
}
