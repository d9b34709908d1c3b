package gateway

import (
	"bytes"
	"io"
	"net/http"
)

// peekLimit bounds how much of a stateless POST's body needsStream reads to
// decide; a larger body gets an SSE response, which is always correct.
const peekLimit = 64 << 10

// needsStream reports whether a stateless POST may need a text/event-stream
// response, and returns the request with its body restored. An SSE response
// carries the notifications made while the request runs (progress, when the
// request asked for it with a progressToken), but costs the gateway and
// its client more per call than a single application/json answer, in which
// the go-sdk drops such notifications (streamable HTTP, MCP spec
// 2025-11-25 "Sending Messages to the Server": the server may answer a
// POST with either). So only a request that mentions a progressToken, or
// escapes characters in a way that could hide one, or is too large to
// check, gets a stream. (Plain tools/call requests are answered by the
// relay, relay.go, before they get here.)
func needsStream(r *http.Request) (*http.Request, bool) {
	if r.Method != http.MethodPost || r.Body == nil {
		return r, true
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, peekLimit+1))
	r2 := r.Clone(r.Context())
	if err != nil || len(head) > peekLimit {
		// Let the SDK read (and refuse, if it must) the whole body.
		r2.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		return r2, true
	}
	r2.Body = io.NopCloser(bytes.NewReader(head))
	r2.ContentLength = int64(len(head))
	return r2, streamNeeded(head)
}

// streamNeeded reports whether a stateless POST whose whole body is body
// may need a text/event-stream response (see needsStream).
func streamNeeded(body []byte) bool {
	return len(body) > peekLimit || bytes.Contains(body, []byte("progressToken")) || bytes.Contains(body, []byte(`\u`))
}
