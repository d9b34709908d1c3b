package oauth

import (
	"context"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// identityExtraKey is the key of the [Identity] in [auth.TokenInfo.Extra].
const identityExtraKey = "mcpool/oauth.identity"

// TokenInfo is the go-sdk's view of id: scopes, expiration, UserID (the
// subject, which the SDK's streamable HTTP handler binds each session to,
// so that another user cannot use it) and the Identity itself in Extra
// (see [IdentityFromRequest]).
func TokenInfo(id Identity) *auth.TokenInfo {
	return &auth.TokenInfo{
		Scopes:     id.Scopes,
		Expiration: id.Expiry,
		UserID:     id.Subject,
		Extra:      map[string]any{identityExtraKey: id},
	}
}

// IdentityFromRequest returns the identity of the client that sent an MCP
// request to a go-sdk server behind [ResourceServer.Middleware]. The SDK
// runs request handlers on a context of its own, not the HTTP request's, so
// there [IdentityFrom] finds nothing; the SDK passes the token info on in
// the request's Extra instead.
func IdentityFromRequest(req mcp.Request) (Identity, bool) {
	if req == nil {
		return Identity{}, false
	}
	extra := req.GetExtra()
	if extra == nil || extra.TokenInfo == nil {
		return Identity{}, false
	}
	id, ok := extra.TokenInfo.Extra[identityExtraKey].(Identity)
	return id, ok
}

// sdkTokenInfo puts the identity already in the request's context
// ([WithIdentity]) where the go-sdk looks for token info: the SDK's own
// middleware is the only way to set its context key, so it is given a
// verifier that answers from the context instead of checking the token
// again.
var sdkTokenInfo = auth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return nil, auth.ErrInvalidToken
	}
	return TokenInfo(id), nil
}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true, ClockSkew: maxLeeway})

// maxLeeway is the expiry tolerance given to the SDK's middleware: the
// ResourceServer already checked exp with its own leeway.
const maxLeeway = 24 * time.Hour
