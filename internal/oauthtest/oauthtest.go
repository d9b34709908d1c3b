// Package oauthtest is an OAuth 2.1 authorization server on loopback for
// tests: RFC 8414 metadata, a JSON Web Key Set of keys the test rotates,
// JWT access tokens signed with them, an RFC 8693 token-exchange endpoint,
// and an authorization endpoint that approves at once (authorization code
// with PKCE) for a client's sign-in.
package oauthtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Key is a signing key of the server.
type Key struct {
	ID   string
	priv *ecdsa.PrivateKey
}

// NewKey returns an ES256 key with id kid.
func NewKey(kid string) Key {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return Key{ID: kid, priv: k}
}

// Sign signs claims with k.
func (k Key) Sign(claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = k.ID
	s, err := tok.SignedString(k.priv)
	if err != nil {
		panic(err)
	}
	return s
}

// Server is the authorization server.
type Server struct {
	*httptest.Server
	// Issuer is the issuer identifier (the server's URL).
	Issuer string

	mu        sync.Mutex
	keys      []Key
	exchange  func(subject, audience string) (token string, status int)
	codes     map[string]code
	Exchanges atomic.Int64 // token exchanges answered
	Issued    atomic.Int64 // access tokens issued by the code grant
}

type code struct {
	challenge, resource, scope, redirect string
}

// New starts a server signing with one fresh key, closed at the end of the
// test. Token exchanges answer "xchg.SUBJECT.AUDIENCE" (and ".SCOPE+SCOPE" when the subject token has scopes) unless OnExchange
// says otherwise.
func New(t testing.TB) *Server {
	s := &Server{keys: []Key{NewKey("k1")}, codes: map[string]code{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.metadata)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.metadata)
	mux.HandleFunc("GET /jwks", s.jwks)
	mux.HandleFunc("GET /authorize", s.authorize)
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /register", s.register)
	s.Server = httptest.NewServer(mux)
	s.Issuer = s.URL
	t.Cleanup(s.Close)
	return s
}

// Key returns the current (first) signing key.
func (s *Server) Key() Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0]
}

// SetKeys replaces the key set (a rotation); the first key signs.
func (s *Server) SetKeys(keys ...Key) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

// OnExchange sets the token-exchange answer: a token, or an HTTP status
// (non-200) for an error.
func (s *Server) OnExchange(f func(subject, audience string) (string, int)) {
	s.mu.Lock()
	s.exchange = f
	s.mu.Unlock()
}

// Claims are valid claims from s for audience and subject, with scopes.
func (s *Server) Claims(audience, subject string, scopes ...string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": s.Issuer, "aud": audience, "sub": subject, "client_id": "test-client",
		"scope": strings.Join(scopes, " "), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
}

// Token is a valid access token for audience and subject, with scopes.
func (s *Server) Token(audience, subject string, scopes ...string) string {
	return s.Key().Sign(s.Claims(audience, subject, scopes...))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{
		"issuer":                                s.Issuer,
		"jwks_uri":                              s.URL + "/jwks",
		"authorization_endpoint":                s.URL + "/authorize",
		"token_endpoint":                        s.URL + "/token",
		"registration_endpoint":                 s.URL + "/register",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"none", "client_secret_basic", "client_secret_post"},
	})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	keys := append([]Key(nil), s.keys...)
	s.mu.Unlock()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(&k.priv.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.ID, ALG: jwkset.AlgES256, USE: jwkset.UseSig}})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	writeJSON(w, 200, set)
}

// register is dynamic client registration (RFC 7591): any client is
// accepted as a public client.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	_ = json.NewDecoder(r.Body).Decode(&req)
	req["client_id"] = "registered-client"
	req["token_endpoint_auth_method"] = "none"
	writeJSON(w, 201, req)
}

// authorize approves at once: it redirects back with a code.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c := fmt.Sprintf("code-%d", time.Now().UnixNano())
	s.mu.Lock()
	s.codes[c] = code{challenge: q.Get("code_challenge"), resource: q.Get("resource"), scope: q.Get("scope"), redirect: q.Get("redirect_uri")}
	s.mu.Unlock()
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", 400)
		return
	}
	back := u.Query()
	back.Set("code", c)
	back.Set("state", q.Get("state"))
	u.RawQuery = back.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		s.mu.Lock()
		c, ok := s.codes[r.PostForm.Get("code")]
		delete(s.codes, r.PostForm.Get("code"))
		s.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		resource := r.PostForm.Get("resource")
		if resource == "" {
			resource = c.resource
		}
		if resource == "" {
			writeJSON(w, 400, map[string]string{"error": "invalid_target", "error_description": "resource (RFC 8707) is required"})
			return
		}
		s.Issued.Add(1)
		writeJSON(w, 200, map[string]any{"access_token": s.Token(resource, "signed-in-user", strings.Fields(c.scope)...),
			"token_type": "Bearer", "expires_in": 600})
	case "urn:ietf:params:oauth:grant-type:token-exchange":
		sub, err := jwt.NewParser().ParseWithClaims(r.PostForm.Get("subject_token"), jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
			return &s.Key().priv.PublicKey, nil
		})
		if err != nil {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "subject_token invalid"})
			return
		}
		subject, _ := sub.Claims.GetSubject()
		aud := r.PostForm.Get("audience")
		s.mu.Lock()
		f := s.exchange
		s.mu.Unlock()
		tok, status := "xchg."+subject+"."+aud, 200
		if scope, _ := sub.Claims.(jwt.MapClaims)["scope"].(string); scope != "" {
			tok += "." + strings.ReplaceAll(scope, " ", "+") // what the token it was exchanged from grants
		}
		if f != nil {
			tok, status = f(subject, aud)
		}
		if status != 200 {
			writeJSON(w, status, map[string]string{"error": "access_denied", "error_description": "no grant for " + subject})
			return
		}
		s.Exchanges.Add(1)
		writeJSON(w, 200, map[string]any{"access_token": tok, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
			"token_type": "Bearer", "expires_in": 300})
	default:
		writeJSON(w, 400, map[string]string{"error": "unsupported_grant_type"})
	}
}
