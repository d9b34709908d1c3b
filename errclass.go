package mcpool

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// How a dead session shows up (shared/NOTES.md, measured against go-sdk
// v1.8.0 and server-everything):
//   - stdio child gone: the call in flight fails with io.EOF, later calls
//     with mcp.ErrConnectionClosed, a call written just as it died with
//     EPIPE (the request never reached a live process);
//   - HTTP session expired (404): mcp.ErrSessionMissing;
//   - server-everything's unknown session: a 400 whose JSON body the SDK
//     cannot decode (it has no id), so only the status text "Bad Request"
//     is left; the SDK breaks the connection after it.
// Network errors, 5xx and 429 do not break a session (go-sdk #683, #723):
// the pool probes the session instead.

// isSessionGone reports whether err proves the session can take no more
// calls.
func isSessionGone(err error) bool {
	if errors.Is(err, mcp.ErrConnectionClosed) || errors.Is(err, mcp.ErrSessionMissing) {
		return true
	}
	if isRejected(err) {
		// Failed in transit ("Post …: EOF" on a stale keep-alive
		// connection): the session may be fine; the pool probes it.
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		isBrokenPipe(err) || isUnknownSession400(err)
}

// isRejected reports the SDK's "rejected by transport" around a request
// that failed on its way (jsonrpc2.ErrRejected).
func isRejected(err error) bool {
	var rpcErr *jsonrpc.Error
	return errors.As(err, &rpcErr) && rpcErr.Code == codeRejected
}

func isUnknownSession400(err error) bool {
	return !isServerAnswer(err) && strings.HasSuffix(err.Error(), ": Bad Request")
}

// codeRejected is the SDK's "rejected by transport" (jsonrpc2.ErrRejected):
// a JSON-RPC-shaped error made on the client side for a request that failed
// in transit, not an answer from the server.
const codeRejected = -32005

// isBrokenPipe reports a write to a stdio child that has exited. (Not
// net.ErrClosed: over HTTP that can come after the request was written.)
func isBrokenPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed)
}

// neverSent reports whether err proves the request was not executed by the
// server: it was refused before it was written (the connection was already
// closed, or could not be dialled), or the server rejected the session
// before reading the request (404, 400 unknown session).
func neverSent(err error) bool {
	if errors.Is(err, mcp.ErrSessionMissing) || isUnknownSession400(err) || isBrokenPipe(err) {
		return true
	}
	// The SDK formats the closing cause with %v, so an io.EOF inside means the
	// call was in flight when the connection broke; without it, the call was
	// refused before it was written.
	if errors.Is(err, mcp.ErrConnectionClosed) && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// isTransportFailure reports a request that failed in transit: a network
// error, or an HTTP status the SDK rejected without a JSON-RPC answer (5xx,
// 429). Such errors do not break a session in the SDK (go-sdk #683), so the
// pool probes the session rather than condemning it, and the call counts as
// lost: retried when safe, else ErrSessionLost.
func isTransportFailure(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return isRejected(err)
}

// isServerAnswer reports whether err is the server's own JSON-RPC error,
// which proves the session works.
func isServerAnswer(err error) bool {
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code == codeRejected {
		return false
	}
	return !errors.Is(err, mcp.ErrConnectionClosed) && !errors.Is(err, mcp.ErrSessionMissing)
}
