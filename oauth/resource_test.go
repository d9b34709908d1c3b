package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mcpool/mcpool/oauth"
)

func TestValidTokenIsServedWithItsIdentity(t *testing.T) {
	t.Parallel()
	for _, key := range []signingKey{newECKey(t, "ec-1"), newRSAKey(t, "rsa-1")} {
		t.Run(key.method.Alg(), func(t *testing.T) {
			as := newAuthServer(t, key)
			rs, logs := newRS(t, as, nil)
			claims := as.claims()
			tok := key.sign(t, claims)
			rec, id := get(t, rs, "Bearer "+tok)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
			if id.Subject != "alice" || id.ClientID != "test-app" || !id.HasScope("mcp:tools") || !id.HasScope("mcp:read") || id.Token != tok || id.Issuer != as.issuer {
				t.Errorf("identity %v (token kept: %v)", id, id.Token == tok)
			}
			if want := time.Unix(claims["exp"].(int64), 0); !id.Expiry.Equal(want) {
				t.Errorf("expiry %v, want %v", id.Expiry, want)
			}
			// The identity never prints its token, however it is printed.
			var js strings.Builder
			slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "id", id)
			b, _ := json.Marshal(id)
			for _, s := range []string{id.String(), fmt.Sprintf("%v %+v %#v %s", id, id, id, id), js.String(), string(b), logs.String()} {
				if strings.Contains(s, tok) {
					t.Errorf("token printed in %q", s)
				}
			}
			if !strings.Contains(js.String(), `"subject":"alice"`) {
				t.Errorf("LogValue lost the subject: %s", js.String())
			}
		})
	}
}

func TestClaimVariants(t *testing.T) {
	t.Parallel()
	key := newECKey(t, "k")
	as := newAuthServer(t, key)
	rs, _ := newRS(t, as, nil)
	c := as.claims()
	delete(c, "scope")
	delete(c, "client_id")
	c["scp"] = []string{"mcp:tools"}
	c["azp"] = "azp-app"
	c["aud"] = []string{"https://other.example", testAudience}
	rec, id := get(t, rs, "bearer "+key.sign(t, c))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if id.ClientID != "azp-app" || !id.HasScope("mcp:tools") {
		t.Errorf("identity %v", id)
	}
}

// TestRefusals: every kind of bad token is answered 401 (403 for a missing
// scope) with a challenge that points at the metadata, and an error that
// says why, never quoting the token.
func TestRefusals(t *testing.T) {
	t.Parallel()
	key := newECKey(t, "good")
	as := newAuthServer(t, key)
	rs, logs := newRS(t, as, nil)
	foreignSameKid := newECKey(t, "good")
	foreignOwnKid := newECKey(t, "foreign")
	withClaims := func(edit func(jwt.MapClaims)) string {
		c := as.claims()
		edit(c)
		return key.sign(t, c)
	}
	unsigned := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, as.claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	hmacWithPublicKey := func() string {
		pub := key.priv.(*ecdsa.PrivateKey).PublicKey
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, as.claims())
		tok.Header["kid"] = "good"
		s, err := tok.SignedString(append(pub.X.Bytes(), pub.Y.Bytes()...))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	good := key.sign(t, as.claims())
	tampered := func() string {
		parts := strings.Split(good, ".")
		c := as.claims()
		c["sub"] = "mallory"
		b, _ := json.Marshal(c)
		parts[1] = strings.TrimRight(jwtEncode(b), "=")
		return strings.Join(parts, ".")
	}()

	cases := []struct {
		name   string
		header string
		want   error
		status int
	}{
		{"missing", "", oauth.ErrNoToken, 401},
		{"basic scheme", "Basic YWxpY2U6c2VjcmV0", oauth.ErrNoToken, 401},
		{"empty bearer", "Bearer ", oauth.ErrMalformedToken, 401},
		{"garbage", "Bearer not-a-token", oauth.ErrMalformedToken, 401},
		{"garbage with dots", "Bearer a.b.c", oauth.ErrMalformedToken, 401},
		{"alg none", "Bearer " + unsigned, oauth.ErrBadSignature, 401},
		{"HS256 keyed with the public key", "Bearer " + hmacWithPublicKey, oauth.ErrBadSignature, 401},
		{"tampered claims", "Bearer " + tampered, oauth.ErrBadSignature, 401},
		{"foreign key, known kid", "Bearer " + foreignSameKid.sign(t, as.claims()), oauth.ErrBadSignature, 401},
		{"foreign key, unknown kid", "Bearer " + foreignOwnKid.sign(t, as.claims()), oauth.ErrUnknownKey, 401},
		{"wrong audience", "Bearer " + withClaims(func(c jwt.MapClaims) { c["aud"] = "https://other.example/mcp" }), oauth.ErrWrongAudience, 401},
		{"audience array without ours", "Bearer " + withClaims(func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} }), oauth.ErrWrongAudience, 401},
		{"no audience", "Bearer " + withClaims(func(c jwt.MapClaims) { delete(c, "aud") }), oauth.ErrWrongAudience, 401},
		{"wrong issuer", "Bearer " + withClaims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), oauth.ErrWrongIssuer, 401},
		{"expired", "Bearer " + withClaims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), oauth.ErrTokenExpired, 401},
		{"no expiry", "Bearer " + withClaims(func(c jwt.MapClaims) { delete(c, "exp") }), oauth.ErrTokenExpired, 401},
		{"not yet valid", "Bearer " + withClaims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(2 * time.Minute).Unix() }), oauth.ErrTokenNotYetValid, 401},
		{"no subject", "Bearer " + withClaims(func(c jwt.MapClaims) { delete(c, "sub") }), oauth.ErrMalformedToken, 401},
		{"missing scope", "Bearer " + withClaims(func(c jwt.MapClaims) { c["scope"] = "mcp:read" }), oauth.ErrInsufficientScope, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, _ := get(t, rs, tc.header)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			req := httptest.NewRequest(http.MethodGet, testAudience, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			_, err := rs.Authenticate(req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			challenge := rec.Header().Get("WWW-Authenticate")
			wantPrefix := `Bearer resource_metadata="https://gateway.example/.well-known/oauth-protected-resource/mcp"`
			if !strings.HasPrefix(challenge, wantPrefix) {
				t.Errorf("WWW-Authenticate %q", challenge)
			}
			switch {
			case tc.want == oauth.ErrNoToken:
				if strings.Contains(challenge, "error=") {
					t.Errorf("a request without credentials gets no error code (RFC 6750 section 3.1): %q", challenge)
				}
			case tc.status == 403:
				if !strings.Contains(challenge, `error="insufficient_scope"`) || !strings.Contains(challenge, `scope="mcp:tools"`) {
					t.Errorf("WWW-Authenticate %q", challenge)
				}
			default:
				if !strings.Contains(challenge, `error="invalid_token", error_description="`) {
					t.Errorf("WWW-Authenticate %q", challenge)
				}
			}
			tok := strings.TrimSpace(strings.TrimPrefix(tc.header, "Bearer"))
			if len(tok) > 8 {
				parts := strings.Split(tok, ".")
				sig := parts[len(parts)-1]
				for _, s := range []string{err.Error(), challenge, rec.Body.String(), logs.String()} {
					if strings.Contains(s, tok) || (sig != "" && strings.Contains(s, sig)) {
						t.Errorf("token quoted: %q", s)
					}
				}
			}
		})
	}
}

// jwtEncode is base64url, as JWT segments are.
func jwtEncode(b []byte) string {
	return jwtEncoding.EncodeToString(b)
}

// TestKeyRotation: the issuer replaces its key mid-run; tokens from the new
// key validate after one refresh, tokens of the removed key and of a
// foreign key are refused, and unknown key ids do not hammer the JWKS.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey, foreign := newECKey(t, "2026-01"), newRSAKey(t, "2026-02"), newECKey(t, "intruder")
	as := newAuthServer(t, oldKey)
	rs, _ := newRS(t, as, nil)
	oldTok := oldKey.sign(t, as.claims())
	if rec, _ := get(t, rs, "Bearer "+oldTok); rec.Code != 200 {
		t.Fatalf("before rotation: %d %s", rec.Code, rec.Body)
	}
	hits := as.jwksHits.Load()

	as.setKeys(newKey) // rotation: new kid served, old one removed
	newTok := newKey.sign(t, as.claims())
	if rec, id := get(t, rs, "Bearer "+newTok); rec.Code != 200 || id.Subject != "alice" {
		t.Fatalf("new key after rotation: %d %s", rec.Code, rec.Body)
	}
	if got := as.jwksHits.Load(); got != hits+1 {
		t.Errorf("JWKS fetched %d times for one unknown kid, want 1", got-hits)
	}
	// The refresh replaced the set: the removed key no longer validates.
	if rec, _ := get(t, rs, "Bearer "+oldTok); rec.Code != 401 {
		t.Errorf("token of the removed key: %d", rec.Code)
	}
	for range 5 {
		rec, _ := get(t, rs, "Bearer "+foreign.sign(t, as.claims()))
		if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "unknown key") {
			t.Fatalf("foreign key: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}
	if got := as.jwksHits.Load(); got != hits+1 {
		t.Errorf("unknown kids caused %d more JWKS fetches within the minimum refresh interval, want 0", got-hits-1)
	}
	if rec, _ := get(t, rs, "Bearer "+newTok); rec.Code != 200 {
		t.Errorf("new key, again: %d", rec.Code)
	}
}

// TestJWKSDown: with the key set unreachable, tokens of cached keys keep
// working; a token of a new key fails closed with one log line; once the
// key set is back, the new key validates.
func TestJWKSDown(t *testing.T) {
	t.Parallel()
	k1, k2 := newECKey(t, "k1"), newECKey(t, "k2")
	as := newAuthServer(t, k1)
	rs, logs := newRS(t, as, func(c *oauth.Config) { c.JWKSMinRefreshInterval = 20 * time.Millisecond })
	tok1 := k1.sign(t, as.claims())
	if rec, _ := get(t, rs, "Bearer "+tok1); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	as.jwksDown.Store(true)
	as.metaDown.Store(true)
	as.setKeys(k1, k2)
	if rec, _ := get(t, rs, "Bearer "+tok1); rec.Code != 200 {
		t.Fatalf("cached key while the JWKS is down: %d %s", rec.Code, rec.Body)
	}
	tok2 := k2.sign(t, as.claims())
	rec, _ := get(t, rs, "Bearer "+tok2)
	if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("new key while the JWKS is down: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if n := strings.Count(logs.String(), "JWKS refresh failed"); n != 1 {
		t.Errorf("%d log lines for one failed refresh, want 1:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), tok2) || strings.Contains(logs.String(), tok1) {
		t.Error("token in the log")
	}
	as.jwksDown.Store(false)
	eventuallyWithin(t, 10*time.Second, "the new key to validate once the JWKS is back", func() bool {
		rec, _ := get(t, rs, "Bearer "+tok2)
		return rec.Code == 200
	})
}

// TestIssuerDownAtStart: a resource server starts while its authorization
// server's metadata or key set is down, refuses tokens meanwhile with a log
// line, and validates them once it is up.
func TestIssuerDownAtStart(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, log string
		down      func(*authServer) *atomic.Bool
		want      error
	}{
		{"metadata", "metadata unavailable", func(as *authServer) *atomic.Bool { return &as.metaDown }, oauth.ErrKeysUnavailable},
		{"jwks", "JWKS refresh failed", func(as *authServer) *atomic.Bool { return &as.jwksDown }, oauth.ErrUnknownKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newECKey(t, "k")
			as := newAuthServer(t, k)
			c.down(as).Store(true)
			rs, logs := newRS(t, as, func(c *oauth.Config) { c.JWKSMinRefreshInterval = 20 * time.Millisecond })
			if !strings.Contains(logs.String(), c.log) {
				t.Errorf("no log line for the unreachable issuer:\n%s", logs)
			}
			tok := k.sign(t, as.claims())
			if _, err := rs.Validate(context.Background(), tok); !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			c.down(as).Store(false)
			eventuallyWithin(t, 10*time.Second, "validation once the issuer is up", func() bool {
				_, err := rs.Validate(context.Background(), tok)
				return err == nil
			})
		})
	}
}

// TestDiscoveryOpenIDWithPath: an issuer with a path that publishes only
// OpenID Connect discovery (appended form) is found.
func TestDiscoveryOpenIDWithPath(t *testing.T) {
	t.Parallel()
	k := newECKey(t, "k")
	as := newAuthServer(t, k)
	mux := http.NewServeMux()
	var issuer string
	mux.HandleFunc("GET /realms/team/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"issuer": issuer, "jwks_uri": as.URL + "/jwks"})
	})
	oidc := httptest.NewServer(mux)
	defer oidc.Close()
	issuer = oidc.URL + "/realms/team"
	rs, _ := newRS(t, as, func(c *oauth.Config) { c.Issuer = issuer })
	c := as.claims()
	c["iss"] = issuer
	if _, err := rs.Validate(context.Background(), k.sign(t, c)); err != nil {
		t.Fatal(err)
	}
}

func TestMetadataIsServed(t *testing.T) {
	t.Parallel()
	as := newAuthServer(t, newECKey(t, "k"))
	rs, _ := newRS(t, as, func(c *oauth.Config) { c.Scopes = []string{"mcp:tools", "mcp:admin"} })
	if got, want := rs.ResourceMetadataURL(), "https://gateway.example/.well-known/oauth-protected-resource/mcp"; got != want {
		t.Errorf("metadata URL %q, want %q", got, want)
	}
	if got := oauth.MetadataURL("https://h.example/"); got != "https://h.example/.well-known/oauth-protected-resource" {
		t.Errorf("metadata URL of a root resource: %q", got)
	}
	mux := http.NewServeMux()
	for _, p := range rs.MetadataPaths() {
		mux.Handle("GET "+p, rs.MetadataHandler())
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, p := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		var md struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			ScopesSupported      []string `json:"scopes_supported"`
			BearerMethods        []string `json:"bearer_methods_supported"`
		}
		err = json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %v", p, resp.StatusCode, err)
		}
		if md.Resource != testAudience || len(md.AuthorizationServers) != 1 || md.AuthorizationServers[0] != as.issuer ||
			strings.Join(md.ScopesSupported, " ") != "mcp:tools mcp:admin" || strings.Join(md.BearerMethods, ",") != "header" {
			t.Errorf("%s: %+v", p, md)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []oauth.Config{
		{Audience: testAudience},
		{Issuer: "https://issuer.example"},
		{Issuer: "issuer.example", Audience: testAudience},
		{Issuer: "https://issuer.example", Audience: testAudience, JWKSURL: "/jwks"},
	} {
		if rs, err := oauth.New(context.Background(), cfg); err == nil {
			rs.Close()
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// TestValidationCache: with ValidationCacheTTL a verified token is reused
// without its key (up to the TTL); an unseen token of a removed key is
// still refused, and so is a cached token once it lacks the scope.
func TestValidationCache(t *testing.T) {
	t.Parallel()
	k1, k2 := newECKey(t, "k1"), newECKey(t, "k2")
	as := newAuthServer(t, k1)
	rs, _ := newRS(t, as, func(c *oauth.Config) { c.ValidationCacheTTL = time.Hour })
	tok := k1.sign(t, as.claims())
	if _, err := rs.Validate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	as.setKeys(k2)
	other := as.claims()
	other["sub"] = "bob"
	if _, err := rs.Validate(context.Background(), k2.sign(t, other)); err != nil { // refreshes: k1 removed
		t.Fatal(err)
	}
	if id, err := rs.Validate(context.Background(), tok); err != nil || id.Token != tok || id.Subject != "alice" {
		t.Errorf("cached token: %v %v", id, err)
	}
	if _, err := rs.Validate(context.Background(), k1.sign(t, other)); !errors.Is(err, oauth.ErrUnknownKey) {
		t.Errorf("unseen token of the removed key: %v", err)
	}
}
