package mcpool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// How a dead session shows up (measured against go-sdk
// v1.8.0 and server-everything):
//   - stdio child gone: the call in flight fails with io.EOF, later calls
//     with mcp.ErrConnectionClosed, a call written just as it died with
//     EPIPE (the request never reached a live process);
//   - HTTP session expired (404): mcp.ErrSessionMissing;
//   - server-everything's unknown session: a 400 whose JSON body the SDK
//     cannot decode (it has no id), so only the status text "Bad Request"
//     is left; the SDK breaks the connection after it (the pool's HTTP
//     transport reads the body to tell it from other 400s);
//   - anything else that ends the SDK's read loop or fails a write: see
//     breaksSession and brokenNow.
// Network errors and 5xx do not break a session (go-sdk #683, #723): the
// pool probes the session instead. A 429 is neither: see RateLimitedError.

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

// isUnknownSession400 reports the SDK's error for a 400 whose body it could
// not read as a JSON-RPC answer. It breaks the session in the SDK, whatever
// the reason; whether the request ran is told apart by callTrack, which saw
// the body (see unknownSessionBody).
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

// isTokenError reports a request not sent because its token could not be
// had (see tokenError).
func isTokenError(err error) bool {
	var te *tokenError
	return errors.As(err, &te)
}

// neverSent reports whether err proves the request was not executed by the
// server: it was refused before it was written (the connection was already
// closed, or could not be dialled), or the server rejected the session
// before reading the request (404). A 400 proves it only when its body says
// the session is unknown, which callTrack sees and the error does not.
func neverSent(err error) bool {
	if errors.Is(err, mcp.ErrSessionMissing) || isBrokenPipe(err) || isTokenError(err) {
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

// breaksSession reports the SDK's errors after which it will not use the
// session again (go-sdk v1.8.0): the read loop ends on any error from the
// transport's Read, and a failed write that was not "rejected by transport"
// sets the connection's write error; either way every later request fails
// with mcp.ErrConnectionClosed. These are the errors the call in flight gets
// when that happens:
//   - stdio: a line that is not JSON (*json.SyntaxError), a message over
//     the SDK's 16 MB frame limit (mcp.DefaultMaxLineLength), trailing data
//     after a message, a batch where none is allowed;
//   - streamable HTTP: a 2xx answer with a content type other than JSON or
//     SSE, a body or event that does not decode, an SSE event over
//     MaxEventSize, a 4xx the SDK cannot read as a JSON-RPC answer (other
//     than 404, which is mcp.ErrSessionMissing), a changed session id.
//
// Errors of other shapes are settled by brokenNow.
func breaksSession(err error) bool {
	if isServerAnswer(err) || isRejected(err) {
		return false
	}
	var syn *json.SyntaxError
	var rb *rawBroken // rawcall.go: where the SDK would fail the connection
	if errors.As(err, &syn) || errors.As(err, &rb) {
		return true
	}
	msg := err.Error()
	for _, s := range sessionBreakingTexts {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// sessionBreakingTexts are the texts of the SDK's unexported errors that
// breaksSession recognises (mcp/transport.go, mcp/streamable.go,
// mcp/event.go of go-sdk v1.8.0).
var sessionBreakingTexts = []string{
	"exceeded the configured maximum line length",
	tooLargeText, // the pool's own (outputHead), after the SDK's fashion
	"invalid trailing data at the end of stream",
	"JSON-RPC batching is not supported",
	"empty batch",
	"unsupported content type",
	"failed to decode response",
	"failed to decode event",
	"failed to read body",
	"malformed event",
	"mismatching session IDs",
	"standalone SSE request failed",
	"failed to reconnect",
	"retries without progress",
}

// brokenNow asks the SDK whether it still uses the session: on a connection
// whose reader or writer failed, a request is refused before anything is
// written, with mcp.ErrConnectionClosed. (The SDK records the failure before
// it hands the failing call its error, so the answer is settled.) On a live
// session this is an ordinary ping, bounded by timeout; a ping that meets
// the session's end (404) settles it too.
func brokenNow(ctx context.Context, cs *mcp.ClientSession, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := cs.Ping(ctx, nil)
	if err == nil || ctx.Err() != nil {
		return false
	}
	// Refused as broken, or the ping itself met the session's end (a 404
	// from a server that dropped the session meanwhile).
	return isSessionGone(err) || breaksSession(err)
}

// isRateLimited reports the SDK's error for a 429 (the request was refused,
// the session is fine: go-sdk #723).
func isRateLimited(err error) bool {
	return isRejected(err) && strings.HasSuffix(err.Error(), http.StatusText(http.StatusTooManyRequests))
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110, section 10.2.3). It returns 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

// maxRetryAfter caps a server's Retry-After, against a typo of a day.
const maxRetryAfter = time.Hour

// isPermanent reports a connect failure that retrying will not cure (see
// ErrMisconfigured): the program cannot be started (not found, not
// executable, its Dir missing), it or the HTTP server answered something
// that is not MCP (misconfigError), the server refused the credentials
// (401, 403), or nothing serves MCP at the URL (404 to the first request,
// which carries no session id yet). Everything else (refused, reset, EOF, a
// child that exited, a timeout, a 5xx, a 429) may pass when the server is
// back.
func isPermanent(err error) bool {
	if isTokenError(err) {
		// The pool's own token lookup failed, not the server: the token
		// source may recover.
		return false
	}
	var ue *unauthorizedError
	var me *misconfigError
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.As(err, &ue) || errors.As(err, &me) {
		return true
	}
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Cause == nil {
		return false
	}
	if ce.Permanent {
		return true
	}
	msg := ce.Cause.Error()
	return strings.HasSuffix(msg, ": "+"Forbidden") || strings.HasSuffix(msg, ": "+"Not Found") ||
		strings.HasSuffix(msg, ": "+"Unauthorized")
}

// misconfigError is a connect that met something other than an MCP server:
// what was seen, and what to check.
type misconfigError struct {
	seen, check string
	cause       error
}

// Error says what was seen, what to check, then the SDK's error.
func (e *misconfigError) Error() string {
	return e.seen + "; " + e.check + " (" + unprefixed(e.cause) + ")"
}

// Unwrap returns the SDK's error.
func (e *misconfigError) Unwrap() error { return e.cause }

// misconfigured explains a failed connect that met something other than an
// MCP server, from what the pool recorded on the way (track: HTTP answers
// and redirects; head: a stdio server's first output), or returns nil.
func misconfigured(err error, track *connectTrack, head *outputHead) error {
	if err == nil || isTokenError(err) {
		return nil
	}
	if head != nil && (errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
		return &misconfigError{
			seen:  "the server's program cannot be started",
			check: "check its command (installed? on PATH, or given by its full path? executable?) and its working directory (Command.Dir; \"cwd\" in a config file)",
			cause: err,
		}
	}
	if head != nil {
		var syn *json.SyntaxError
		frame := isFrameTooLarge(err)
		msg := err.Error()
		if frame || errors.As(err, &syn) || strings.Contains(msg, "invalid trailing data") ||
			strings.Contains(msg, "invalid character") || strings.Contains(msg, "invalid message version tag") ||
			strings.Contains(msg, "unmarshaling jsonrpc message") {
			bad := head.offending()
			if frame {
				return &misconfigError{
					seen:  fmt.Sprintf("the server wrote a line over the %d MB frame limit on stdout during initialize (it begins %s)", frameLimit>>20, quoteHead(bad)),
					check: "check that the command starts an MCP server over stdio and that it writes only JSON-RPC messages, one per line, on stdout",
					cause: err,
				}
			}
			if bad != nil {
				return &misconfigError{
					seen:  "the server wrote something other than JSON-RPC on stdout during initialize: " + quoteHead(bad),
					check: "check that the command starts an MCP server over stdio (some need an argument such as \"stdio\") and that it logs to stderr, not stdout",
					cause: err,
				}
			}
		}
	}
	if track == nil {
		return nil
	}
	status, answer, redirects := track.seen()
	switch {
	case redirects != nil:
		return &misconfigError{
			seen:  "the URL redirects in a loop: " + strings.Join(redirects, " -> "),
			check: "check the URL (a trailing slash, http vs https, a login page) and the server's redirect rules",
			cause: err,
		}
	case answer == "":
		return nil
	case status == http.StatusUnauthorized:
		// unauthorizedError explains it; the answer's first bytes add
		// little and may echo secrets.
		return nil
	case status == http.StatusForbidden:
		return &misconfigError{
			seen:  "the server refused access (403 Forbidden)",
			check: "check that the credentials (BearerToken, Token, headers) grant access to this server: scopes, roles, allowed origins",
			cause: err,
		}
	case status == http.StatusNotFound:
		return &misconfigError{
			seen:  "the URL answered " + answer,
			check: "nothing serves MCP at this path: check the URL (MCP servers often serve /mcp)",
			cause: err,
		}
	}
	return &misconfigError{
		seen:  "the URL answered " + answer + ", not MCP (application/json or text/event-stream)",
		check: "check that the URL is the server's MCP endpoint (often /mcp), not a web page, a proxy's error page or a health check",
		cause: err,
	}
}

// isFrameTooLarge reports the SDK's error for a stdio line over its frame
// limit (mcp.DefaultMaxLineLength), or the pool's own for an HTTP answer.
func isFrameTooLarge(err error) bool {
	msg := err.Error()
	return errors.Is(err, ErrResponseTooLarge) || strings.Contains(msg, "exceeded the configured maximum line length") ||
		strings.Contains(msg, tooLargeText)
}

// tooLargeCause makes err, an answer over the frame limit, match
// ErrResponseTooLarge and say so.
func tooLargeCause(err error) error {
	if errors.Is(err, ErrResponseTooLarge) {
		return err
	}
	var te *tooLargeError
	if errors.As(err, &te) {
		return te
	}
	return fmt.Errorf("%w: %w", tooLarge(frameLimit+1), err)
}
