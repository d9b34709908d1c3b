package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Identity is the caller a validated access token stands for.
//
// Token is the raw access token, kept so that it can be exchanged for an
// upstream token ([Exchanger]); it is a secret: String, GoString, LogValue
// and JSON encoding leave it out, and it must never be forwarded upstream.
type Identity struct {
	// Subject is the token's sub: the user (or, for a client credentials
	// token, the client). Rate limits, upstream sessions and audit lines
	// are keyed by it.
	Subject string `json:"subject"`
	// ClientID is the OAuth client the token was issued to (client_id,
	// else azp), "" if the token does not say.
	ClientID string `json:"client_id,omitempty"`
	// Issuer is the token's iss.
	Issuer string `json:"issuer,omitempty"`
	// Scopes are the token's scopes (scope, space-separated, or scp).
	Scopes []string `json:"scopes,omitempty"`
	// Expiry is when the token expires; zero if it does not say.
	Expiry time.Time `json:"expiry,omitzero"`
	// Token is the raw access token. Secret; see the type's doc.
	Token string `json:"-"`
}

// HasScope reports whether the identity's token carries scope s.
func (id Identity) HasScope(s string) bool { return slices.Contains(id.Scopes, s) }

// Grant identifies what the token grants: the issuer, the subject, the
// client it was issued to and its scopes (in any order). Two tokens with
// one Grant stand for the same user through the same client with the same
// rights, so per-user upstream state authorized by a token exchanged from
// one ([Exchanger]) may serve the other: key such state (pooled upstream
// sessions, the identity whose token a pool exchanges) by Grant, not by
// Subject, which two clients of one user share. Rate limits and audit
// lines, which are about the user, stay keyed by Subject. The value is an
// opaque string without the token.
func (id Identity) Grant() string {
	scopes := slices.Clone(id.Scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	b, _ := json.Marshal([]any{id.Issuer, id.Subject, id.ClientID, scopes})
	return string(b)
}

// String describes the identity without its token.
func (id Identity) String() string {
	return fmt.Sprintf("subject=%q client=%q scopes=%q token=[redacted]", id.Subject, id.ClientID, strings.Join(id.Scopes, " "))
}

// GoString is String, so that %#v does not print the token either.
func (id Identity) GoString() string { return "oauth.Identity{" + id.String() + "}" }

// LogValue makes slog log the identity without its token.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("subject", id.Subject),
		slog.String("client_id", id.ClientID),
		slog.String("scopes", strings.Join(id.Scopes, " ")),
	)
}

type identityKey struct{}

// WithIdentity returns a context carrying id. The [ResourceServer]'s
// middleware does this for every request it lets through.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity in ctx, if any.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
