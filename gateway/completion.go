package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/oauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// protocolUpstream is what an Upstream offers beyond calls and catalogs:
// resource templates, completion and subscriptions. A Group's servers
// ([mcpool.GroupServer]) and the gateway's own pools have them; an
// Upstream without them serves none of these.
type protocolUpstream interface {
	ListResourceTemplates(ctx context.Context) ([]*mcp.ResourceTemplate, error)
	Complete(ctx context.Context, params *mcp.CompleteParams) (*mcp.CompleteResult, error)
	Subscribe(ctx context.Context, params *mcp.SubscribeParams) error
	Unsubscribe(ctx context.Context, params *mcp.UnsubscribeParams) error
	// ServerCapabilities is what the server declared at initialize.
	ServerCapabilities(ctx context.Context) (*mcp.ServerCapabilities, error)
}

// Values of server.completions.
const (
	completionsUnknown int32 = iota
	completionsDeclared
	completionsUndeclared
)

// learnCapabilities notes whether srv declares completions, when it is not
// yet known or again (again: srv's lists changed, perhaps a new version
// of the server). It reads srv's Upstream, the pool of the catalog: in
// ModeIsolated too, whose per-client sessions are sessions of the same
// server. A server whose capabilities cannot be read stays unknown until a
// later catalog check succeeds.
func (g *Gateway) learnCapabilities(ctx context.Context, srv *server, again bool) {
	if srv.Mode == ModePassthrough || !again && srv.completions.Load() != completionsUnknown {
		return
	}
	pu, ok := srv.Upstream.(protocolUpstream)
	if !ok {
		if srv.completions.Swap(completionsUndeclared) != completionsUndeclared {
			g.lists.invalidate()
		}
		return
	}
	caps, err := pu.ServerCapabilities(ctx)
	if err != nil {
		g.log.Debug("reading the server's capabilities failed", "server", srv.name, "error", err)
		return
	}
	v := completionsUndeclared
	if caps != nil && caps.Completions != nil {
		v = completionsDeclared
	}
	if srv.completions.Swap(v) != v {
		g.lists.invalidate() // listcache.go: server/discover answers change
	}
}

// completionsDeclared reports whether the gateway declares completions
// downstream: when a server it serves declares them, or is in
// ModePassthrough (whose sessions are dialled with each client's
// credentials, so what it declares is not known before a client calls).
func (g *Gateway) completionsDeclared() bool {
	for _, srv := range g.set.Load().servers {
		if srv.Mode == ModePassthrough || srv.completions.Load() == completionsDeclared {
			return true
		}
	}
	return false
}

// withoutUndeclared takes the completions capability out of an initialize
// or server/discover result while no server declares it: a client then
// does not offer completion that no server gives. A session keeps what it
// was told at initialize (MCP has no notification for a changed
// capability); a server added by Reload counts for the sessions that
// start after it is served.
func (g *Gateway) withoutUndeclared(res mcp.Result) {
	var caps *mcp.ServerCapabilities
	switch r := res.(type) {
	case *mcp.InitializeResult:
		if r != nil {
			caps = r.Capabilities
		}
	case *mcp.DiscoverResult:
		if r != nil {
			caps = r.Capabilities
		}
	}
	if caps != nil && caps.Completions != nil && !g.completionsDeclared() {
		caps.Completions = nil
	}
}

// complete routes completion/complete (MCP spec 2025-11-25, "Completion"):
// a prompt reference by the gateway's name goes to the prompt's server
// under the server's own name; a resource template reference to the
// server whose template it is. Only servers the caller may see are
// candidates, and the call passes permit (policy.go) as a prompts/get or
// resources/read of the reference would.
func (g *Gateway) complete(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	if req.Params == nil || req.Params.Ref == nil {
		return nil, rpcError(CodeUnknownName, "completion/complete without a ref", ErrorData{Reason: "unknown"})
	}
	ref := *req.Params.Ref
	var srv *server
	switch ref.Type {
	case "ref/prompt":
		s, name, err := g.resolve(ctx, req, 1, ref.Name)
		if err == nil {
			err = g.permit(s, req, oauth.KindPrompt, ref.Name, name)
		}
		if err != nil {
			return nil, err
		}
		srv, ref.Name = s, name
	case "ref/resource":
		s, err := g.templateServer(ctx, req, ref.URI, true)
		if err == nil && s == nil {
			err = g.unknownResource(req, ref.URI)
		}
		if err == nil {
			err = g.permit(s, req, oauth.KindResource, ref.URI, ref.URI)
		}
		if err != nil {
			return nil, err
		}
		srv = s
	default:
		return nil, rpcError(CodeUnknownName, fmt.Sprintf("completion/complete: unknown ref type %q (ref/prompt or ref/resource)", ref.Type), ErrorData{Reason: "unknown"})
	}
	params := *req.Params
	params.Ref = &ref
	params.Meta = upstreamMeta(req.Params.Meta)
	var res *mcp.CompleteResult
	err := g.call(ctx, srv, req, func(ctx context.Context, up Upstream) error {
		pu, ok := up.(protocolUpstream)
		if !ok {
			return fmt.Errorf("server %s: its upstream does not offer completion", srv.name)
		}
		var err error
		res, err = pu.Complete(ctx, &params)
		return err
	})
	return res, err
}

// listTemplates merges the resource templates of the servers the caller
// may see (resources/templates/list), as listResources merges their
// resources. URI templates are not renamed; a server that fails to list is
// left out and logged.
func (g *Gateway) listTemplates(ctx context.Context, req mcp.Request) (*mcp.ListResourceTemplatesResult, error) {
	out := []*mcp.ResourceTemplate{}
	for _, l := range g.templateLists(ctx, req) {
		out = append(out, l.Templates...)
	}
	return &mcp.ListResourceTemplatesResult{ResourceTemplates: out, Cacheable: g.listCacheable()}, nil
}

// templateLists lists the templates of every server that is not in
// ModePassthrough and that the caller of req may see (policy.go: visible;
// the others are not asked), in the servers' order.
func (g *Gateway) templateLists(ctx context.Context, req mcp.Request) []mcpool.ServerTemplates {
	var out []mcpool.ServerTemplates
	for _, srv := range g.set.Load().servers {
		pu, ok := srv.Upstream.(protocolUpstream)
		if srv.Mode == ModePassthrough || !ok || !visible(srv, req) {
			continue
		}
		ts, err := pu.ListResourceTemplates(ctx)
		if err != nil {
			g.log.Debug("listing resource templates failed", "server", srv.name, "error", err)
			continue
		}
		out = append(out, mcpool.ServerTemplates{Server: srv.name, Templates: ts})
	}
	return out
}

// templateServer returns the server whose resource template matches uri
// (exact: the template itself, for completion), by the Group's rule
// ([mcpool.TemplateServer]), among the servers the caller of req may see.
func (g *Gateway) templateServer(ctx context.Context, req mcp.Request, uri string, exact bool) (*server, error) {
	lists := g.templateLists(ctx, req)
	if exact {
		for _, l := range lists {
			for _, t := range l.Templates {
				if t != nil && t.URITemplate == uri {
					return g.set.Load().byName[l.Server], nil
				}
			}
		}
	}
	name, err := mcpool.TemplateServer(lists, uri)
	if err != nil {
		var amb *mcpool.AmbiguousResourceError
		if errors.As(err, &amb) {
			return nil, rpcError(CodeUnknownName, err.Error(), ErrorData{Reason: "ambiguous", Known: amb.Servers})
		}
		return nil, g.unknownResource(req, uri) // serve.go
	}
	return g.set.Load().byName[name], nil
}

// ListResourceTemplates implements protocolUpstream.
func (u poolUpstream) ListResourceTemplates(ctx context.Context) ([]*mcp.ResourceTemplate, error) {
	var out []*mcp.ResourceTemplate
	err := u.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
		out = nil
		if ir := cs.InitializeResult(); ir != nil && ir.Capabilities != nil && ir.Capabilities.Resources == nil {
			return nil
		}
		for t, err := range cs.ResourceTemplates(ctx, nil) {
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

// Complete implements protocolUpstream.
func (u poolUpstream) Complete(ctx context.Context, params *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	var res *mcp.CompleteResult
	err := u.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
		cp := *params
		var err error
		res, err = cs.Complete(ctx, &cp)
		return err
	})
	return res, err
}

// Subscribe implements protocolUpstream: the pool pins the subscription to
// the session that takes it and renews it when that session leaves.
func (u poolUpstream) Subscribe(ctx context.Context, params *mcp.SubscribeParams) error {
	return u.Pool.Subscribe(ctx, params)
}

// Unsubscribe implements protocolUpstream, on the session holding the
// subscription.
func (u poolUpstream) Unsubscribe(ctx context.Context, params *mcp.UnsubscribeParams) error {
	return u.Pool.Unsubscribe(ctx, params)
}

// ServerCapabilities implements protocolUpstream.
func (u poolUpstream) ServerCapabilities(ctx context.Context) (*mcp.ServerCapabilities, error) {
	var caps *mcp.ServerCapabilities
	err := u.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
		caps = nil
		if ir := cs.InitializeResult(); ir != nil {
			caps = ir.Capabilities
		}
		return nil
	})
	return caps, err
}
