package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Token types and grant type of OAuth 2.0 Token Exchange (RFC 8693 section 3).
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
)

// ErrExchange is what every [*ExchangeError] matches with errors.Is.
var ErrExchange = errors.New("token exchange failed")

// ErrNoIdentity: a request to be authorized by exchange has no [Identity]
// in its context (or one without a subject or token).
var ErrNoIdentity = errors.New("no identity to exchange a token for")

// ExchangeError is a failed token exchange. It carries the token endpoint's
// answer (RFC 6749 section 5.2 error and error_description, HTTP status) or
// the transport error, never the tokens or the client secret.
type ExchangeError struct {
	// Audience is the audience the token was asked for.
	Audience string
	// Status is the token endpoint's HTTP status; 0 if it did not answer.
	Status int
	// Code is the endpoint's error code (invalid_grant, invalid_target,
	// unauthorized_client...), "" if it gave none.
	Code string
	// Description is the endpoint's error_description.
	Description string
	// Err is the transport or decoding error, if that is why it failed.
	Err error
}

// Error says what failed: audience, status, the endpoint's error code and
// description, or the transport error.
func (e *ExchangeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "token exchange for audience %q failed", e.Audience)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the transport error, if any.
func (e *ExchangeError) Unwrap() error { return e.Err }

// Is makes every ExchangeError match [ErrExchange].
func (e *ExchangeError) Is(target error) bool { return target == ErrExchange }

// Exchanger trades a caller's validated access token for one issued to an
// upstream server (RFC 8693), so that the upstream sees the user without
// ever receiving the token the user gave this server.
//
// An exchanged token acts for the subject token it was exchanged from
// (RFC 8693 section 2.1): its scopes, client and lifetime follow from that
// token, not from the user alone. So exchanged tokens are cached per
// subject token (by its SHA-256) until shortly before they expire, and
// concurrent requests with one subject token share one exchange; a caller
// never gets a token exchanged from another token, not even one of the same
// user through another client. A failed exchange is remembered for that
// token, so that the requests of one call (or a client retrying at once) do
// not ask the authorization server again: for a minute when it refused the
// token (4xx: the same token is refused again; a new token is tried at
// once), for a second when it did not answer or failed (5xx).
//
// Whatever keeps per-user upstream state (sessions, connections) authorized
// by exchanged tokens must keep it per [Identity.Grant], not per subject, or
// one client's requests would ride on a token exchanged from another's.
//
// Set the fields before first use; the methods are safe for concurrent use.
type Exchanger struct {
	// TokenURL is the authorization server's token endpoint: https (http
	// only on a loopback host, see [CheckEndpoint]); an exchange with any
	// other fails with an [*ExchangeError] wrapping a [*ConfigError].
	TokenURL string
	// ClientID and ClientSecret authenticate this server to the token
	// endpoint (client_secret_basic).
	ClientID     string
	ClientSecret string
	// Audience is the upstream's identifier, sent as audience; if it is an
	// absolute http(s) URL and Resource is empty it is also sent as
	// resource (RFC 8707).
	Audience string
	// Resource is the upstream's URI, sent as resource; "" as above.
	Resource string
	// Scopes are requested for the exchanged token (scope); empty leaves
	// them to the authorization server.
	Scopes []string
	// HTTPClient makes the requests; nil means one with a 10s timeout.
	HTTPClient *http.Client
	// Skew is how long before its expiry a cached token is replaced. Zero
	// means 30s (or a tenth of its lifetime, if that is shorter).
	Skew time.Duration

	once    sync.Once
	initErr error // TokenURL refused
	client  *http.Client
	group   singleflight.Group
	mu      sync.Mutex
	cache   map[tokenKey]exchanged      // by subject token
	failed  map[tokenKey]failedExchange // by subject token; see rememberFailure
}

// tokenKey is a subject token's SHA-256: the caches never hold the token.
type tokenKey [sha256.Size]byte

// failedExchange is a failed exchange of one subject token.
type failedExchange struct {
	subject string // for Forget
	err     error
	until   time.Time
}

// How long a failed exchange is answered from memory: refused (4xx), or
// not answered / failed (5xx, transport).
const (
	refusedExchangeTTL = time.Minute
	failedExchangeTTL  = time.Second
)

type exchanged struct {
	subject string // for Forget
	token   string
	until   time.Time
}

// defaultExchangeTTL is how long a token without expires_in is reused.
const defaultExchangeTTL = time.Minute

func (x *Exchanger) init() {
	x.once.Do(func() {
		x.client = secureClient(x.HTTPClient)
		x.cache = make(map[tokenKey]exchanged)
		x.failed = make(map[tokenKey]failedExchange)
		x.initErr = endpointField("Exchanger.TokenURL", x.TokenURL)
	})
}

// Token returns an access token for the upstream on behalf of id: one
// exchanged earlier from id.Token (cached), or a fresh exchange of it.
// Errors are [*ExchangeError]s (or [ErrNoIdentity], or ctx's error if it
// ends first).
func (x *Exchanger) Token(ctx context.Context, id Identity) (string, error) {
	x.init()
	if id.Subject == "" || id.Token == "" {
		return "", ErrNoIdentity
	}
	if x.initErr != nil {
		return "", &ExchangeError{Audience: x.Audience, Err: x.initErr}
	}
	key := tokenKey(sha256.Sum256([]byte(id.Token)))
	now := time.Now()
	x.mu.Lock()
	e, ok := x.cache[key]
	if ok && now.After(e.until) {
		delete(x.cache, key)
		ok = false
	}
	f, refused := x.failed[key]
	if refused && now.After(f.until) {
		delete(x.failed, key)
		refused = false
	}
	x.mu.Unlock()
	if ok {
		return e.token, nil
	}
	if refused {
		return "", f.err
	}
	// The exchange runs on a context of its own, so that one caller giving
	// up does not fail the others waiting for the same token.
	ch := x.group.DoChan(string(key[:]), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.client.Timeout+10*time.Second)
		defer cancel()
		tok, until, err := x.exchange(ctx, id)
		if err != nil {
			x.rememberFailure(id.Subject, key, err)
			return "", err
		}
		if until.After(time.Now()) {
			x.mu.Lock()
			x.sweepLocked(time.Now())
			x.cache[key] = exchanged{subject: id.Subject, token: tok, until: until}
			x.mu.Unlock()
		}
		return tok, nil
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

// rememberFailure keeps err as the answer for a token of subject for a
// while: see Exchanger.
func (x *Exchanger) rememberFailure(subject string, key tokenKey, err error) {
	ttl := failedExchangeTTL
	var ee *ExchangeError
	if errors.As(err, &ee) && ee.Status >= 400 && ee.Status < 500 {
		ttl = refusedExchangeTTL
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.failed) >= 1024 {
		now := time.Now()
		for k, v := range x.failed {
			if now.After(v.until) {
				delete(x.failed, k)
			}
		}
	}
	x.failed[key] = failedExchange{subject: subject, err: err, until: time.Now().Add(ttl)}
}

// sweepLocked drops expired entries once the cache is large, so that it
// stays bounded by the subject tokens used within a token lifetime.
func (x *Exchanger) sweepLocked(now time.Time) {
	if len(x.cache) < 1024 || len(x.cache)&1023 != 0 {
		return
	}
	for k, v := range x.cache {
		if now.After(v.until) {
			delete(x.cache, k)
		}
	}
}

// Forget drops the tokens exchanged for subject's tokens (and the failures
// remembered for them), for example after the upstream refused one.
func (x *Exchanger) Forget(subject string) {
	x.init()
	x.mu.Lock()
	for k, v := range x.cache {
		if v.subject == subject {
			delete(x.cache, k)
		}
	}
	for k, v := range x.failed {
		if v.subject == subject {
			delete(x.failed, k)
		}
	}
	x.mu.Unlock()
}

type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
}

type tokenErrorResponse struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func (x *Exchanger) exchange(ctx context.Context, id Identity) (string, time.Time, error) {
	fail := func(status int, code, desc string, err error) (string, time.Time, error) {
		return "", time.Time{}, &ExchangeError{Audience: x.Audience, Status: status, Code: code,
			Description: x.scrub(desc, id.Token), Err: err}
	}
	form := url.Values{
		"grant_type":           {GrantTypeTokenExchange},
		"subject_token":        {id.Token},
		"subject_token_type":   {TokenTypeAccessToken},
		"requested_token_type": {TokenTypeAccessToken},
	}
	if x.Audience != "" {
		form.Set("audience", x.Audience)
	}
	resource := x.Resource
	if resource == "" && httpURL(x.Audience) {
		resource = x.Audience
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	if len(x.Scopes) > 0 {
		form.Set("scope", strings.Join(x.Scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fail(0, "", "", errors.New("invalid token URL"))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if x.ClientID != "" {
		req.SetBasicAuth(url.QueryEscape(x.ClientID), url.QueryEscape(x.ClientSecret))
	}
	start := time.Now()
	resp, err := x.client.Do(req)
	if err != nil {
		return fail(0, "", "", scrubError{x.scrub(err.Error(), id.Token), err})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail(resp.StatusCode, "", "", errors.New("reading the answer failed"))
	}
	if resp.StatusCode != http.StatusOK {
		var te tokenErrorResponse
		_ = json.Unmarshal(body, &te)
		return fail(resp.StatusCode, te.Error, te.ErrorDescription, nil)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return fail(resp.StatusCode, "", "", errors.New("undecodable answer"))
	}
	if tr.AccessToken == "" {
		return fail(resp.StatusCode, "", "", errors.New("the answer has no access_token"))
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "Bearer") {
		return fail(resp.StatusCode, "", "", fmt.Errorf("token_type %q is not Bearer", tr.TokenType))
	}
	ttl := defaultExchangeTTL
	if tr.ExpiresIn > 0 {
		ttl = time.Duration(tr.ExpiresIn) * time.Second
	}
	skew := x.Skew
	if skew <= 0 {
		skew = min(30*time.Second, ttl/10)
	}
	until := start.Add(ttl - skew)
	// Never reuse an upstream token after the caller's own token expired:
	// the user's grant is what it stands for.
	if !id.Expiry.IsZero() && id.Expiry.Before(until) {
		until = id.Expiry
	}
	return tr.AccessToken, until, nil
}

// Secrets returns the forms in which the Exchanger's client secret goes
// on the wire (as given, query-escaped, and inside the HTTP Basic
// credentials, which an authorization server may echo in an error), for
// a redactor; nil without a secret.
func (x *Exchanger) Secrets() []string {
	if x.ClientSecret == "" {
		return nil
	}
	basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(x.ClientID) + ":" + url.QueryEscape(x.ClientSecret)))
	return []string{x.ClientSecret, url.QueryEscape(x.ClientSecret), basic}
}

// scrub removes the subject token and client secret from text the
// endpoint or the transport produced.
func (x *Exchanger) scrub(s, subjectToken string) string {
	for _, secret := range append([]string{subjectToken, url.QueryEscape(subjectToken)}, x.Secrets()...) {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// scrubError is an error whose text was scrubbed but which still unwraps to
// the original, for errors.Is (context.DeadlineExceeded...).
type scrubError struct {
	text string
	err  error
}

// Error implements error.
func (e scrubError) Error() string { return e.text }

// Unwrap returns the scrubbed error's cause.
func (e scrubError) Unwrap() error { return e.err }

// Transport returns an http.RoundTripper that authorizes each request for
// the upstream: it exchanges the token of the [Identity] in the request's
// context ([IdentityFrom]) and sets Authorization: Bearer with the result,
// replacing any Authorization header the request had. A request without an
// identity fails with [ErrNoIdentity] and is not sent. base nil means
// http.DefaultTransport.
//
// With the go-sdk's streamable client transport, each POST carries the
// call's context, so put the identity in the context of calls, and in the
// connect context of a session dedicated to one subject (the SDK uses that
// one for its standalone GET stream and DELETE).
func (x *Exchanger) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &exchangeTransport{x: x, base: base}
}

type exchangeTransport struct {
	x    *Exchanger
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *exchangeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	id, ok := IdentityFrom(req.Context())
	if !ok {
		closeBody(req)
		return nil, ErrNoIdentity
	}
	tok, err := t.x.Token(req.Context(), id)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	r2 := req.Clone(req.Context())
	r2.Header.Set("Authorization", "Bearer "+tok)
	return t.base.RoundTrip(r2)
}

// closeBody honours the RoundTripper contract: the body is closed even when
// the request is not sent.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
