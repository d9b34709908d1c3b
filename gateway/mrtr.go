package gateway

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Multi round-trip requests (MCP 2026-07-28, "basic/patterns/mrtr"): an
// upstream that needs the client's input answers a call with an
// input_required result (inputRequests and an opaque requestState). The
// gateway's upstream clients do not answer these themselves
// (mcpool.ClientHandlers.NoMultiRoundTrip): a 2026-07-28 client downstream
// gets the result unchanged and retries with inputResponses and the same
// requestState, which the gateway sends on to the same server; for a
// client of an earlier era, which cannot read such a result, the gateway
// asks it each input request as a server-to-client request on the call's
// stream and retries upstream itself.

// maxInputRounds bounds the rounds of one call answered for an earlier-era
// client, as the SDK's own client does.
const maxInputRounds = 10

// mrtrClient reports whether ss reads input_required results itself.
func mrtrClient(ss *mcp.ServerSession) bool {
	if ss == nil {
		return true
	}
	ip := ss.InitializeParams()
	return ip == nil || ip.ProtocolVersion >= "2026-07-28"
}

// answerInputs asks ss, a client of an earlier era, each of reqs as a
// server-to-client request within ctx (the call's), and returns the
// answers by the upstream's request ids.
func answerInputs(ctx context.Context, ss *mcp.ServerSession, reqs mcp.InputRequestMap) (mcp.InputResponseMap, error) {
	out := mcp.InputResponseMap{}
	for id, r := range reqs {
		var (
			res mcp.InputResponse
			err error
		)
		switch p := r.(type) {
		case *mcp.ElicitParams:
			res, err = ss.Elicit(ctx, p)
		case *mcp.CreateMessageParams:
			res, err = ss.CreateMessage(ctx, p)
		case *mcp.ListRootsParams:
			res, err = ss.ListRoots(ctx, p)
		default:
			err = fmt.Errorf("mcpool gateway: input request %q of type %T cannot be relayed to a client of protocol version before 2026-07-28", id, r)
		}
		if err != nil {
			return nil, err
		}
		out[id] = res
	}
	return out, nil
}

// inputRounds calls the server through call and, for a client of an
// earlier era, answers input_required results through ss (see above),
// calling again with the answers and the server's requestState. call gets
// nil answers the first time: the downstream request's own are sent then.
// asked reads a result's input requests and state (none for nil).
func inputRounds[R any](ctx context.Context, ss *mcp.ServerSession, call func(answers mcp.InputResponseMap, state string) (R, error), asked func(R) (mcp.InputRequestMap, string)) (R, error) {
	var (
		answers mcp.InputResponseMap
		state   string
		zero    R
	)
	for range maxInputRounds {
		res, err := call(answers, state)
		reqs, st := asked(res)
		if err != nil || reqs == nil || mrtrClient(ss) {
			return res, err
		}
		if answers, err = answerInputs(ctx, ss, reqs); err != nil {
			return zero, err
		}
		state = st
	}
	return zero, fmt.Errorf("mcpool gateway: the server asked for input more than %d times in one request", maxInputRounds)
}

// callToolRounds calls the tool on up through inputRounds.
func callToolRounds(ctx context.Context, up Upstream, ss *mcp.ServerSession, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	return inputRounds(ctx, ss, func(answers mcp.InputResponseMap, state string) (*mcp.CallToolResult, error) {
		p := params
		if answers != nil {
			next := *params
			next.InputResponses, next.RequestState = answers, state
			p = &next
		}
		return up.CallTool(ctx, p)
	}, func(r *mcp.CallToolResult) (mcp.InputRequestMap, string) {
		if r == nil {
			return nil, ""
		}
		return r.InputRequests, r.RequestState
	})
}

// getPromptRounds gets the prompt from up through inputRounds.
func getPromptRounds(ctx context.Context, up Upstream, ss *mcp.ServerSession, params *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	return inputRounds(ctx, ss, func(answers mcp.InputResponseMap, state string) (*mcp.GetPromptResult, error) {
		p := params
		if answers != nil {
			next := *params
			next.InputResponses, next.RequestState = answers, state
			p = &next
		}
		return up.GetPrompt(ctx, p)
	}, func(r *mcp.GetPromptResult) (mcp.InputRequestMap, string) {
		if r == nil {
			return nil, ""
		}
		return r.InputRequests, r.RequestState
	})
}

// readResourceRounds reads the resource from up through inputRounds.
func readResourceRounds(ctx context.Context, up Upstream, ss *mcp.ServerSession, params *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	return inputRounds(ctx, ss, func(answers mcp.InputResponseMap, state string) (*mcp.ReadResourceResult, error) {
		p := params
		if answers != nil {
			next := *params
			next.InputResponses, next.RequestState = answers, state
			p = &next
		}
		return up.ReadResource(ctx, p)
	}, func(r *mcp.ReadResourceResult) (mcp.InputRequestMap, string) {
		if r == nil {
			return nil, ""
		}
		return r.InputRequests, r.RequestState
	})
}
