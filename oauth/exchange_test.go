package oauth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mcpool/mcpool/oauth"
)

const exchangeSecret = "client-secret-0123456789"

// exchangeEndpoint is an RFC 8693 token endpoint that checks the request
// form and issues "up-<subject>-<n>" tokens.
type exchangeEndpoint struct {
	t       *testing.T
	issued  atomic.Int32
	asked   atomic.Int32 // requests, refused ones included
	perSub  sync.Map     // subject → *atomic.Int32
	gate    chan struct{}
	fail    atomic.Bool
	expires int
}

func (e *exchangeEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	t := e.t
	e.asked.Add(1)
	if err := r.ParseForm(); err != nil {
		t.Error(err)
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != "gateway" || secret != exchangeSecret {
		t.Errorf("client authentication %q %q %v", id, secret, ok)
	}
	f := r.PostForm
	want := map[string]string{
		"grant_type":         "urn:ietf:params:oauth:grant-type:token-exchange",
		"subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"audience":           "https://upstream.example/mcp",
		"resource":           "https://upstream.example/mcp",
		"scope":              "repo read:org",
	}
	for k, v := range want {
		if f.Get(k) != v {
			t.Errorf("form %s=%q, want %q", k, f.Get(k), v)
		}
	}
	if r.URL.RawQuery != "" {
		t.Errorf("token exchange parameters in the query: %q", r.URL.RawQuery)
	}
	sub, ok := strings.CutPrefix(f.Get("subject_token"), "gateway-token-of-")
	if !ok { // a JWT: the authorization server knows its subject
		var c jwt.MapClaims
		if _, _, err := jwt.NewParser().ParseUnverified(f.Get("subject_token"), &c); err != nil {
			t.Errorf("subject_token is neither a test token nor a JWT: %v", err)
		}
		sub, _ = c["sub"].(string)
	}
	if e.gate != nil {
		<-e.gate
	}
	if e.fail.Load() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		// A careless endpoint echoing the token it refused, and the
		// client's own credentials.
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"subject token %s is not acceptable (client %s)"}`, f.Get("subject_token"), r.Header.Get("Authorization"))
		return
	}
	c, _ := e.perSub.LoadOrStore(sub, new(atomic.Int32))
	n := c.(*atomic.Int32).Add(1)
	e.issued.Add(1)
	writeJSON(w, map[string]any{
		"access_token":      fmt.Sprintf("up-%s-%d", sub, n),
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type":        "Bearer",
		"expires_in":        e.expires,
	})
}

func newExchanger(t *testing.T, e *exchangeEndpoint) *oauth.Exchanger {
	as := newAuthServer(t)
	as.setToken(e.serve)
	return &oauth.Exchanger{
		TokenURL:     as.URL + "/token",
		ClientID:     "gateway",
		ClientSecret: exchangeSecret,
		Audience:     "https://upstream.example/mcp",
		Scopes:       []string{"repo", "read:org"},
	}
}

func identity(sub string) oauth.Identity {
	return oauth.Identity{Subject: sub, Token: "gateway-token-of-" + sub}
}

func TestExchangeCachesPerSubject(t *testing.T) {
	t.Parallel()
	e := &exchangeEndpoint{t: t, expires: 3600}
	x := newExchanger(t, e)
	ctx := context.Background()
	for _, c := range []struct{ sub, want string }{
		{"alice", "up-alice-1"}, {"alice", "up-alice-1"}, {"bob", "up-bob-1"}, {"alice", "up-alice-1"},
	} {
		got, err := x.Token(ctx, identity(c.sub))
		if err != nil || got != c.want {
			t.Fatalf("%s: %q %v, want %q", c.sub, got, err, c.want)
		}
	}
	if n := e.issued.Load(); n != 2 {
		t.Errorf("%d exchanges for two subjects", n)
	}
	x.Forget("alice")
	if got, _ := x.Token(ctx, identity("alice")); got != "up-alice-2" {
		t.Errorf("after Forget: %q", got)
	}
	if _, err := x.Token(ctx, oauth.Identity{Subject: "nobody"}); !errors.Is(err, oauth.ErrNoIdentity) {
		t.Errorf("identity without token: %v", err)
	}
}

func TestExchangeExpiry(t *testing.T) {
	t.Parallel()
	e := &exchangeEndpoint{t: t, expires: 1} // one second, replaced a tenth before
	x := newExchanger(t, e)
	first, err := x.Token(context.Background(), identity("alice"))
	if err != nil || first != "up-alice-1" {
		t.Fatal(first, err)
	}
	eventuallyWithin(t, 10*time.Second, "a fresh exchange once the cached token is near expiry", func() bool {
		got, err := x.Token(context.Background(), identity("alice"))
		return err == nil && got == "up-alice-2"
	})
}

func TestExchangeSharedBetweenConcurrentCallers(t *testing.T) {
	t.Parallel()
	e := &exchangeEndpoint{t: t, expires: 3600, gate: make(chan struct{})}
	x := newExchanger(t, e)
	var wg sync.WaitGroup
	results := make([]string, 20)
	for i := range results {
		wg.Go(func() {
			tok, err := x.Token(context.Background(), identity("carol"))
			if err != nil {
				t.Error(err)
			}
			results[i] = tok
		})
	}
	close(e.gate)
	wg.Wait()
	for _, r := range results {
		if r != "up-carol-1" {
			t.Fatalf("results %q", results)
		}
	}
	if n := e.issued.Load(); n != 1 {
		t.Errorf("%d exchanges for one subject", n)
	}
}

func TestExchangeFailureIsTypedAndKeepsSecrets(t *testing.T) {
	t.Parallel()
	e := &exchangeEndpoint{t: t, expires: 3600}
	e.fail.Store(true)
	x := newExchanger(t, e)
	_, err := x.Token(context.Background(), identity("alice"))
	var xe *oauth.ExchangeError
	if !errors.As(err, &xe) || !errors.Is(err, oauth.ErrExchange) {
		t.Fatalf("error %v (%T)", err, err)
	}
	if xe.Status != 400 || xe.Code != "invalid_grant" || !strings.Contains(xe.Description, "not acceptable") {
		t.Errorf("%+v", xe)
	}
	msg := err.Error() + fmt.Sprintf("%+v %#v", xe, xe)
	basic := base64.StdEncoding.EncodeToString([]byte("gateway:" + url.QueryEscape(exchangeSecret)))
	for _, secret := range []string{"gateway-token-of-alice", exchangeSecret, basic} {
		if strings.Contains(msg, secret) {
			t.Errorf("secret in the error: %s", msg)
		}
	}
	// The refusal is remembered for that token: the other requests of the
	// call get it without asking again.
	e.fail.Store(false)
	if _, err := x.Token(context.Background(), identity("alice")); !errors.Is(err, oauth.ErrExchange) || e.asked.Load() != 1 {
		t.Errorf("the same token again: %v after %d requests to the endpoint, want the refusal and 1", err, e.asked.Load())
	}
	// A new token of the same subject is tried at once, and succeeds.
	fresh := oauth.Identity{Subject: "alice", Token: "gateway-token-of-alice-renewed"}
	if got, err := x.Token(context.Background(), fresh); err != nil || got != "up-alice-renewed-1" {
		t.Errorf("a new token after the refusal: %q %v", got, err)
	}

	// Unreachable endpoint: typed too.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	x2 := &oauth.Exchanger{TokenURL: down.URL + "/token", ClientID: "gateway", ClientSecret: exchangeSecret, Audience: "up"}
	_, err = x2.Token(context.Background(), identity("alice"))
	if !errors.As(err, &xe) || xe.Status != 0 || xe.Err == nil || strings.Contains(err.Error(), exchangeSecret) {
		t.Errorf("unreachable endpoint: %v", err)
	}
}

// TestExchangeTransport: the upstream receives the exchanged token of the
// identity in the request's context, never the caller's own token, and a
// request without an identity is not sent.
func TestExchangeTransport(t *testing.T) {
	t.Parallel()
	e := &exchangeEndpoint{t: t, expires: 3600}
	x := newExchanger(t, e)
	var mu sync.Mutex
	var seen []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer upstream.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: x.Transport(tr)}
	for _, sub := range []string{"alice", "bob", "alice"} {
		ctx := oauth.WithIdentity(context.Background(), identity(sub))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, upstream.URL, strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer gateway-token-of-"+sub) // must be replaced
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodPost, upstream.URL, strings.NewReader("{}"))
	if _, err := client.Do(req); !errors.Is(err, oauth.ErrNoIdentity) {
		t.Errorf("request without identity: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(seen, ","); got != "Bearer up-alice-1,Bearer up-bob-1,Bearer up-alice-1" {
		t.Errorf("upstream saw %q", got)
	}
}
