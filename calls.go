package mcpool

import (
	"context"
	"fmt"
	"maps"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// CallTool calls a tool on a pooled session: Acquire, call, Release. A
// result with IsError set is the tool's own failure and is returned with a
// nil error, as the SDK does.
//
// Errors: those of Acquire; the call's (ctx's error, a JSON-RPC error such
// as an unknown tool, a transport error); or ErrPoolClosed wrapped with the
// call's error when Close cancelled the call at its drain deadline.
//
// params is not modified, so one value may be shared by concurrent calls.
// (The SDK writes protocol metadata into the params it is given; the pool
// hands it a copy, or a params value reused across sessions of different
// protocol versions would carry the wrong version and race.)
func (p *Pool) CallTool(ctx context.Context, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	params = cloneCallParams(params)
	var res *mcp.CallToolResult
	err := p.Do(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
		var err error
		res, err = cs.CallTool(ctx, params)
		return err
	})
	return res, err
}

// Do runs fn with a pooled session, for requests the pool has no helper
// for (prompts, resources, completion…). The ctx given to fn ends when the
// caller's ctx ends or when Close cancels calls at its drain deadline; use
// it for every request fn makes. fn must not keep the session after it
// returns. Errors are those of CallTool, or fn's own.
func (p *Pool) Do(ctx context.Context, fn func(ctx context.Context, cs *mcp.ClientSession) error) error {
	l, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer l.Release()
	cctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.s.ctx, cancel)
	err = fn(cctx, l.s.cs)
	stop()
	cancel()
	if err != nil {
		p.counters.errors.Add(1)
		if ctx.Err() == nil && l.s.ctx.Err() != nil {
			return fmt.Errorf("%w: call cancelled at the drain deadline: %w", ErrPoolClosed, err)
		}
	}
	return err
}

func cloneCallParams(in *mcp.CallToolParams) *mcp.CallToolParams {
	if in == nil {
		return &mcp.CallToolParams{Arguments: map[string]any{}}
	}
	out := *in
	out.Meta = maps.Clone(in.Meta)
	if out.Arguments == nil {
		out.Arguments = map[string]any{}
	}
	return &out
}
