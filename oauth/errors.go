package oauth

import (
	"errors"
	"strings"
)

// Errors a [ResourceServer] returns for a refused request. Each is wrapped
// with a short description (never the token), so test with errors.Is.
// [ErrInsufficientScope] is answered with 403; every other one with 401.
var (
	// ErrNoToken: the request carries no Authorization: Bearer header.
	ErrNoToken = errors.New("no bearer token")
	// ErrMalformedToken: the header or the token cannot be parsed.
	ErrMalformedToken = errors.New("malformed token")
	// ErrBadSignature: the token is unsigned (alg "none"), signed with an
	// algorithm this server does not accept, or its signature does not
	// verify with the issuer's key of that key id.
	ErrBadSignature = errors.New("token signature is invalid")
	// ErrUnknownKey: the token's key id is not among the issuer's keys, even
	// after a refresh of the key set (a foreign key, or the key set could not
	// be fetched: see the log).
	ErrUnknownKey = errors.New("token signed by an unknown key")
	// ErrKeysUnavailable: the issuer's metadata or key set has never been
	// fetched, so no token can be verified yet (see the log).
	ErrKeysUnavailable = errors.New("issuer keys unavailable")
	// ErrTokenExpired: exp is in the past (beyond the leeway), or absent.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenNotYetValid: nbf is in the future (beyond the leeway).
	ErrTokenNotYetValid = errors.New("token not yet valid")
	// ErrWrongIssuer: iss is not the configured issuer.
	ErrWrongIssuer = errors.New("token issued by another issuer")
	// ErrWrongAudience: aud does not contain this server's audience: the
	// token was issued for another resource.
	ErrWrongAudience = errors.New("token issued for another audience")
	// ErrTokenInactive: the introspection endpoint says the token is not
	// active (revoked, expired or unknown).
	ErrTokenInactive = errors.New("token inactive")
	// ErrIntrospection: the introspection endpoint could not be asked or
	// answered with an error; the token is refused (fail closed).
	ErrIntrospection = errors.New("token introspection failed")
	// ErrInsufficientScope: the token is valid but lacks a required scope.
	ErrInsufficientScope = errors.New("insufficient scope")
)

// errorCode is the RFC 6750 error code for a refusal: "" for a request
// without credentials (section 3.1), insufficient_scope for a missing scope,
// invalid_token for everything else.
func errorCode(err error) string {
	switch {
	case errors.Is(err, ErrNoToken):
		return ""
	case errors.Is(err, ErrInsufficientScope):
		return "insufficient_scope"
	case errors.Is(err, ErrMalformedToken):
		// RFC 6750 reserves invalid_request for a malformed request; a
		// malformed token is still invalid_token, which is what clients
		// act on (they fetch a new one).
		return "invalid_token"
	default:
		return "invalid_token"
	}
}

// quoteSafe makes s fit an RFC 7230 quoted-string in a header parameter:
// printable ASCII without quotes or backslashes.
func quoteSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\'')
		case r < 0x20 || r > 0x7e:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
