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
	// Log receives the server's log messages (notifications/message,
	// "Logging"). When it is set, each session asks the server for
	// messages at LogLevel and above (logging/setLevel right after
	// connecting, when the server declares logging).
	Log func(context.Context, *mcp.LoggingMessageRequest)
	// LogLevel is the level asked for when Log is set; empty means "debug".
	LogLevel mcp.LoggingLevel
	// ResourceUpdated receives notifications/resources/updated for the
	// resources a session subscribed to.
	ResourceUpdated func(context.Context, *mcp.ResourceUpdatedNotificationRequest)
	// NoMultiRoundTrip switches off the SDK client's own answering of
	// 2026-07-28 input_required results ("Multi Round-Trip Requests"): the
	// result reaches the caller unchanged, for a relay (a gateway) that
	// passes it on to its own client.
	NoMultiRoundTrip bool
	// ListRoots, if set, answers roots/list ("Roots"), and the pool
	// declares the roots capability (without listChanged).
	ListRoots func(context.Context, *mcp.ListRootsRequest) (*mcp.ListRootsResult, error)
	// RootsListChanged, with ListRoots, declares roots with listChanged:
	// [Pool.NotifyRootsListChanged] then tells the pool's servers when the
	// roots ListRoots answers have changed.
	RootsListChanged bool
	// ElicitationComplete receives notifications/elicitation/complete: the
	// server's word that a URL-mode elicitation ("Elicitation", 2025-11-25)
	// has finished out of band.
	ElicitationComplete func(context.Context, *mcp.ElicitationCompleteNotificationRequest)
	// Relay passes elicitation/create to Elicitation as the server sent it:
	// the SDK neither checks the requested schema nor the result against
	// it, and both form and URL modes are declared. For a relay (a
	// gateway) whose own client checks what it answers.
	Relay bool
}

// applyClientHandlers copies the configured handlers into the options of
// the pool's client; the SDK then declares the matching capabilities.
func applyClientHandlers(opts *mcp.ClientOptions, h *ClientHandlers) *mcp.ClientOptions {
	if h != nil {
		opts.ElicitationHandler = h.Elicitation
		opts.CreateMessageHandler = h.CreateMessage
		opts.LoggingMessageHandler = h.Log
		opts.ResourceUpdatedHandler = h.ResourceUpdated
		opts.ElicitationCompleteHandler = h.ElicitationComplete
		if h.Relay && h.Elicitation != nil {
			caps := *opts.Capabilities
			caps.Elicitation = &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}, URL: &mcp.URLElicitationCapabilities{}}
			opts.Capabilities = &caps
		}
		if h.ListRoots != nil {
			caps := *opts.Capabilities
			caps.RootsV2 = &mcp.RootCapabilities{ListChanged: h.RootsListChanged}
			opts.Capabilities = &caps
		}
		if h.NoMultiRoundTrip {
			opts.MultiRoundTrip = &mcp.MultiRoundTripOptions{Disabled: true}
		}
	}
	return opts
}

// setLogLevel asks a new session's server for log messages when the
// handlers take them and the server declares logging. A refusal is not a
// failed connect: the session serves without logs.
func setLogLevel(ctx context.Context, cs *mcp.ClientSession, h *ClientHandlers) {
	if h == nil || h.Log == nil {
		return
	}
	ir := cs.InitializeResult()
	if ir == nil || ir.Capabilities == nil || ir.Capabilities.Logging == nil {
		return
	}
	level := h.LogLevel
	if level == "" {
		level = "debug"
	}
	_ = cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: level})
}

// relayElicitation makes c pass elicitation/create straight to
// h.Elicitation when h.Relay is set (see ClientHandlers.Relay), and
// roots/list to h.ListRoots when that is set.
func relayElicitation(c *mcp.Client, h *ClientHandlers) {
	if h == nil || (!h.Relay || h.Elicitation == nil) && h.ListRoots == nil {
		return
	}
	c.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch r := req.(type) {
			case *mcp.ElicitRequest:
				if h.Relay && h.Elicitation != nil {
					return h.Elicitation(ctx, r)
				}
			case *mcp.ListRootsRequest:
				if h.ListRoots != nil {
					return h.ListRoots(ctx, r)
				}
			}
			return next(ctx, method, req)
		}
	})
}

// rootsChangedPlaceholder is the root NotifyRootsListChanged adds to the
// pool's client: the SDK sends notifications/roots/list_changed when a
// client's roots change. roots/list is answered by ClientHandlers.ListRoots,
// so it is never listed.
const rootsChangedPlaceholder = "mcpool:roots-list-changed"

// NotifyRootsListChanged sends notifications/roots/list_changed ("Roots")
// on every open session of the pool, so that their servers ask for the
// roots again (ClientHandlers.ListRoots answers). It does nothing unless
// the pool's ClientHandlers set ListRoots and RootsListChanged. It returns
// when the notifications are written (each bounded by 10 s).
func (p *Pool) NotifyRootsListChanged() {
	h := p.dialer.handlers
	if h == nil || h.ListRoots == nil || !h.RootsListChanged {
		return
	}
	p.dialer.client.AddRoots(&mcp.Root{URI: rootsChangedPlaceholder})
}
