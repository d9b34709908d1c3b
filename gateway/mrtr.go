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

// callToolRounds calls the tool on up and, for a client of an earlier era,
// answers input_required results through it (see above).
func callToolRounds(ctx context.Context, up Upstream, ss *mcp.ServerSession, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	for range maxInputRounds {
		res, err := up.CallTool(ctx, params)
		if err != nil || res == nil || res.InputRequests == nil || mrtrClient(ss) {
			return res, err
		}
		answers, err := answerInputs(ctx, ss, res.InputRequests)
		if err != nil {
			return nil, err
		}
		next := *params
		next.InputResponses, next.RequestState = answers, res.RequestState
		params = &next
	}
	return nil, fmt.Errorf("mcpool gateway: the server asked for input more than %d times in one call", maxInputRounds)
}
