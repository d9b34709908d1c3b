package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Progress travels down: a downstream call that carries a progress token is
// sent upstream with a token of the gateway's own (tokens are chosen by each
// client, so two downstream clients may use the same one), and the
// upstream's notifications/progress for it are relayed to the downstream
// session under the caller's token. Cancellation travels up by itself: a
// downstream notifications/cancelled cancels the call's context, and the SDK
// then sends notifications/cancelled upstream.

type progressTarget struct {
	// ctx is the downstream request's: the SDK sends a notification made
	// with it on that request's stream, the only way to reach a
	// 2026-07-28 client, which has no other.
	ctx   context.Context
	ss    *mcp.ServerSession
	token any
}

type progressHub struct {
	seq     atomic.Uint64
	targets sync.Map // gateway token (string) -> progressTarget
}

func (g *Gateway) forwardProgress(ctx context.Context, req *mcp.CallToolRequest, params *mcp.CallToolParams) func() {
	tok := req.Params.GetProgressToken()
	ss := req.Session
	if tok == nil || ss == nil {
		return func() {}
	}
	id := fmt.Sprintf("mcpool-gateway-%d", g.progress.seq.Add(1))
	if params.Meta == nil {
		params.Meta = mcp.Meta{}
	}
	params.SetProgressToken(id)
	g.progress.targets.Store(id, progressTarget{ctx: ctx, ss: ss, token: tok})
	return func() { g.progress.targets.Delete(id) }
}

// OnProgress relays an upstream progress notification to the downstream
// session whose call it belongs to. Install it as mcpool.Config.OnProgress
// of the Upstream pools given to the gateway (the pools the gateway makes
// itself have it already); notifications for unknown tokens are dropped.
func (g *Gateway) OnProgress(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
	id, _ := req.Params.ProgressToken.(string)
	v, ok := g.progress.targets.Load(id)
	if !ok {
		return
	}
	t := v.(progressTarget)
	p := *req.Params
	p.ProgressToken = t.token
	p.Meta = nil
	if err := t.ss.NotifyProgress(t.ctx, &p); err != nil {
		g.log.Debug("progress: relay failed", "error", err)
	}
}
