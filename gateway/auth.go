package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/oauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// No token passthrough. The MCP authorization specification (revision
// 2025-11-25, "Access Token Privilege Restriction", and the security best
// practices' "Token Passthrough") forbids an MCP server to accept tokens not
// issued for it and to pass the client's token on to another server: the
// upstream could not tell the token was meant for the gateway (a confused
// deputy), and a token stolen from one server would open every server
// behind the gateway. So the Authorization header of a downstream request
// is never copied upstream, in any mode: passthrough forwards only the
// other headers a server's ForwardHeaders names, and per-user upstream
// access uses TokenExchange (RFC 8693), a token issued for the upstream.

// checkPassthrough refuses a passthrough server that would forward the
// gateway's token or has nothing to forward.
func checkPassthrough(s Server, auth bool) error {
	for _, h := range s.ForwardHeaders {
		if http.CanonicalHeaderKey(h) == "Authorization" {
			return fmt.Errorf("gateway: server %q: forwardHeaders names Authorization, which carries the client's token for the gateway: "+
				"the MCP authorization specification forbids passing it to another server (token passthrough); "+
				"use tokenExchange for per-user upstream tokens, or forward a header of the upstream's own", s.Name)
		}
	}
	if s.Config.BearerToken != "" || s.Config.Token != nil || s.Config.OAuthHandler != nil {
		return fmt.Errorf("gateway: server %q: mode passthrough sends each caller's own credentials, never the gateway's: "+
			"remove its BearerToken, Token and OAuthHandler", s.Name)
	}
	for name := range s.Config.Headers {
		if k := http.CanonicalHeaderKey(name); k == "Authorization" || k == "Cookie" || slices.ContainsFunc(s.ForwardHeaders, func(f string) bool {
			return http.CanonicalHeaderKey(f) == k
		}) {
			return fmt.Errorf("gateway: server %q: mode passthrough sends each caller's own credentials, never the gateway's, "+
				"yet its headers set %s, which would go upstream with every caller's request (and stand in for a caller that sent none); "+
				"remove it from headers", s.Name, k)
		}
	}
	if len(s.ForwardHeaders) == 0 && s.TokenExchange == nil {
		return fmt.Errorf("gateway: server %q: mode passthrough has nothing per caller to send upstream: "+
			"set tokenExchange (per-user tokens issued for the upstream) or forwardHeaders (headers other than Authorization)", s.Name)
	}
	if s.TokenExchange != nil && !auth {
		return fmt.Errorf("gateway: server %q: tokenExchange exchanges the caller's validated token, so the gateway needs auth (an issuer to validate tokens with)", s.Name)
	}
	return nil
}

// callerIdentity is the identity of the client that sent req: the
// validated token's with Options.Auth, else the zero Identity.
func callerIdentity(req mcp.Request) oauth.Identity {
	id, _ := oauth.IdentityFromRequest(req)
	return id
}

// subjectKey is the identity's key for rate limits: its subject, or "" for
// callers without one (Token or no authentication: one shared identity).
func subjectKey(id oauth.Identity) string { return id.Subject }

// partitionOf returns the key of the caller's upstream partition on a
// passthrough server: the forwarded headers and, with TokenExchange, the
// caller's grant (oauth.Identity.Grant: issuer, subject, client, scopes),
// encoded as JSON.
func (srv *server) partitionOf(req mcp.Request) (string, error) {
	part := partition{}
	if len(srv.ForwardHeaders) > 0 {
		h := requestHeader(req)
		for _, name := range srv.ForwardHeaders {
			if v := h.Values(name); len(v) > 0 {
				if part.Headers == nil {
					part.Headers = http.Header{}
				}
				part.Headers[http.CanonicalHeaderKey(name)] = v
			}
		}
		if part.Headers == nil && srv.TokenExchange == nil {
			return "", rpcError(CodeUnauthorized, "server "+srv.name+" uses the caller's own credentials, and the request carried none (headers "+joinNames(srv.ForwardHeaders)+")",
				ErrorData{Server: srv.name, Reason: "unauthorized"})
		}
	}
	if srv.TokenExchange != nil {
		id := callerIdentity(req)
		if id.Subject == "" {
			return "", rpcError(CodeUnauthorized, "server "+srv.name+" needs a token exchanged for the caller's, and the request carried no validated token",
				ErrorData{Server: srv.name, Reason: "unauthorized"})
		}
		part.Grant = id.Grant() // the same user through another client, or with other scopes, is another pool
		srv.sec.remember(id)
	}
	b, _ := json.Marshal(part) // map keys sorted: one partition, one encoding
	return string(b), nil
}

// partition is a passthrough server's key of one caller's pool.
type partition struct {
	Headers http.Header `json:"h,omitempty"`
	// Grant is the caller's oauth.Identity.Grant (issuer, subject, client
	// and scopes) with TokenExchange: each exchanged token acts for the
	// token it was exchanged from (RFC 8693 section 2.1), so two clients
	// of one user never share an upstream session or its token.
	Grant string `json:"g,omitempty"`
}

// forIdentity sets the partition's headers and, with TokenExchange, its
// exchanged token on its pool's Config.
func (srv *server) forIdentity(key string, cfg *mcpool.Config) error {
	var part partition
	if err := json.Unmarshal([]byte(key), &part); err != nil {
		return err
	}
	if len(part.Headers) > 0 {
		h := cfg.Headers.Clone()
		if h == nil {
			h = http.Header{}
		}
		for k, v := range part.Headers {
			h[k] = v
		}
		cfg.Headers = h
	}
	if x := srv.TokenExchange; x != nil && part.Grant != "" {
		grant := part.Grant
		cfg.Token = func(ctx context.Context, refresh bool) (string, error) {
			v, ok := srv.sec.idents.Load(grant)
			if !ok {
				return "", oauth.ErrNoIdentity
			}
			id := *v.(*oauth.Identity)
			if refresh {
				x.Forget(id.Subject)
			}
			return x.Token(ctx, id)
		}
	}
	return nil
}

// exchange gets the caller's upstream token before the call, so that a
// failed exchange is answered as such (CodeUnauthorized, reason
// "exchange_failed") instead of as a failed connect. The token is cached
// by the Exchanger for the pool's TokenFunc.
func (g *Gateway) exchange(ctx context.Context, srv *server, req mcp.Request) error {
	if srv.TokenExchange == nil {
		return nil
	}
	id := callerIdentity(req)
	if _, err := srv.TokenExchange.Token(ctx, id); err != nil {
		if ctx.Err() != nil && !errors.Is(err, oauth.ErrExchange) {
			return err
		}
		msg := g.sec.String(fmt.Sprintf("server %s: the caller's token could not be exchanged for one issued to the server: %v", srv.name, err))
		// Logged once per call: the lists and the name lookup of the same
		// request fail alike, at debug level.
		level := slog.LevelDebug
		if isCall(req) {
			level = slog.LevelWarn
		}
		g.log.Log(ctx, level, "token exchange failed", "server", srv.name, "subject", id.Subject, "error", err)
		return rpcError(CodeUnauthorized, msg, ErrorData{Server: srv.name, Reason: "exchange_failed"})
	}
	return nil
}

// serveMetadata mounts the Protected Resource Metadata when the gateway is
// a resource server.
func (g *Gateway) serveMetadata(mux *http.ServeMux) {
	if g.opts.Auth == nil {
		return
	}
	for _, p := range g.opts.Auth.MetadataPaths() {
		mux.Handle(p, g.opts.Auth.MetadataHandler())
	}
}

// remember keeps the grant's latest identity for its pool's TokenFunc,
// and now and then forgets the identities whose tokens have expired, so
// that memory stays bounded by the grants active within a token lifetime.
func (sec *serverSecurity) remember(id oauth.Identity) {
	sec.idents.Store(id.Grant(), &id)
	if sec.stored.Add(1)%1024 != 0 {
		return
	}
	now := time.Now()
	sec.idents.Range(func(k, v any) bool {
		if e := v.(*oauth.Identity).Expiry; !e.IsZero() && now.After(e) {
			sec.idents.CompareAndDelete(k, v)
		}
		return true
	})
}

// isCall reports whether req is a call (not a list).
func isCall(req mcp.Request) bool {
	switch req.(type) {
	case *mcp.CallToolRequest, *mcp.GetPromptRequest, *mcp.ReadResourceRequest:
		return true
	}
	return false
}
