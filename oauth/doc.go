// Package oauth makes an HTTP MCP server (such as the mcpool gateway) an
// OAuth 2.1 resource server, as the MCP authorization specification
// (revision 2025-11-25, "Authorization") requires, and gives it the pieces
// that follow from having a caller's identity: per-user upstream tokens by
// token exchange, per-identity rate limits and an audit log.
//
//   - [ResourceServer] validates bearer access tokens: JWTs against the
//     issuer's JSON Web Key Set (RFC 7517; keys found through RFC 8414 or
//     OpenID Connect discovery, cached, refreshed on rotation), or opaque
//     tokens by introspection (RFC 7662). It checks signature, issuer,
//     audience (RFC 8707: the token must have been issued for this server),
//     expiry and required scopes, answers refusals with 401 or 403 and a
//     WWW-Authenticate header pointing at its Protected Resource Metadata
//     (RFC 9728), and serves that metadata.
//     Every authorization server URL, configured or discovered, must be
//     https (plain http only on loopback: [CheckEndpoint]), and a token
//     longer than [MaxTokenLength] is refused before any work is done.
//     Behind [ResourceServer.Middleware], a go-sdk MCP server's handlers
//     read the caller with [IdentityFromRequest], and the SDK binds each
//     session to the caller's subject.
//   - [Exchanger] trades a caller's validated token for one issued to an
//     upstream server (OAuth 2.0 Token Exchange, RFC 8693), because the
//     specification forbids passing the caller's token through ("Token
//     Passthrough" in its security considerations).
//   - [Limiter] rate-limits calls per identity with bounded memory.
//   - [Auditor] writes one JSON line per call: who, what, outcome, never the
//     arguments, results or tokens.
//
// Libraries: JWTs are parsed and verified with github.com/golang-jwt/jwt/v5,
// and keys come from github.com/MicahParks/keyfunc/v3 (on
// github.com/MicahParks/jwkset), because that pair is the JWKS cache most Go
// resource servers use, keeps cached keys when a refresh fails, and refreshes
// on an unknown key id under a rate limit, which is exactly the rotation
// behaviour a resource server needs, with a smaller surface than jwx.
//
// Tokens are secrets: no error, log line or String method of this package
// contains one.
package oauth
