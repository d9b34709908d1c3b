package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/auth"
)

// protectedServer serves the demo server over loopback HTTP behind the
// go-sdk's bearer-token middleware: only token is accepted.
type protectedServer struct {
	url     string
	mu      sync.Mutex
	tenants []string // X-Tenant of each request that carried one
}

func newProtectedServer(t *testing.T, token string) *protectedServer {
	t.Helper()
	ps := &protectedServer{}
	verify := func(_ context.Context, got string, _ *http.Request) (*auth.TokenInfo, error) {
		if got != token {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{Expiration: time.Now().Add(time.Hour)}, nil
	}
	protected := auth.RequireBearerToken(verify, nil)(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		if v := r.Header.Get("X-Tenant"); v != "" {
			ps.tenants = append(ps.tenants, v)
		}
		ps.mu.Unlock()
		protected.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	ps.url = ts.URL + "/mcp"
	return ps
}

func (ps *protectedServer) seenTenants() []string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]string(nil), ps.tenants...)
}

func TestTokenAndHeaders(t *testing.T) {
	ps := newProtectedServer(t, "s3cret")
	r := runCLI(t, "call", "--url", ps.url, "--token", "s3cret", "--header", "X-Tenant: acme", "echo", `{"message":"hi"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"hi"`) {
		t.Fatalf("call with --token: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := ps.seenTenants(); len(got) == 0 || got[0] != "acme" {
		t.Errorf("X-Tenant seen by the server: %q, want acme on every request", got)
	}

	// MCPOOL_TOKEN stands in for --token; tools lists through it.
	t.Setenv(envToken, "s3cret")
	r = runCLI(t, "tools", "--url", ps.url)
	if r.code != 0 || !strings.Contains(r.stdout, `"echo"`) {
		t.Fatalf("tools with $%s: status %d, stdout %q, stderr %q", envToken, r.code, r.stdout, r.stderr)
	}
}

// TestBenchCarriesToken: every mode of bench, per-call sessions included
// (made without the pool), sends the token and the headers.
func TestBenchCarriesToken(t *testing.T) {
	ps := newProtectedServer(t, "s3cret")
	r := runCLI(t, "bench", "--url", ps.url, "--token", "s3cret", "--header", "X-Tenant: acme",
		"--calls", "20", "--concurrency", "2", "--json")
	if r.code != 0 {
		t.Fatalf("bench: status %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, `"mode":"per-call","calls":20,"errors":0`) {
		t.Errorf("bench output %s: want per-call with 20 calls and no errors", r.stdout)
	}
	for _, v := range ps.seenTenants() {
		if v != "acme" {
			t.Fatalf("X-Tenant %q, want acme", v)
		}
	}
}

func TestAuthErrors(t *testing.T) {
	ps := newProtectedServer(t, "s3cret")
	cases := []struct {
		name    string
		args    []string
		mention string
		absent  string
	}{
		{"no credentials", []string{"call", "--url", ps.url, "echo"},
			"the server requires authorization; use --token or --oauth", "refused"},
		{"no credentials tools", []string{"tools", "--url", ps.url},
			"the server requires authorization; use --token or --oauth", "refused"},
		{"no credentials bench", []string{"bench", "--url", ps.url, "--calls", "1"},
			"the server requires authorization; use --token or --oauth", "refused"},
		{"wrong token", []string{"call", "--url", ps.url, "--token", "wrong", "echo"},
			"the server refused the token", "requires authorization"},
		{"wrong Authorization header", []string{"tools", "--url", ps.url, "--header", "Authorization: Bearer wrong"},
			"the server refused the token", "requires authorization"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, c.args...)
			wantOneLineError(t, r, 1, c.mention)
			if strings.Count(r.stderr, "mcpool:") != 1 {
				t.Errorf("stderr %q says \"mcpool:\" more than once", r.stderr)
			}
			if strings.Contains(r.stderr, c.absent) {
				t.Errorf("stderr %q mentions %q", r.stderr, c.absent)
			}
			if !strings.Contains(r.stderr, "connect to "+ps.url) {
				t.Errorf("stderr %q does not name the server", r.stderr)
			}
		})
	}
}

func TestAuthUsageErrors(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		mention string
	}{
		{"bad header", []string{"tools", "--header", "NoColon"}, "Name: value"},
		{"token and oauth", []string{"tools", "--url", "http://127.0.0.1:1/mcp", "--token", "x", "--oauth"}, "not both"},
		{"client id alone", []string{"tools", "--url", "http://127.0.0.1:1/mcp", "--client-id", "x"}, "--client-secret"},
		{"secret alone", []string{"tools", "--url", "http://127.0.0.1:1/mcp", "--client-secret", "x"}, "--client-id"},
		{"cache without oauth", []string{"tools", "--url", "http://127.0.0.1:1/mcp", "--token-cache", "f"}, "--oauth"},
		{"token on stdio", []string{"tools", "--stdio", "x", "--token", "t"}, "HTTP servers"},
		{"oauth on sse", []string{"tools", "--sse", "http://127.0.0.1:1/sse", "--oauth"}, "--url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantOneLineError(t, runCLI(t, c.args...), 2, c.mention)
		})
	}
}

func TestExplainErrorSaysMcpoolOnce(t *testing.T) {
	err := errors.New("mcpool: connect to x failed: mcpool: pool closed")
	if got := explainError(err).Error(); strings.Contains(got, "mcpool:") {
		t.Errorf("explainError left a prefix: %q", got)
	}
	if !errors.Is(explainError(err), err) {
		t.Error("explainError hides the original error from errors.Is")
	}
}

func TestHeaderFlag(t *testing.T) {
	var h headerList
	for _, s := range []string{"X-A: 1", "X-A:2", "X-B:  spaced value "} {
		if err := h.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	got := http.Header(h)
	if v := got.Values("X-A"); len(v) != 2 || v[0] != "1" || v[1] != "2" {
		t.Errorf("X-A = %q, want [1 2]", v)
	}
	if v := got.Get("X-B"); v != "spaced value" {
		t.Errorf("X-B = %q", v)
	}
	for _, bad := range []string{"", ":v", "No Colon", "Two Words: v"} {
		if err := h.Set(bad); err == nil {
			t.Errorf("Set(%q): no error", bad)
		}
	}
}

// TestErrorsSayMcpoolOnce runs the command into the failures that carry
// the library's errors (connect, tool, timeout, auth) and checks that
// each one-line error says "mcpool:" once (a server that is down, and the
// breaker that gives up on it: TestUnreachableSaysItWaits).
func TestErrorsSayMcpoolOnce(t *testing.T) {
	ps := newProtectedServer(t, "s3cret")
	for _, args := range [][]string{
		{"tools", "--stdio", "/nonexistent/mcp-server"},
		{"call", "nope"},
		{"bench", "--tool", "nope", "--calls", "1"},
		{"call", "--url", ps.url, "echo"},
		{"bench", "--url", ps.url, "--token", "wrong", "--calls", "1"},
		{"call", "sleep", `{"ms":20000}`, "--timeout", "200ms"},
	} {
		r := runCLI(t, args...)
		if r.code == 0 || strings.Count(r.stderr, "mcpool:") != 1 {
			t.Errorf("%q: status %d, stderr %q; want a failure saying \"mcpool:\" once", args, r.code, r.stderr)
		}
	}
}
