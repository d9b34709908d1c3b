package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool/oauth"
)

// TestIntrospection: opaque tokens are validated by RFC 7662 introspection,
// authenticated as the resource server, and the answer is cached briefly.
func TestIntrospection(t *testing.T) {
	t.Parallel()
	as := newAuthServer(t, newECKey(t, "k"))
	var calls atomic.Int32
	as.setIntrospect(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "gateway" || secret != "s3cret-introspect" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		exp := time.Now().Add(time.Hour).Unix()
		switch r.PostFormValue("token") {
		case "opaque-alice":
			writeJSON(w, map[string]any{"active": true, "sub": "alice", "client_id": "app", "scope": "mcp:tools", "aud": testAudience, "iss": as.issuer, "exp": exp})
		case "opaque-noscope":
			writeJSON(w, map[string]any{"active": true, "sub": "bob", "scope": "other", "aud": []string{testAudience}, "exp": exp})
		case "opaque-otheraud":
			writeJSON(w, map[string]any{"active": true, "sub": "bob", "scope": "mcp:tools", "aud": "https://other.example", "exp": exp})
		default:
			writeJSON(w, map[string]any{"active": false})
		}
	})
	rs, logs := newRS(t, as, func(c *oauth.Config) {
		c.IntrospectionURL = as.URL + "/introspect"
		c.ClientID, c.ClientSecret = "gateway", "s3cret-introspect"
	})
	rec, id := get(t, rs, "Bearer opaque-alice")
	if rec.Code != 200 || id.Subject != "alice" || id.ClientID != "app" || id.Token != "opaque-alice" {
		t.Fatalf("%d %v", rec.Code, id)
	}
	n := calls.Load()
	if rec, _ := get(t, rs, "Bearer opaque-alice"); rec.Code != 200 || calls.Load() != n {
		t.Errorf("second request: %d, introspected again: %v", rec.Code, calls.Load() != n)
	}
	for tok, want := range map[string]error{
		"opaque-revoked":  oauth.ErrTokenInactive,
		"opaque-noscope":  oauth.ErrInsufficientScope,
		"opaque-otheraud": oauth.ErrWrongAudience,
	} {
		if _, err := rs.Validate(context.Background(), tok); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", tok, err, want)
		}
	}
	as.Close() // endpoint down: a new token fails closed, cached ones still pass
	if _, err := rs.Validate(context.Background(), "opaque-new"); !errors.Is(err, oauth.ErrIntrospection) {
		t.Errorf("endpoint down: %v", err)
	}
	if _, err := rs.Validate(context.Background(), "opaque-alice"); err != nil {
		t.Errorf("cached answer while the endpoint is down: %v", err)
	}
	if strings.Contains(logs.String(), "opaque-") || strings.Contains(logs.String(), "s3cret") {
		t.Errorf("secret in the log:\n%s", logs)
	}
}
