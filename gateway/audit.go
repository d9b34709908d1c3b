package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/mcpool/mcpool/oauth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// audit starts the audit line of one call (Options.Audit); the function it
// returns records the outcome and passes err on. srv may be nil (a name no
// server has). The line never holds arguments, results or tokens.
func (g *Gateway) audit(req mcp.Request, srv *server, kind oauth.Kind, name string) func(ctx context.Context, res mcp.Result, err error) error {
	if g.opts.Audit == nil {
		return func(_ context.Context, _ mcp.Result, err error) error { return err }
	}
	server := ""
	if srv != nil {
		server = srv.name
	}
	done := g.opts.Audit.Start(callerIdentity(req), server, kind, name)
	return func(ctx context.Context, res mcp.Result, err error) error {
		var size int64
		if raw := rawResultSize(ctx); err == nil && raw >= 0 { // fastpath.go
			size = raw
		} else if err == nil && res != nil {
			if b, merr := json.Marshal(res); merr == nil {
				size = int64(len(b))
			}
		}
		done(ctx, outcomeOf(err), size)
		return err
	}
}

// outcomeOf classifies a call's error for the audit log.
func outcomeOf(err error) string {
	if err == nil {
		return oauth.OutcomeOK
	}
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		var d ErrorData
		_ = json.Unmarshal(je.Data, &d)
		switch d.Reason {
		case "rate_limited":
			return oauth.OutcomeRateLimited
		case "unknown", "unauthorized", "exchange_failed":
			return oauth.OutcomeDenied
		}
	}
	return oauth.OutcomeError
}
