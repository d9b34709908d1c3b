package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// TestRedirectListener drives the loopback listener as an authorization
// server's redirect would: a redirect without the state of a waiting
// sign-in is refused, the right one completes it, an error= one fails it,
// and nobody signing in ends with the context.
func TestRedirectListener(t *testing.T) {
	t.Setenv("BROWSER", "none")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var prompt strings.Builder
	cb := newCallbackServer(ln, &prompt)
	defer cb.close()
	callback := "http://" + ln.Addr().String() + callbackPath

	type fetched struct {
		res *auth.AuthorizationResult
		err error
	}
	start := func(ctx context.Context, state string) <-chan fetched {
		ch := make(chan fetched, 1)
		go func() {
			res, err := cb.fetch(ctx, &auth.AuthorizationArgs{URL: "https://as.example/authorize?state=" + state})
			ch <- fetched{res, err}
		}()
		// Wait until the sign-in is waiting for its redirect.
		deadline := time.Now().Add(10 * time.Second)
		for {
			cb.mu.Lock()
			_, ok := cb.waiting[state]
			cb.mu.Unlock()
			if ok {
				return ch
			}
			if time.Now().After(deadline) {
				t.Fatal("the sign-in never started waiting")
			}
			time.Sleep(time.Millisecond)
		}
	}
	get := func(q url.Values) int {
		resp, err := http.Get(callback + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	ch := start(context.Background(), "s1")
	if code := get(url.Values{"state": {"other"}, "code": {"c"}}); code != http.StatusBadRequest {
		t.Errorf("redirect with an unknown state: %d, want 400", code)
	}
	if code := get(url.Values{"state": {"s1"}, "code": {"the-code"}, "iss": {"https://as.example"}}); code != http.StatusOK {
		t.Errorf("redirect with the state: %d, want 200", code)
	}
	if f := <-ch; f.err != nil || f.res.Code != "the-code" || f.res.State != "s1" || f.res.Iss != "https://as.example" {
		t.Errorf("sign-in: %+v, %v", f.res, f.err)
	}
	if !strings.Contains(prompt.String(), "open this URL in a browser") || !strings.Contains(prompt.String(), "https://as.example/authorize?state=s1\n") {
		t.Errorf("prompt %q does not show the URL on a line of its own", prompt.String())
	}

	ch = start(context.Background(), "s2")
	get(url.Values{"state": {"s2"}, "error": {"access_denied"}, "error_description": {"no thanks"}})
	var fe *oauthFlowError
	if f := <-ch; !errors.As(f.err, &fe) || !strings.Contains(f.err.Error(), "access_denied (no thanks)") {
		t.Errorf("refused sign-in: %v, want the server's error", f.err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	ch = start(ctx, "s3")
	cancel()
	if f := <-ch; !errors.As(f.err, &fe) || !strings.Contains(f.err.Error(), "in time") {
		t.Errorf("nobody signed in: %v", f.err)
	}
}
