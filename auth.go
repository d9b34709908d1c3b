package mcpool

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// This file holds what goes into every HTTP request: static
// headers, bearer tokens read per request, and per-call headers.

// TokenFunc supplies the bearer token for an HTTP request. The pool calls it
// for every request, so a rotated token reaches live sessions at once; after
// a 401 it calls it again once with refresh set and, if the token changed,
// retries the request (a 401 means the server did not run it). It must be
// safe for concurrent use and should cache: it sits on every call's path.
type TokenFunc func(ctx context.Context, refresh bool) (string, error)

// TokenSourceFunc adapts an oauth2.TokenSource (wrap it in
// oauth2.ReuseTokenSource so that it caches) to a TokenFunc. oauth2 sources
// cannot be told to refresh, so after a 401 the request is retried only if
// the source has meanwhile returned a different token.
func TokenSourceFunc(ts oauth2.TokenSource) TokenFunc {
	return func(context.Context, bool) (string, error) {
		t, err := ts.Token()
		if err != nil {
			return "", err
		}
		return t.AccessToken, nil
	}
}

type headersKey struct{}

// WithHeaders returns a context whose calls through the pool carry h on
// their HTTP request, and only on theirs: on a session shared by many
// callers, each call is its own POST, built with the call's context. Headers
// added by an earlier WithHeaders on ctx are kept unless h sets them again.
//
// What does not carry them: the session's standalone GET stream, its
// DELETE on close, and the connect (initialize), which use the pool's
// context; and stdio sessions, which have no HTTP. Set Config.Headers for
// headers every request needs.
func WithHeaders(ctx context.Context, h http.Header) context.Context {
	merged := h.Clone()
	if prev, ok := ctx.Value(headersKey{}).(http.Header); ok {
		merged = prev.Clone()
		maps.Copy(merged, h.Clone())
	}
	return context.WithValue(ctx, headersKey{}, merged)
}

// ErrUnauthorized is wrapped by the error of a request that got 401 even
// after the token was refreshed, or whose token could not be had (the
// TokenFunc failed). Only the server's 401 is permanent: a connect whose
// token could not be had is retried with backoff like any transient
// failure, and a call whose token could not be had was never sent, so it
// is not a lost session.
var ErrUnauthorized = errors.New("mcpool: unauthorized")

// tokenError is a request the pool did not send because its TokenFunc
// failed. It matches ErrUnauthorized, so callers can test for it, but it is
// not the server's 401: retrying may pass once the token source recovers.
type tokenError struct{ cause error }

// Error says the token could not be had, and why.
func (e *tokenError) Error() string {
	return "the Token func failed: " + unprefixed(e.cause)
}

// Unwrap returns ErrUnauthorized and the TokenFunc's error.
func (e *tokenError) Unwrap() []error { return []error{ErrUnauthorized, e.cause} }

// protocolHeader lists the headers the SDK sets for the protocol itself:
// user headers never replace them, or a session would break.
var protocolHeader = map[string]bool{
	"Mcp-Session-Id": true, "Mcp-Protocol-Version": true, "Accept": true,
	"Content-Type": true, "Content-Length": true, "Last-Event-Id": true,
}

// authTransport adds static headers, per-call headers and the bearer token
// to every request. It never logs or returns a header's value.
type authTransport struct {
	base   http.RoundTripper
	static http.Header
	token  TokenFunc
}

// RoundTrip sends req with the headers and token added, and after a 401
// retries once with a refreshed token.
func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	perCall, _ := req.Context().Value(headersKey{}).(http.Header)
	if len(t.static) == 0 && len(perCall) == 0 && t.token == nil {
		resp, err := t.base.RoundTrip(req) // nothing to add
		return track(req, resp, err)
	}
	r := req.Clone(req.Context()) // a RoundTripper must not modify req
	for k, v := range t.static {
		if !protocolHeader[http.CanonicalHeaderKey(k)] {
			r.Header[k] = v
		}
	}
	if perCall != nil {
		for k, v := range perCall {
			if !protocolHeader[http.CanonicalHeaderKey(k)] {
				r.Header[k] = v
			}
		}
	}
	if t.token == nil {
		resp, err := t.base.RoundTrip(r)
		return track(req, resp, err)
	}
	tok, err := t.token(req.Context(), false)
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, even on error
		}
		if tr := trackOf(req.Context()); tr != nil {
			tr.noToken.Store(true)
		}
		return nil, &tokenError{cause: err}
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return track(req, resp, err)
	}
	// 401: the server rejected the request without running it. Refresh
	// once and retry if the body can be sent again.
	fresh, terr := t.token(req.Context(), true)
	if terr != nil || fresh == tok || (req.Body != nil && req.GetBody == nil) {
		return track(req, resp, nil)
	}
	retry := req.Clone(req.Context())
	retry.Header = r.Header.Clone()
	retry.Header.Set("Authorization", "Bearer "+fresh)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = t.base.RoundTrip(retry)
	return track(retry, resp, err)
}

// track records, for a call made through the pool, what became of its own
// request (see callTrack): accepted, refused for its token, rate limited
// (with the server's Retry-After), or answered 400 or 404 for an unknown
// session.
func track(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
	tr := trackOf(req.Context())
	if tr == nil || err != nil {
		return resp, err
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		tr.delivered.Store(true)
	case resp.StatusCode == http.StatusUnauthorized:
		tr.unauthorized.Store(true)
	case resp.StatusCode == http.StatusTooManyRequests:
		tr.retryAfter.Store(int64(parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())))
		tr.rateLimited.Store(true)
	case resp.StatusCode == http.StatusBadRequest && req.Header.Get("Mcp-Session-Id") != "":
		if unknownSessionBody(resp) {
			tr.unknownSession.Store(true)
		}
	}
	return resp, nil
}

// unknownSessionBody reports whether a 400's body says the session is
// unknown (server-everything: "Bad Request: No valid session ID provided"),
// the one 400 that proves the request was not run. It reads at most 4 KB of
// the body and puts them back for the SDK.
func unknownSessionBody(resp *http.Response) bool {
	if resp.Body == nil {
		return false
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	return strings.Contains(strings.ToLower(string(head)), "session")
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the base.
func (t *authTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// withAuth returns a copy of c whose transport adds headers and tokens. The
// caller's client is never modified.
func withAuth(c *http.Client, s *settings) *http.Client {
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	token := s.Token
	if token == nil && s.BearerToken != "" {
		static := s.BearerToken
		token = func(context.Context, bool) (string, error) { return static, nil }
	}
	out := *c
	out.Transport = &authTransport{base: base, static: s.Headers.Clone(), token: token}
	return &out
}
