package gateway

import (
	"context"
	"encoding/json"

	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Passthrough servers: each caller's partition (its forwarded headers and,
// with TokenExchange, its grant: user, client and scopes; see auth.go) has its own upstream
// sessions and catalogs, so two callers share them only when they present
// the same credentials. mcpool.Keyed keeps only a digest of the key.

func joinNames(names []string) string {
	b, _ := json.Marshal(names)
	return string(b)
}

func (g *Gateway) passthroughPool(ctx context.Context, srv *server, req mcp.Request, fn func(ctx context.Context, p *mcpool.Pool) error) error {
	id, err := srv.partitionOf(req)
	if err != nil {
		return err
	}
	if err := g.exchange(ctx, srv, req); err != nil {
		return err
	}
	return srv.keyed.With(ctx, id, fn)
}

// The passthrough lists: the caller's own catalog; a caller without
// credentials, or whose listing fails, sees none of the server's items.
func (g *Gateway) passthroughTools(ctx context.Context, srv *server, req mcp.Request) []*mcp.Tool {
	var out []*mcp.Tool
	err := g.passthroughPool(ctx, srv, req, func(ctx context.Context, p *mcpool.Pool) error {
		tools, err := p.ListTools(ctx)
		var own map[string]string
		out, own = named(srv, tools, func(t *mcp.Tool) *string { return &t.Name })
		out = visibleTools(srv, req, out, own)
		return err
	})
	if err != nil {
		g.log.Debug("passthrough: listing tools failed", "server", srv.name, "error", err)
	}
	return out
}

func (g *Gateway) passthroughPrompts(ctx context.Context, srv *server, req mcp.Request) []*mcp.Prompt {
	var out []*mcp.Prompt
	_ = g.passthroughPool(ctx, srv, req, func(ctx context.Context, p *mcpool.Pool) error {
		prompts, err := p.ListPrompts(ctx)
		out, _ = named(srv, prompts, func(t *mcp.Prompt) *string { return &t.Name })
		return err
	})
	return out
}

// passthroughNames maps the downstream names of the caller's own tools
// (kind 0) or prompts (kind 1) of srv to the server's names; nil when the
// caller's list cannot be had.
func (g *Gateway) passthroughNames(ctx context.Context, srv *server, req mcp.Request, kind int) map[string]string {
	var own map[string]string
	_ = g.passthroughPool(ctx, srv, req, func(ctx context.Context, p *mcpool.Pool) error {
		var err error
		if kind == 0 {
			var tools []*mcp.Tool
			if tools, err = p.ListTools(ctx); err == nil {
				_, own = named(srv, tools, func(t *mcp.Tool) *string { return &t.Name })
			}
		} else {
			var prompts []*mcp.Prompt
			if prompts, err = p.ListPrompts(ctx); err == nil {
				_, own = named(srv, prompts, func(t *mcp.Prompt) *string { return &t.Name })
			}
		}
		return err
	})
	return own
}

func (g *Gateway) passthroughResources(ctx context.Context, srv *server, req mcp.Request) []*mcp.Resource {
	var out []*mcp.Resource
	_ = g.passthroughPool(ctx, srv, req, func(ctx context.Context, p *mcpool.Pool) error {
		var err error
		out, err = p.ListResources(ctx)
		return err
	})
	return out
}

// passthroughOwner finds the passthrough server that lists uri for the
// caller.
func (g *Gateway) passthroughOwner(ctx context.Context, req mcp.Request, uri string) *server {
	for _, srv := range g.set.Load().servers {
		if srv.Mode != ModePassthrough || !visible(srv, req) { // policy.go
			continue
		}
		for _, r := range g.passthroughResources(ctx, srv, req) {
			if r.URI == uri {
				return srv
			}
		}
	}
	return nil
}

// Keyed returns the keyed pool (one pool per credential) that serves the
// named server in ModePassthrough, for metrics (the prom package's
// Collector.AddKeyed, say); nil for a server in another mode or not
// configured. The gateway closes it in Close.
func (g *Gateway) Keyed(server string) *mcpool.Keyed {
	if srv := g.set.Load().byName[server]; srv != nil {
		return srv.keyed
	}
	return nil
}
