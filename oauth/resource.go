package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Config describes the authorization server a [ResourceServer] trusts and
// what it requires of tokens. Issuer and Audience are required.
type Config struct {
	// Issuer is the authorization server's issuer identifier: an https URL
	// (http only on a loopback host, see [CheckEndpoint]). Tokens must carry
	// it as iss, and its metadata is discovered from it (RFC 8414 section 3,
	// then OpenID Connect Discovery) unless JWKSURL is set; the endpoints
	// that metadata names must pass [CheckEndpoint] too.
	Issuer string
	// Audience is this server's canonical URI (RFC 8707), for the gateway
	// its public /mcp URL: a token's aud (a string or an array) must
	// contain it exactly. It is also the resource of the Protected Resource
	// Metadata.
	Audience string
	// JWKSURL is the issuer's JSON Web Key Set (https; http only on
	// loopback); "" to discover it (the metadata's jwks_uri).
	JWKSURL string
	// IntrospectionURL is the issuer's RFC 7662 introspection endpoint
	// (https; http only on loopback), to validate opaque (non-JWT) tokens,
	// authenticated with ClientID and ClientSecret (HTTP Basic), which it
	// then requires. "" refuses opaque tokens as malformed.
	IntrospectionURL string
	// ClientID and ClientSecret authenticate this server to the
	// introspection endpoint (client_secret_basic), which RFC 7662 section
	// 2.1 requires to authorize its callers, so that nobody else can probe
	// tokens there. ClientSecret is a secret: no error or log line of this
	// package contains it.
	ClientID     string
	ClientSecret string
	// IntrospectionCacheTTL is how long an introspection answer is reused
	// for the same token (never past the token's exp). Zero means 30s.
	IntrospectionCacheTTL time.Duration
	// ValidationCacheTTL, if positive, reuses a verified JWT's identity for
	// up to this long (never past its exp) without verifying its signature
	// again, which makes a repeated token cost a hash instead of a
	// signature check (see the package benchmark). A key removed from the
	// key set then still admits tokens verified with it for up to this
	// long. Zero verifies every request.
	ValidationCacheTTL time.Duration
	// Scopes are the scopes every token must carry (all of them); missing
	// ones are answered with 403 insufficient_scope. They are also the
	// metadata's scopes_supported. Empty requires none.
	Scopes []string
	// Leeway is the clock skew allowed on exp and nbf. Zero means 30s;
	// negative means none.
	Leeway time.Duration
	// ResourceMetadataURL is where the Protected Resource Metadata is
	// served, as clients reach it; "" derives it from Audience by RFC 9728
	// section 3.1 (https://host/mcp → https://host/.well-known/oauth-protected-resource/mcp).
	ResourceMetadataURL string
	// JWKSRefreshInterval is how often the key set is refreshed in the
	// background. Zero means one hour.
	JWKSRefreshInterval time.Duration
	// JWKSMinRefreshInterval bounds refreshes caused by tokens with an
	// unknown key id (rotation) and retries of a failed discovery: at most
	// one per interval. A token with an unknown key id in between is
	// refused (after waiting at most 5s, if the next refresh is due by
	// then). Zero means one minute.
	JWKSMinRefreshInterval time.Duration
	// HTTPClient fetches metadata, keys and introspection answers. Nil
	// means a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives the few lines this package logs (key set or metadata
	// unreachable). Nil means slog.Default().
	Logger *slog.Logger
}

// acceptedAlgs are the JWS algorithms accepted: asymmetric only, so neither
// "none" nor an HMAC keyed with a public key can pass.
var acceptedAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// ResourceServer validates bearer tokens for one audience. Its methods are
// safe for concurrent use. Close it to stop its key refresh.
type ResourceServer struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	parser *jwt.Parser
	prmURL string
	prm    []byte

	// discoverMu serialises discovery; kf is set once it succeeded.
	discoverMu sync.Mutex
	discoverLm *rate.Limiter
	kfMu       sync.RWMutex
	kf         keyfunc.Keyfunc

	introspect *tokenCache
	verified   *tokenCache // nil unless Config.ValidationCacheTTL > 0
}

// New returns a ResourceServer for cfg. It checks the configuration and
// tries once to discover the issuer's keys, within ctx; if the issuer is
// unreachable it logs that and retries on later requests (tokens are
// refused meanwhile), so a server can start while its authorization server
// is down. It fails only on an invalid configuration.
func New(ctx context.Context, cfg Config) (*ResourceServer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	} else if cfg.Leeway < 0 {
		cfg.Leeway = 0
	}
	if cfg.IntrospectionCacheTTL <= 0 {
		cfg.IntrospectionCacheTTL = 30 * time.Second
	}
	if cfg.JWKSRefreshInterval <= 0 {
		cfg.JWKSRefreshInterval = time.Hour
	}
	if cfg.JWKSMinRefreshInterval <= 0 {
		cfg.JWKSMinRefreshInterval = time.Minute
	}
	rs := &ResourceServer{cfg: cfg, log: cfg.Logger, client: secureClient(cfg.HTTPClient)}
	if rs.log == nil {
		rs.log = slog.Default()
	}
	rs.parser = jwt.NewParser(
		jwt.WithValidMethods(acceptedAlgs),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
	)
	rs.prmURL = cfg.ResourceMetadataURL
	if rs.prmURL == "" {
		rs.prmURL = MetadataURL(cfg.Audience)
	}
	prm := map[string]any{
		"resource":                 cfg.Audience,
		"authorization_servers":    []string{cfg.Issuer},
		"bearer_methods_supported": []string{"header"},
	}
	if len(cfg.Scopes) > 0 {
		prm["scopes_supported"] = cfg.Scopes
	}
	rs.prm, _ = json.Marshal(prm)
	rs.discoverLm = rate.NewLimiter(rate.Every(cfg.JWKSMinRefreshInterval), 1)
	if cfg.IntrospectionURL != "" {
		rs.introspect = newTokenCache(cfg.IntrospectionCacheTTL)
	}
	if cfg.ValidationCacheTTL > 0 {
		rs.verified = newTokenCache(cfg.ValidationCacheTTL)
	}
	rs.ctx, rs.cancel = context.WithCancel(context.Background())
	_, _ = rs.keys(ctx) // errors are logged; later requests retry
	return rs, nil
}

// Validate checks c as [New] does. Issuer, JWKSURL and IntrospectionURL
// must pass [CheckEndpoint] (https; http only on a loopback host);
// Audience and ResourceMetadataURL must be absolute http(s) URLs; an
// IntrospectionURL needs ClientID and ClientSecret (RFC 7662 section 2.1:
// the endpoint must authorize its callers); a ClientSecret needs a
// ClientID. Its errors are [*ConfigError]s.
func (c Config) Validate() error {
	if c.Issuer == "" {
		return &ConfigError{Field: "Config.Issuer", Reason: "is required"}
	}
	if err := endpointField("Config.Issuer", c.Issuer); err != nil {
		return err
	}
	if c.Audience == "" {
		return &ConfigError{Field: "Config.Audience", Reason: "is required"}
	}
	for _, f := range []struct {
		name, url string
		endpoint  bool
	}{{"Audience", c.Audience, false}, {"JWKSURL", c.JWKSURL, true}, {"IntrospectionURL", c.IntrospectionURL, true},
		{"ResourceMetadataURL", c.ResourceMetadataURL, false}} {
		switch {
		case f.url == "":
		case f.endpoint:
			if err := endpointField("Config."+f.name, f.url); err != nil {
				return err
			}
		case !httpURL(f.url):
			return &ConfigError{Field: "Config." + f.name, Reason: "must be an absolute http(s) URL"}
		}
	}
	// The reasons name no field but their own, so that a config file can
	// quote them under its own keys.
	switch {
	case c.ClientSecret != "" && c.ClientID == "":
		return &ConfigError{Field: "Config.ClientSecret", Reason: "is set without a client ID"}
	case c.IntrospectionURL != "" && (c.ClientID == "" || c.ClientSecret == ""):
		return &ConfigError{Field: "Config.ClientID", Reason: "is required with an introspection URL, and so is the client secret: " +
			"RFC 7662 section 2.1 has the introspection endpoint authorize its callers, so that nobody else can probe tokens there"}
	}
	return nil
}

// httpURL reports whether s is an absolute http or https URL.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// Close stops the background key refresh. The ResourceServer still
// validates tokens with the keys it holds.
func (rs *ResourceServer) Close() error {
	rs.cancel()
	return nil
}

// MetadataURL is where RFC 9728 section 3.1 puts the Protected Resource
// Metadata of the resource at resource: the well-known path inserted between
// host and path.
func MetadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return ""
	}
	path := strings.TrimSuffix(u.Path, "/")
	return u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + path
}

// ResourceMetadataURL is the URL the WWW-Authenticate header points at.
func (rs *ResourceServer) ResourceMetadataURL() string { return rs.prmURL }

// keys returns the key function, discovering the issuer's key set first if
// that has not succeeded yet (at most once per JWKSMinRefreshInterval).
func (rs *ResourceServer) keys(ctx context.Context) (keyfunc.Keyfunc, error) {
	rs.kfMu.RLock()
	kf := rs.kf
	rs.kfMu.RUnlock()
	if kf != nil {
		return kf, nil
	}
	rs.discoverMu.Lock()
	defer rs.discoverMu.Unlock()
	rs.kfMu.RLock()
	kf = rs.kf
	rs.kfMu.RUnlock()
	if kf != nil {
		return kf, nil
	}
	if !rs.discoverLm.Allow() {
		return nil, fmt.Errorf("%w: the issuer's metadata or key set could not be fetched; retrying at most every %v", ErrKeysUnavailable, rs.cfg.JWKSMinRefreshInterval)
	}
	jwksURL := rs.cfg.JWKSURL
	if jwksURL == "" {
		md, err := discover(ctx, rs.client, rs.cfg.Issuer)
		if err != nil {
			rs.log.Error("oauth: authorization server metadata unavailable; bearer tokens are refused until it is fetched",
				"issuer", rs.cfg.Issuer, "error", err)
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
		}
		if md.JWKSURI == "" {
			if rs.cfg.IntrospectionURL != "" {
				return nil, fmt.Errorf("%w: the issuer publishes no jwks_uri", ErrKeysUnavailable)
			}
			rs.log.Error("oauth: authorization server metadata has no jwks_uri; set the JWKS URL or an introspection URL", "issuer", rs.cfg.Issuer)
			return nil, fmt.Errorf("%w: the issuer's metadata has no jwks_uri", ErrKeysUnavailable)
		}
		jwksURL = md.JWKSURI
	}
	// The key set is made even if its first fetch fails (logged by the
	// refresh handler): its refresh goroutine, started either way, is then
	// the only one, and unknown key ids retry the fetch under the limiter.
	kf, err := keyfunc.NewDefaultOverrideCtx(rs.ctx, []string{jwksURL}, keyfunc.Override{
		Client:            rs.client,
		HTTPTimeout:       10 * time.Second,
		RefreshInterval:   rs.cfg.JWKSRefreshInterval,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(rs.cfg.JWKSMinRefreshInterval), 1),
		// Bounds both the wait for the limiter (a request waits only if the
		// next refresh is due within it) and that refresh's HTTP request.
		RateLimitWaitMax: 5 * time.Second,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				rs.log.Error("oauth: JWKS refresh failed; tokens signed by keys not already cached are refused until a refresh succeeds",
					"jwks_url", u, "error", err)
			}
		},
	})
	if err != nil {
		rs.log.Error("oauth: JWKS unavailable; bearer tokens are refused until it is fetched",
			"jwks_url", jwksURL, "error", err)
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	rs.kfMu.Lock()
	rs.kf = kf
	rs.kfMu.Unlock()
	return kf, nil
}

// accessClaims are the claims of a JWT access token (RFC 9068) this server
// reads.
type accessClaims struct {
	jwt.RegisteredClaims
	Scope    string    `json:"scope,omitempty"`
	Scp      stringSet `json:"scp,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	Azp      string    `json:"azp,omitempty"`
}

// stringSet decodes a JSON string (space-separated) or array of strings.
type stringSet []string

// UnmarshalJSON reads a string or an array of strings.
func (s *stringSet) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = strings.Fields(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// Authenticate validates the request's bearer token and returns the
// identity it stands for (also with [ErrInsufficientScope], for a caller
// that wants to say who lacked the scope). Errors wrap one of the package's sentinels
// (ErrNoToken, ErrTokenExpired, ErrWrongAudience, ErrInsufficientScope...)
// and never contain the token. [ResourceServer.Middleware] answers them.
func (rs *ResourceServer) Authenticate(r *http.Request) (Identity, error) {
	tok, err := bearerToken(r)
	if err != nil {
		return Identity{}, err
	}
	return rs.Validate(r.Context(), tok)
}

// bearerToken extracts the token of an "Authorization: Bearer" header
// (RFC 6750 section 2.1; the scheme is case-insensitive).
func bearerToken(r *http.Request) (string, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return "", ErrNoToken
	}
	if len(hs) > 1 {
		return "", fmt.Errorf("%w: more than one Authorization header", ErrMalformedToken)
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(hs[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: the Authorization scheme must be Bearer", ErrNoToken)
	}
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" || strings.ContainsAny(tok, " \t") {
		return "", fmt.Errorf("%w: the Bearer credentials are not one token", ErrMalformedToken)
	}
	return tok, nil
}

// MaxTokenLength is the longest bearer token accepted, in bytes: a longer
// one is refused as malformed (401 invalid_token) before it is hashed,
// parsed or sent to the introspection endpoint. Real access tokens are far
// shorter (a JWT with many claims is a few KiB; opaque tokens are tens of
// bytes), and 16 KiB is already beyond the header limits of common proxies;
// without a cap, anyone, unauthenticated, could make the server parse
// tokens of up to the HTTP server's header limit (1 MB by default) and post
// them to the authorization server.
const MaxTokenLength = 16 << 10

// Validate validates an access token as [ResourceServer.Authenticate]
// does, for callers that get it other than from an HTTP header.
func (rs *ResourceServer) Validate(ctx context.Context, token string) (Identity, error) {
	var (
		id  Identity
		err error
	)
	if len(token) > MaxTokenLength {
		return Identity{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformedToken, MaxTokenLength)
	}
	if strings.Count(token, ".") == 2 {
		id, err = rs.cachedJWT(ctx, token)
	} else if rs.introspect != nil {
		id, err = rs.introspectToken(ctx, token)
	} else {
		return Identity{}, fmt.Errorf("%w: not a JWT", ErrMalformedToken)
	}
	if err != nil {
		return Identity{}, err
	}
	if missing := rs.missingScopes(id.Scopes); len(missing) > 0 {
		return id, fmt.Errorf("%w: requires scope %q", ErrInsufficientScope, strings.Join(missing, " "))
	}
	return id, nil
}

func (rs *ResourceServer) missingScopes(have []string) []string {
	var missing []string
	for _, s := range rs.cfg.Scopes {
		found := false
		for _, h := range have {
			if h == s {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, s)
		}
	}
	return missing
}

// cachedJWT is validateJWT through the verified-token cache, if any.
// Refusals are not cached: they are cheap or depend on the key set.
func (rs *ResourceServer) cachedJWT(ctx context.Context, token string) (Identity, error) {
	if rs.verified == nil {
		return rs.validateJWT(ctx, token)
	}
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	if e, ok := rs.verified.get(key, now); ok {
		id := e.id
		id.Token = token
		return id, nil
	}
	id, err := rs.validateJWT(ctx, token)
	if err != nil {
		return id, err
	}
	until := now.Add(rs.verified.ttl)
	if !id.Expiry.IsZero() && id.Expiry.Before(until) {
		until = id.Expiry
	}
	cached := id
	cached.Token = ""
	rs.verified.put(key, introspected{id: cached, until: until}, now)
	return id, nil
}

func (rs *ResourceServer) validateJWT(ctx context.Context, token string) (Identity, error) {
	var claims accessClaims
	// The key set is looked up (and discovered, the first time) only for a
	// well-formed token with an accepted algorithm: the parser checks those
	// before it calls the key function.
	_, err := rs.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kf, err := rs.keys(ctx)
		if err != nil {
			return nil, err
		}
		key, err := kf.KeyfuncCtx(ctx)(t)
		if err != nil && !hasKey(ctx, kf, t) {
			// Not found, even after a refresh (or the refresh was not
			// allowed yet, or failed: logged by the refresh handler).
			return nil, errUnknownKid
		}
		return key, err
	})
	if err != nil {
		return Identity{}, classifyJWT(err)
	}
	if claims.Issuer != rs.cfg.Issuer {
		return Identity{}, fmt.Errorf("%w: iss is %q, expected %q", ErrWrongIssuer, claims.Issuer, rs.cfg.Issuer)
	}
	if !containsString(claims.Audience, rs.cfg.Audience) {
		return Identity{}, fmt.Errorf("%w: aud does not contain %q", ErrWrongAudience, rs.cfg.Audience)
	}
	if claims.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no sub claim", ErrMalformedToken)
	}
	id := Identity{
		Subject:  claims.Subject,
		ClientID: claims.ClientID,
		Issuer:   claims.Issuer,
		Scopes:   strings.Fields(claims.Scope),
		Token:    token,
	}
	if id.ClientID == "" {
		id.ClientID = claims.Azp
	}
	if len(id.Scopes) == 0 {
		id.Scopes = claims.Scp
	}
	if claims.ExpiresAt != nil {
		id.Expiry = claims.ExpiresAt.Time
	}
	return id, nil
}

var errUnknownKid = fmt.Errorf("%w: its key id is not in the issuer's key set", ErrUnknownKey)

// hasKey reports whether the key set holds the token's key id, without
// causing a refresh.
func hasKey(ctx context.Context, kf keyfunc.Keyfunc, t *jwt.Token) bool {
	kid, _ := t.Header["kid"].(string)
	all, err := kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return false
	}
	for _, k := range all {
		if k.Marshal().KID == kid {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// classifyJWT maps golang-jwt's and keyfunc's errors onto the package's
// sentinels. Their messages quote no part of the token.
func classifyJWT(err error) error {
	switch {
	case errors.Is(err, ErrKeysUnavailable):
		return fmt.Errorf("%w: the issuer's metadata or key set could not be fetched", ErrKeysUnavailable)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %s", ErrMalformedToken, jwtReason(err))
	case errors.Is(err, ErrUnknownKey), errors.Is(err, jwkset.ErrKeyNotFound):
		return errUnknownKid
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Errorf("%w: %s", ErrBadSignature, jwtReason(err))
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: exp is past", ErrTokenExpired)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: no exp claim", ErrTokenExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: nbf is in the future", ErrTokenNotYetValid)
	default:
		return fmt.Errorf("%w: %s", ErrMalformedToken, jwtReason(err))
	}
}

// jwtReason is a short reason from a golang-jwt error: its text, which
// names the failed check and never includes the token.
func jwtReason(err error) string {
	s := err.Error()
	for _, prefix := range []error{jwt.ErrTokenSignatureInvalid, jwt.ErrTokenMalformed} {
		s = strings.TrimPrefix(s, prefix.Error()+": ")
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Middleware authenticates every request: a request with a valid token goes
// to next with its [Identity] in the context ([IdentityFrom]), and with the
// go-sdk's token info ([TokenInfo]) for an MCP server handler next to read
// ([IdentityFromRequest]) and bind sessions to the subject; any other is
// answered 401 (or 403 for a missing scope) with a WWW-Authenticate header
// (RFC 6750 section 3, RFC 9728 section 5.1) and a JSON body
// {"error": ..., "error_description": ...}. It does not remove the
// Authorization header: whatever forwards requests upstream must not copy it.
func (rs *ResourceServer) Middleware(next http.Handler) http.Handler {
	sdk := sdkTokenInfo(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := rs.Authenticate(r)
		if err != nil {
			rs.WriteError(w, err)
			return
		}
		sdk.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

// Challenge is the WWW-Authenticate value for err: Bearer with
// resource_metadata, the required scope (so that a client knows what to ask
// for) and, unless the request carried no token, error and
// error_description.
func (rs *ResourceServer) Challenge(err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, `Bearer resource_metadata="%s"`, quoteSafe(rs.prmURL))
	if code := errorCode(err); code != "" {
		fmt.Fprintf(&b, `, error="%s", error_description="%s"`, code, quoteSafe(err.Error()))
	}
	if len(rs.cfg.Scopes) > 0 {
		fmt.Fprintf(&b, `, scope="%s"`, quoteSafe(strings.Join(rs.cfg.Scopes, " ")))
	}
	return b.String()
}

// StatusCode is the HTTP status for a refusal: 403 for
// [ErrInsufficientScope], else 401.
func StatusCode(err error) int {
	if errors.Is(err, ErrInsufficientScope) {
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// WriteError answers a refused request: status, WWW-Authenticate and a
// JSON body.
func (rs *ResourceServer) WriteError(w http.ResponseWriter, err error) {
	w.Header().Set("WWW-Authenticate", rs.Challenge(err))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(StatusCode(err))
	code := errorCode(err)
	if code == "" {
		code = "invalid_request"
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": err.Error()})
}

// MetadataHandler serves the Protected Resource Metadata (RFC 9728 section
// 3.2): resource, authorization_servers, scopes_supported and
// bearer_methods_supported. Mount it at both
// /.well-known/oauth-protected-resource and the path-suffixed form of the
// resource (/.well-known/oauth-protected-resource/mcp); see
// [ResourceServer.MetadataPaths]. It is public and allows any origin, so
// that browser-based clients can read it.
func (rs *ResourceServer) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "*")
			w.WriteHeader(http.StatusNoContent)
			return
		default:
			w.Header().Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(rs.prm)
	})
}

// MetadataPaths are the paths the metadata is served at: the path of the
// metadata URL (path-suffixed for a resource with a path) and the bare
// /.well-known/oauth-protected-resource.
func (rs *ResourceServer) MetadataPaths() []string {
	paths := []string{"/.well-known/oauth-protected-resource"}
	if u, err := url.Parse(rs.prmURL); err == nil && u.Path != paths[0] && u.Path != "" {
		paths = append(paths, u.Path)
	}
	return paths
}
