package oauth_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mcpool/mcpool/oauth"
)

// networkClient is an HTTP client whose connections to any host off
// loopback reach srv on loopback: a stand-in for the network path to a
// remote authorization server, which an attacker on that path could answer
// in its stead.
func networkClient(t *testing.T, srv *httptest.Server) *http.Client {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
			addr = srv.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// metadataServer serves RFC 8414 metadata of its own URL as issuer, with
// the endpoints edit sets, and passes every other request to as (its key
// set, token and introspection endpoints).
func metadataServer(t *testing.T, as *authServer, edit func(md map[string]any)) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/oauth-authorization-server" {
			md := map[string]any{"issuer": srv.URL, "jwks_uri": srv.URL + "/jwks", "token_endpoint": srv.URL + "/token",
				"introspection_endpoint": srv.URL + "/introspect", "response_types_supported": []string{"code"}}
			edit(md)
			writeJSON(w, md)
			return
		}
		as.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestPlainHTTPEndpointsRefused: an authorization server URL, configured or
// discovered, must be https unless its host is loopback; over plain http an
// attacker on the path could serve its own keys and have its tokens
// accepted. Each case is a real authorization server reached as that URL,
// which would work if the URL were accepted.
func TestPlainHTTPEndpointsRefused(t *testing.T) {
	t.Parallel()
	key := newECKey(t, "k")
	as := newAuthServer(t, key)
	client := networkClient(t, as.Server)

	// Configured: the Config is refused, naming the field.
	for _, tc := range []struct {
		field string
		edit  func(c *oauth.Config)
	}{
		{"Config.Issuer", func(c *oauth.Config) { c.Issuer = "http://auth.example.com" }},
		{"Config.JWKSURL", func(c *oauth.Config) { c.JWKSURL = "http://auth.example.com/jwks" }},
		{"Config.IntrospectionURL", func(c *oauth.Config) {
			c.IntrospectionURL = "http://10.0.0.7/introspect"
			c.ClientID, c.ClientSecret = "gw", "s3cret"
		}},
	} {
		cfg := oauth.Config{Issuer: as.issuer, Audience: testAudience, HTTPClient: client}
		tc.edit(&cfg)
		rs, err := oauth.New(context.Background(), cfg)
		var ce *oauth.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, oauth.ErrInsecureEndpoint) || !strings.Contains(err.Error(), "must be https") {
			if rs != nil {
				rs.Close()
			}
			t.Errorf("%s over plain http: %v; want a ConfigError naming it, saying https is required", tc.field, err)
		}
	}

	// Discovered: metadata (of a loopback issuer) naming a plain-http
	// endpoint off loopback is refused whole, so no token passes.
	for _, field := range []string{"jwks_uri", "token_endpoint", "introspection_endpoint"} {
		// The path is one the authorization server serves, so that the
		// key set would be fetched from there.
		md := metadataServer(t, as, func(md map[string]any) { md[field] = "http://auth.example.com/jwks" })
		rs, logs := newRS(t, as, func(c *oauth.Config) {
			c.Issuer = md.URL
			c.HTTPClient = client
			c.JWKSMinRefreshInterval = time.Hour
		})
		claims := as.claims()
		claims["iss"] = md.URL
		_, err := rs.Validate(context.Background(), key.sign(t, claims))
		if !errors.Is(err, oauth.ErrKeysUnavailable) || !strings.Contains(logs.String(), field) || !strings.Contains(logs.String(), "must be https") {
			t.Errorf("metadata with a plain-http %s: %v; log:\n%s", field, err, logs)
		}
	}

	// Redirected: an endpoint that redirects to plain http off loopback.
	redirect := httptest.NewServer(http.RedirectHandler("http://auth.example.com/jwks", http.StatusFound))
	defer redirect.Close()
	rs, logs := newRS(t, as, func(c *oauth.Config) {
		c.JWKSURL = redirect.URL + "/jwks"
		c.HTTPClient = networkClient(t, as.Server)
		c.JWKSMinRefreshInterval = time.Hour
	})
	if _, err := rs.Validate(context.Background(), key.sign(t, as.claims())); err == nil || !strings.Contains(logs.String(), "redirect refused") {
		t.Errorf("key set redirected to plain http: %v; log:\n%s", err, logs)
	}

	// Loopback may be plain http (tests, a local authorization server).
	for _, u := range []string{"http://127.0.0.1:9/x", "http://127.1.2.3/x", "http://[::1]:9/x", "http://localhost:9/x", "http://LOCALHOST/x", "https://auth.example.com"} {
		if err := oauth.CheckEndpoint(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"http://auth.example.com", "http://10.0.0.1/x", "http://localhost.example.com/x", "http://127.0.0.1.nip.io/x", "ftp://127.0.0.1/x", "/token"} {
		if err := oauth.CheckEndpoint(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	// The error holds no query or password the URL had.
	if err := oauth.CheckEndpoint("http://user:pw-secret@auth.example.com/?key=q-secret"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %v", err)
	}
}

// TestExchangeTokenURLMustBeHTTPS: a plain-http token endpoint off loopback
// is never sent the subject token and the client secret.
func TestExchangeTokenURLMustBeHTTPS(t *testing.T) {
	t.Parallel()
	e := &exchangeEndpoint{t: t, expires: 3600}
	as := newAuthServer(t)
	as.setToken(e.serve)
	x := &oauth.Exchanger{TokenURL: "http://auth.example.com/token", ClientID: "gateway", ClientSecret: exchangeSecret,
		Audience: "https://upstream.example/mcp", Scopes: []string{"repo", "read:org"}, HTTPClient: networkClient(t, as.Server)}
	_, err := x.Token(context.Background(), identity("alice"))
	var ce *oauth.ConfigError
	if !errors.Is(err, oauth.ErrExchange) || !errors.As(err, &ce) || ce.Field != "Exchanger.TokenURL" || !errors.Is(err, oauth.ErrInsecureEndpoint) {
		t.Errorf("plain-http token endpoint: %v", err)
	}
	if n := e.asked.Load(); n != 0 {
		t.Errorf("the token endpoint was asked %d times over plain http", n)
	}
}

// TestIntrospectionNeedsClientCredentials: RFC 7662 section 2.1 has the
// introspection endpoint authorize its callers, so the resource server
// must be configured to authenticate; a secret without a client id is a
// mistake.
func TestIntrospectionNeedsClientCredentials(t *testing.T) {
	t.Parallel()
	base := oauth.Config{Issuer: "https://auth.example.com", Audience: testAudience}
	for _, tc := range []struct {
		name          string
		url, id, pass string
		field         string
	}{
		{"introspection without credentials", "https://auth.example.com/introspect", "", "", "Config.ClientID"},
		{"introspection without secret", "https://auth.example.com/introspect", "gw", "", "Config.ClientID"},
		{"secret without id", "", "", "s3cret-value", "Config.ClientSecret"},
	} {
		cfg := base
		cfg.IntrospectionURL, cfg.ClientID, cfg.ClientSecret = tc.url, tc.id, tc.pass
		err := cfg.Validate()
		var ce *oauth.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v; want a ConfigError on %s without the secret", tc.name, err, tc.field)
		}
	}
	cfg := base
	cfg.IntrospectionURL, cfg.ClientID, cfg.ClientSecret = "https://auth.example.com/introspect", "gw", "s3cret"
	if err := cfg.Validate(); err != nil {
		t.Errorf("complete configuration: %v", err)
	}
}

// TestOversizedTokenRefusedUnread: a token longer than MaxTokenLength is
// answered 401 invalid_token without being sent to the introspection
// endpoint or cached; one of exactly that length is introspected.
func TestOversizedTokenRefusedUnread(t *testing.T) {
	t.Parallel()
	as := newAuthServer(t, newECKey(t, "k"))
	var calls atomic.Int32
	as.setIntrospect(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeJSON(w, map[string]any{"active": false})
	})
	rs, _ := newRS(t, as, func(c *oauth.Config) {
		c.IntrospectionURL = as.URL + "/introspect"
		c.ClientID, c.ClientSecret = "gateway", "s3cret-introspect"
	})
	for _, tok := range []string{strings.Repeat("a", oauth.MaxTokenLength+1), strings.Repeat("b", 1<<20),
		strings.Repeat("c.", oauth.MaxTokenLength)[:oauth.MaxTokenLength+1]} {
		rec, _ := get(t, rs, "Bearer "+tok)
		challenge := rec.Header().Get("WWW-Authenticate")
		if rec.Code != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, fmt.Sprint(oauth.MaxTokenLength)) {
			t.Errorf("%d-byte token: %d %q", len(tok), rec.Code, challenge)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("oversized tokens introspected %d times", n)
	}
	if rec, _ := get(t, rs, "Bearer "+strings.Repeat("d", oauth.MaxTokenLength)); rec.Code != http.StatusUnauthorized || calls.Load() != 1 {
		t.Errorf("a token of exactly MaxTokenLength: %d, %d introspections; want it introspected (and found inactive)", rec.Code, calls.Load())
	}
}

// TestExchangePerSubjectToken: an exchanged token acts for the token it was
// exchanged from (RFC 8693 section 2.1). Alice's second client, granted
// less, never gets the token exchanged from her first client's, whether it
// asks after it (cache) or at the same time (shared exchange).
func TestExchangePerSubjectToken(t *testing.T) {
	t.Parallel()
	key := newECKey(t, "k")
	as := newAuthServer(t, key)
	var issued atomic.Int32
	gate := make(chan struct{})
	var gated atomic.Bool
	as.setToken(func(w http.ResponseWriter, r *http.Request) {
		var c jwt.MapClaims
		if _, _, err := jwt.NewParser().ParseUnverified(r.PostFormValue("subject_token"), &c); err != nil {
			t.Error(err)
		}
		if gated.Load() {
			<-gate
		}
		// The issued token carries the subject token's client and scope.
		writeJSON(w, map[string]any{"access_token": fmt.Sprintf("up-%s-%s-%s-%d", c["sub"], c["client_id"], c["scope"], issued.Add(1)),
			"issued_token_type": oauth.TokenTypeAccessToken, "token_type": "Bearer", "expires_in": 3600})
	})
	var jti atomic.Int32
	ident := func(client, scope string) oauth.Identity {
		c := as.claims()
		c["client_id"], c["scope"], c["jti"] = client, scope, fmt.Sprint(jti.Add(1))
		return oauth.Identity{Subject: "alice", ClientID: client, Scopes: strings.Fields(scope), Token: key.sign(t, c)}
	}
	strong, weak := ident("desk", "tools.read tools.write"), ident("phone", "tools.read")
	x := &oauth.Exchanger{TokenURL: as.URL + "/token", Audience: "https://upstream.example/mcp"}
	ctx := context.Background()
	for _, c := range []struct {
		id   oauth.Identity
		want string
	}{{strong, "up-alice-desk-tools.read tools.write-1"}, {weak, "up-alice-phone-tools.read-2"}, {strong, "up-alice-desk-tools.read tools.write-1"}, {weak, "up-alice-phone-tools.read-2"}} {
		if got, err := x.Token(ctx, c.id); err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.id.ClientID, got, err, c.want)
		}
	}

	// At the same time: one exchange per token, not per subject.
	gated.Store(true)
	strong2, weak2 := ident("desk", "tools.read tools.write"), ident("phone", "tools.read") // new tokens
	var wg sync.WaitGroup
	got := make([]string, 2)
	for i, id := range []oauth.Identity{strong2, weak2} {
		wg.Go(func() { got[i], _ = x.Token(ctx, id) })
	}
	time.Sleep(50 * time.Millisecond) // both waiting on the endpoint
	close(gate)
	wg.Wait()
	if !strings.HasPrefix(got[0], "up-alice-desk-") || !strings.HasPrefix(got[1], "up-alice-phone-") {
		t.Errorf("concurrent exchanges for two tokens of one subject: %q", got)
	}

	// Forget drops every token exchanged for the subject.
	n := issued.Load()
	x.Forget("alice")
	if _, err := x.Token(ctx, weak); err != nil || issued.Load() != n+1 {
		t.Errorf("after Forget: %v, %d exchanges, want a new one", err, issued.Load()-n)
	}

	// Grant tells the two clients apart, and a scope order does not matter.
	if strong.Grant() == weak.Grant() {
		t.Error("two clients of one subject have one Grant")
	}
	a, b := strong, strong
	b.Scopes, b.Token = []string{"tools.write", "tools.read"}, "another token"
	if a.Grant() != b.Grant() || strings.Contains(a.Grant(), a.Token) {
		t.Errorf("Grant %q vs %q", a.Grant(), b.Grant())
	}
}
