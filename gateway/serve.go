package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/oauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// newMCPServer returns the downstream MCP server. The gateway answers the
// list and call methods itself, in receiving middleware: the catalog is the
// upstream servers' (and, for passthrough servers, the caller's own), and
// calls are routed, not registered.
func (g *Gateway) newMCPServer() *mcp.Server {
	s := mcp.NewServer(g.impl(), &mcp.ServerOptions{
		Logger: sdkLogger(g.log),
		Capabilities: &mcp.ServerCapabilities{
			Tools:     &mcp.ToolCapabilities{ListChanged: true},
			Prompts:   &mcp.PromptCapabilities{ListChanged: true},
			Resources: &mcp.ResourceCapabilities{ListChanged: true, Subscribe: true},
			Logging:   &mcp.LoggingCapabilities{},
			// Completion is routed to the server of the prompt or template
			// (completion.go); it is taken out of each initialize and
			// server/discover result while no server declares it
			// (withoutUndeclared).
			Completions: &mcp.CompletionCapabilities{},
		},
		// The SDK keeps who subscribed to what; these forward upstream
		// (subscriptions.go).
		SubscribeHandler:   g.subscribe,
		UnsubscribeHandler: g.unsubscribe,
		// To the client's isolated upstream sessions (relay_requests.go).
		RootsListChangedHandler: g.forwardRootsChanged,
		Instructions:            g.instructions(nil), // every server; each answer gets its caller's: withInstructions
	})
	s.AddSendingMiddleware(g.onlyOwnUpdates) // subscriptions.go
	s.AddReceivingMiddleware(g.relayLevel)   // loglevel.go
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "initialize", "server/discover":
				res, err := next(ctx, method, req)
				g.withoutUndeclared(res) // completion.go
				g.withInstructions(res, req)
				return res, err
			}
			switch r := req.(type) {
			case *mcp.ListToolsRequest:
				return g.listTools(ctx, r)
			case *mcp.ListPromptsRequest:
				return g.listPrompts(ctx, r)
			case *mcp.ListResourcesRequest:
				return g.listResources(ctx, r)
			case *mcp.ListResourceTemplatesRequest:
				return g.listTemplates(ctx, r) // completion.go
			case *mcp.CompleteRequest:
				return g.complete(ctx, r) // completion.go
			case *mcp.CallToolRequest:
				return g.callTool(ctx, r)
			case *mcp.GetPromptRequest:
				return g.getPrompt(ctx, r)
			case *mcp.ReadResourceRequest:
				return g.readResource(ctx, r)
			case *mcp.SubscriptionsListenRequest:
				// Its subscribe and unsubscribe requests are the SDK's,
				// without the caller's token info: subscriptions.go
				// takes this one's.
				return next(withListenExtra(ctx, r.Extra), method, req)
			}
			return next(ctx, method, req)
		}
	})
	return s
}

func (g *Gateway) listTools(ctx context.Context, req *mcp.ListToolsRequest) (*mcp.ListToolsResult, error) {
	out := []*mcp.Tool{}
	for _, srv := range g.set.Load().servers {
		if !visible(srv, req) {
			continue
		}
		if srv.Mode == ModePassthrough {
			out = append(out, g.passthroughTools(ctx, srv, req)...)
			continue
		}
		srv.mu.Lock()
		out = append(out, visibleTools(srv, req, srv.tools, srv.ownNames[0])...)
		srv.mu.Unlock()
	}
	return &mcp.ListToolsResult{Tools: out, Cacheable: g.listCacheable()}, nil
}

func (g *Gateway) listPrompts(ctx context.Context, req *mcp.ListPromptsRequest) (*mcp.ListPromptsResult, error) {
	out := []*mcp.Prompt{}
	for _, srv := range g.set.Load().servers {
		if !visible(srv, req) {
			continue
		}
		if srv.Mode == ModePassthrough {
			out = append(out, g.passthroughPrompts(ctx, srv, req)...)
			continue
		}
		srv.mu.Lock()
		out = append(out, srv.prompts...)
		srv.mu.Unlock()
	}
	return &mcp.ListPromptsResult{Prompts: out, Cacheable: g.listCacheable()}, nil
}

func (g *Gateway) listResources(ctx context.Context, req *mcp.ListResourcesRequest) (*mcp.ListResourcesResult, error) {
	out := []*mcp.Resource{}
	for _, srv := range g.set.Load().servers {
		if !visible(srv, req) {
			continue
		}
		if srv.Mode == ModePassthrough {
			out = append(out, g.passthroughResources(ctx, srv, req)...)
			continue
		}
		srv.mu.Lock()
		out = append(out, srv.resources...)
		srv.mu.Unlock()
	}
	return &mcp.ListResourcesResult{Resources: out, Cacheable: g.listCacheable()}, nil
}

// unknown is the error for a tool or prompt name that no server (or, when
// server is set, not that server) has. It names only the servers the
// caller of req may see (policy.go: visibleNames).
func (g *Gateway) unknown(req mcp.Request, kind, name, server string) error {
	known := g.visibleNames(req)
	msg := fmt.Sprintf("unknown %s %q: it names no server's %s; list them with %ss/list (servers: %v)", kind, name, kind, kind, known)
	if server != "" {
		msg = fmt.Sprintf("unknown %s %q: server %s has no such %s; list them with %ss/list", kind, name, server, kind, kind)
	}
	return rpcError(CodeUnknownName, msg, ErrorData{Server: server, Reason: "unknown", Known: known})
}

// unknownResource is the error for a URI that no server the caller of req
// may see lists or has a template matching.
func (g *Gateway) unknownResource(req mcp.Request, uri string) error {
	known := g.visibleNames(req)
	return rpcError(CodeUnknownName, fmt.Sprintf("unknown resource %q: no server lists it and no server's resource template matches it (servers: %v)", uri, known),
		ErrorData{Reason: "unknown", Known: known})
}

// call runs one routed call to srv: admission, the call timeout, the
// session the mode picks, and the figures.
func (g *Gateway) call(ctx context.Context, srv *server, req mcp.Request, fn func(ctx context.Context, up Upstream) error) (err error) {
	defer g.record(srv, req, time.Now(), &err) // red.go: every outcome, every mode
	if g.draining.Load() {
		return draining(srv.name)
	}
	// The drain's end cancels the call, by whatever path it came: the pool
	// tells the upstream, and the caller is answered.
	ctx, cancelCall := context.WithCancelCause(ctx)
	defer cancelCall(nil)
	defer context.AfterFunc(g.calls, func() { cancelCall(context.Cause(g.calls)) })()
	name := srv.name // srv is nil after enter when a reload removed the server
	var sent atomic.Bool
	var upErr error
	defer func() {
		if err != nil && errors.Is(context.Cause(ctx), errDrainEnded) {
			err = drainEnded(name, sent.Load(), upErr) // errors.go
		}
	}()
	srv, err = g.enter(srv, req) // reload.go
	if err != nil {
		return err
	}
	defer srv.calls.Exit()
	if err := g.breakerOpen(srv); err != nil {
		return err
	}
	release, err := g.adm.admit(ctx, srv)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, g.opts.CallTimeout)
	defer cancel()
	ctx, leave := g.enterCall(ctx, srv, req) // relay_requests.go
	defer leave()
	err = g.withUpstream(ctx, srv, req, func(ctx context.Context, up Upstream) error {
		sent.Store(true) // the upstream is asked (it may still find no session: see drainEnded)
		return fn(ctx, up)
	})
	upErr = err
	if err != nil {
		ss, _ := req.GetSession().(*mcp.ServerSession)
		g.relay.noteURLElicitationError(srv, ss, err) // elicitation_complete.go
	}
	if srv.Mode == ModeShared {
		srv.unavailable.Store(errors.Is(err, mcpool.ErrServerUnavailable))
	}
	if err != nil {
		return g.sec.Err(upstreamError(srv.name, srv.Mode, err)) // redact.go
	}
	return nil
}

// breakerOpen returns CodeUnavailable at once while srv is known to be
// unavailable (its breaker open with no session left), so that callers do
// not queue for it. The flag is set by calls that got ErrServerUnavailable
// and by the catalog watcher's look at the pool, and cleared by a call that
// got through: no lock and no Stats on the call path. (Shared servers; an
// isolated server's is checked where a session needs a new upstream
// session: connectIsolated.)
func (g *Gateway) breakerOpen(srv *server) error {
	if !srv.unavailable.Load() {
		return nil
	}
	return unavailableNow(srv, srv.Upstream.Stats())
}

// unavailableNow is the CodeUnavailable answer for srv, whose pool's
// figures are st: with reason "misconfigured" when the server's last
// listing met a failure no retry cures.
func unavailableNow(srv *server, st mcpool.Stats) error {
	srv.mu.Lock()
	lerr := srv.listErr
	srv.mu.Unlock()
	if errors.Is(lerr, mcpool.ErrMisconfigured) {
		return upstreamError(srv.name, srv.Mode, lerr)
	}
	// The breaker lets a probe through every BreakerCooldown: a retry
	// sooner finds it open still.
	return upstreamError(srv.name, srv.Mode, &mcpool.UnavailableError{Failures: st.ConsecutiveFailures, RetryIn: orDur(srv.Config.BreakerCooldown, mcpool.DefaultBreakerCooldown),
		Cause: errors.New("no session left and connects failing")})
}

func (g *Gateway) withUpstream(ctx context.Context, srv *server, req mcp.Request, fn func(ctx context.Context, up Upstream) error) error {
	switch srv.Mode {
	case ModePassthrough:
		return g.passthroughPool(ctx, srv, req, func(ctx context.Context, p *mcpool.Pool) error { return fn(ctx, PoolUpstream(p)) })
	case ModeIsolated:
		ss, _ := req.GetSession().(*mcp.ServerSession)
		p, err := g.isolatedPool(ctx, srv, ss)
		if err != nil {
			return err
		}
		return fn(ctx, PoolUpstream(p))
	}
	return fn(ctx, srv.Upstream)
}

func (g *Gateway) callTool(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	srv, name, err := g.resolve(ctx, req, 0, req.Params.Name)
	done := g.audit(req, srv, oauth.KindTool, req.Params.Name) // audit.go
	if err == nil {
		err = g.permit(srv, req, oauth.KindTool, req.Params.Name, name) // policy.go
	}
	if err != nil {
		return nil, done(ctx, nil, err)
	}
	params := &mcp.CallToolParams{Name: name, Meta: upstreamMeta(req.Params.Meta),
		InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState} // mrtr.go
	if len(req.Params.Arguments) > 0 {
		params.Arguments = json.RawMessage(req.Params.Arguments)
	}
	stop := g.forwardProgress(ctx, req, params)
	defer stop()
	var res *mcp.CallToolResult
	err = g.call(ctx, srv, req, func(ctx context.Context, up Upstream) error {
		var err error
		res, err = callToolRounds(ctx, up, req.Session, params) // mrtr.go
		return err
	})
	return res, done(ctx, res, err)
}

func (g *Gateway) getPrompt(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	srv, name, err := g.resolve(ctx, req, 1, req.Params.Name)
	done := g.audit(req, srv, oauth.KindPrompt, req.Params.Name)
	if err == nil {
		err = g.permit(srv, req, oauth.KindPrompt, req.Params.Name, name)
	}
	if err != nil {
		return nil, done(ctx, nil, err)
	}
	params := &mcp.GetPromptParams{Name: name, Arguments: req.Params.Arguments, Meta: upstreamMeta(req.Params.Meta),
		InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState}
	var res *mcp.GetPromptResult
	err = g.call(ctx, srv, req, func(ctx context.Context, up Upstream) error {
		var err error
		res, err = getPromptRounds(ctx, up, req.Session, params) // mrtr.go
		return err
	})
	return res, done(ctx, res, err)
}

func (g *Gateway) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	srv, err := g.resourceServer(ctx, req, uri) // subscriptions.go: listed, else a template's
	if err != nil && srv == nil {
		return nil, err
	}
	done := g.audit(req, srv, oauth.KindResource, uri) // with err: a server the caller may not see, denied
	if err == nil && srv == nil {
		err = g.unknownResource(req, uri)
	}
	if err == nil {
		err = g.permit(srv, req, oauth.KindResource, uri, uri)
	}
	if err != nil {
		return nil, done(ctx, nil, err)
	}
	params := &mcp.ReadResourceParams{URI: uri, Meta: upstreamMeta(req.Params.Meta),
		InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState}
	var res *mcp.ReadResourceResult
	err = g.call(ctx, srv, req, func(ctx context.Context, up Upstream) error {
		var err error
		res, err = readResourceRounds(ctx, up, req.Session, params) // mrtr.go
		return err
	})
	return res, done(ctx, res, err)
}

// upstreamMeta copies the downstream _meta that may travel upstream: trace
// context. The progress token is replaced by the gateway's own (see
// forwardProgress); protocol fields belong to each hop, but for the log
// level (2026-07-28, where it travels with each request): the upstream
// is asked for every level, and the downstream session drops what is
// below its client's (logging.go).
func upstreamMeta(m mcp.Meta) mcp.Meta {
	out := mcp.Meta{mcp.MetaKeyLogLevel: "debug"}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

// requestHeader returns the downstream HTTP request's header, or nil (stdio).
func requestHeader(req mcp.Request) http.Header {
	if ex := req.GetExtra(); ex != nil {
		return ex.Header
	}
	return nil
}

// instructions is the text of the gateway's initialize and server/discover
// answers: the servers it serves now, and how their names are given.
func (g *Gateway) instructions(req mcp.Request) string {
	set := g.set.Load() // once: a Reload may store another
	var names []string
	for _, srv := range set.servers {
		if req == nil || visible(srv, req) { // policy.go: a caller learns only of the servers it may see
			names = append(names, srv.name)
		}
	}
	if len(names) == 0 {
		return "mcpool gateway: serves no server this caller may use."
	}
	example, _ := set.naming.Name(names[0], "NAME")
	return "mcpool gateway: serves the tools, prompts and resources of " + joinNames(names) +
		"; a tool or prompt that " + names[0] + " calls NAME is listed and called as " + example + "."
}

// withInstructions gives an initialize or server/discover result the
// instructions of the servers served now: the SDK's server keeps the text
// it was made with, and a Reload changes the servers.
func (g *Gateway) withInstructions(res mcp.Result, req mcp.Request) {
	switch r := res.(type) {
	case *mcp.InitializeResult:
		if r != nil {
			r.Instructions = g.instructions(req)
		}
	case *mcp.DiscoverResult:
		if r != nil {
			r.Instructions = g.instructions(req)
		}
	}
}

// sdkLogger passes on the SDK's warnings and errors only: it logs every
// stateless request's session at info level, which would drown the
// gateway's own events.
func sdkLogger(l *slog.Logger) *slog.Logger {
	return slog.New(minLevel{l.Handler(), slog.LevelWarn})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

// Enabled implements slog.Handler.
func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

// WithAttrs implements slog.Handler.
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}

// WithGroup implements slog.Handler.
func (m minLevel) WithGroup(n string) slog.Handler { return minLevel{m.Handler.WithGroup(n), m.min} }
