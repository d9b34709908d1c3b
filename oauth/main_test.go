package oauth_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/mcpool/mcpool/oauth"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// eventuallyWithin waits for cond, failing the test after within.
func eventuallyWithin(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// signingKey is a key the test authorization server signs with.
type signingKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
}

func newECKey(t testing.TB, kid string) signingKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, method: jwt.SigningMethodES256, priv: k}
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// newRSAKey reuses one 2048-bit key (slow to generate) under different
// key ids.
func newRSAKey(t testing.TB, kid string) signingKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	return signingKey{kid: kid, method: jwt.SigningMethodRS256, priv: rsaKey}
}

func (k signingKey) sign(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authServer is an OAuth authorization server on loopback: RFC 8414
// metadata, a JWKS of the keys the test chooses, and hooks for the token
// and introspection endpoints.
type authServer struct {
	*httptest.Server
	issuer string // srv.URL + issuerPath

	mu         sync.Mutex
	keys       []signingKey
	jwksDown   atomic.Bool
	metaDown   atomic.Bool
	jwksHits   atomic.Int32
	metaHits   atomic.Int32
	token      http.HandlerFunc
	introspect http.HandlerFunc
}

func newAuthServer(t testing.TB, keys ...signingKey) *authServer {
	t.Helper()
	as := &authServer{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		as.metaHits.Add(1)
		if as.metaDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]any{
			"issuer":                   as.issuer,
			"jwks_uri":                 as.URL + "/jwks",
			"token_endpoint":           as.URL + "/token",
			"introspection_endpoint":   as.URL + "/introspect",
			"response_types_supported": []string{"code"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		as.jwksHits.Add(1)
		if as.jwksDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		as.mu.Lock()
		keys := append([]signingKey(nil), as.keys...)
		as.mu.Unlock()
		var set jwkset.JWKSMarshal
		for _, k := range keys {
			jwk, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
				KID: k.kid, ALG: jwkset.ALG(k.method.Alg()), USE: jwkset.UseSig}})
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			set.Keys = append(set.Keys, jwk.Marshal())
		}
		writeJSON(w, set)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		h := as.token
		as.mu.Unlock()
		h(w, r)
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		h := as.introspect
		as.mu.Unlock()
		h(w, r)
	})
	as.Server = httptest.NewServer(mux)
	as.issuer = as.URL
	t.Cleanup(as.Close)
	return as
}

func (as *authServer) setKeys(keys ...signingKey) {
	as.mu.Lock()
	as.keys = keys
	as.mu.Unlock()
}

func (as *authServer) setToken(h http.HandlerFunc) {
	as.mu.Lock()
	as.token = h
	as.mu.Unlock()
}

func (as *authServer) setIntrospect(h http.HandlerFunc) {
	as.mu.Lock()
	as.introspect = h
	as.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

const testAudience = "https://gateway.example/mcp"

// claims are valid claims for the test audience, issued by as, to alice.
func (as *authServer) claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss":       as.issuer,
		"aud":       testAudience,
		"sub":       "alice",
		"client_id": "test-app",
		"scope":     "mcp:tools mcp:read",
		"iat":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
	}
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, nil))
}

// newRS returns a ResourceServer trusting as, closed at the end of the
// test, and the buffer its log goes to.
func newRS(t testing.TB, as *authServer, edit func(*oauth.Config)) (*oauth.ResourceServer, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg := oauth.Config{
		Issuer:   as.issuer,
		Audience: testAudience,
		Scopes:   []string{"mcp:tools"},
		Logger:   logs.logger(),
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := oauth.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return rs, logs
}

// get sends a request with the given Authorization header (none if "")
// through rs's middleware to a handler that answers with the identity.
func get(t *testing.T, rs *oauth.ResourceServer, authorization string) (*httptest.ResponseRecorder, oauth.Identity) {
	t.Helper()
	var got oauth.Identity
	h := rs.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := oauth.IdentityFrom(r.Context())
		if !ok {
			t.Error("no identity in the context of an authenticated request")
		}
		got = id
		w.WriteHeader(http.StatusOK)
	}))
	req := httptest.NewRequest(http.MethodPost, testAudience, strings.NewReader("{}"))
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, got
}

var jwtEncoding = base64.RawURLEncoding
