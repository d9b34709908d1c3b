package gateway

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// relayLog passes an upstream log message (notifications/message) to the
// downstream client of the call it came with, at the level that client set
// (logging/setLevel, or a 2026-07-28 request's _meta): the SDK's
// ServerSession.Log drops what is below it. A message that no call claims
// reaches the isolated upstream session's own downstream session (a
// session-level log) or, from a shared one, no one: a log may say what a
// client asked, and must not reach another.
func (g *Gateway) relayLog(ctx context.Context, srv *server, owner *mcp.ServerSession, req *mcp.LoggingMessageRequest) {
	p := *req.Params
	p.Meta = copyMeta(p.Meta)
	c, err := g.callerFor(ctx, p.Meta, srv, owner)
	if len(p.Meta) == 0 {
		p.Meta = nil
	}
	switch {
	case err == nil:
		if err := c.ss.Log(c.ctx, &p); err != nil {
			g.log.Debug("logging: relay failed", "server", srv.name, "error", err)
		}
		c.relayed()
	case owner != nil:
		_ = owner.Log(g.ctx, &p)
	default:
		g.log.Debug("logging: upstream log message with no call to relay it to", "server", srv.name, "reason", err)
	}
}
