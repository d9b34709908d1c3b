package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// An upstream tools/list_changed reaches downstream sessions, and the new
// tool is listed and callable through the gateway.
func TestListChangedForwarded(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "growing", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "first"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "1"}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	t.Cleanup(func() { closePeer(up, ts) })
	pool := newPool(t, mcpool.Config{URL: ts.URL})
	_, url := startGateway(t, gateway.Options{CatalogPoll: 20 * time.Millisecond, Servers: []gateway.Server{
		{Name: "g", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool)},
	}})
	var changed atomic.Int64
	cs := connect(t, url, "2025-11-25", &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed.Add(1) }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := changed.Load()
	mcp.AddTool(up, &mcp.Tool{Name: "second"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "2"}}}, nil, nil
	})
	eventually(t, "tools/list_changed downstream", func() bool { return changed.Load() > before })
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if !slices.Contains(names, "g__second") {
		t.Fatalf("after list_changed, tools are %v; want g__second", names)
	}
	if got, err := call(ctx, cs, "g__second", map[string]any{}); err != nil || got != "2" {
		t.Errorf("g__second = %q, %v", got, err)
	}
}

// Passthrough: each caller's credentials reach the upstream server on its
// own upstream sessions; a caller without credentials is refused, not
// served anonymously.
func TestPassthroughForwardsEachCallersCredentials(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "whoami", Version: "1"}, nil)
	var sessions credLog
	mcp.AddTool(up, &mcp.Tool{Name: "whoami"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		sessions.note(req.Session.ID(), req.Extra.Header.Get("X-User-Key"))
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: req.Extra.Header.Get("X-User-Key")}}}, nil, nil
	})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || !strings.HasPrefix(r.Header.Get("X-User-Key"), "user-") {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closePeer(up, ts) })
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "p", Mode: gateway.ModePassthrough, ForwardHeaders: []string{"X-User-Key"}, Config: mcpool.Config{URL: ts.URL}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, user := range []string{"user-a", "user-b", "user-a"} {
		c := mcp.NewClient(&mcp.Implementation{Name: user, Version: "1"}, nil)
		cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: headers{"X-User-Key": user, "Authorization": "Bearer gateway-token-" + user}}},
			&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatal(err)
		}
		tools, err := cs.ListTools(ctx, nil)
		if err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != "p__whoami" {
			t.Fatalf("%s lists %v, %v; want p__whoami", user, tools, err)
		}
		if got, err := call(ctx, cs, "p__whoami", map[string]any{}); err != nil || got != user {
			t.Errorf("%s: whoami = %q, %v; want its own credentials upstream", user, got, err)
		}
		cs.Close()
	}
	if n := sessions.tokensPerSession(); n != 1 {
		t.Errorf("an upstream session carried %d different credentials; want 1", n)
	}
	if d := gw.Status().Servers[0].Detail; !strings.HasPrefix(d, "2 credentials") {
		t.Errorf("status detail %q, want 2 credentials with their own pool", d)
	}
	anon := connect(t, url, "2025-11-25", nil)
	tools, err := anon.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 0 {
		t.Errorf("a caller without credentials lists %v, %v; want nothing of the passthrough server", tools, err)
	}
	if _, err := call(ctx, anon, "p__whoami", map[string]any{}); rpcCode(err) != gateway.CodeUnauthorized {
		t.Errorf("anonymous call: %v; want code %d", err, gateway.CodeUnauthorized)
	}
}

// credLog records which credentials each upstream session saw.
type credLog struct {
	mu   sync.Mutex
	seen map[string]map[string]bool
}

func (s *credLog) note(session, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]map[string]bool{}
	}
	if s.seen[session] == nil {
		s.seen[session] = map[string]bool{}
	}
	s.seen[session][token] = true
}

func (s *credLog) tokensPerSession() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	most := 0
	for _, tokens := range s.seen {
		most = max(most, len(tokens))
	}
	return most
}

// A server whose circuit breaker is open answers CodeUnavailable at once,
// saying when to retry, and is left out of the merged list; the other
// servers serve on.
func TestBreakerOpenIsUnavailableAtOnce(t *testing.T) {
	dead := newPool(t, mcpool.Config{URL: "http://127.0.0.1:1/mcp", FailureThreshold: 1, BreakerCooldown: time.Minute, ConnectTimeout: 5 * time.Second})
	demo := newPool(t, mcpool.Config{URL: demoURL(t)})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "dead", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(dead)},
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(demo)},
	}})
	cs := connect(t, url, "2025-11-25", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually(t, "the breaker open", func() bool { return dead.Stats().Status == mcpool.StatusUnavailable })
	for range 2 {
		start := time.Now()
		_, err := call(ctx, cs, "dead__echo", map[string]any{})
		if rpcCode(err) != gateway.CodeUnavailable || !strings.Contains(err.Error(), "retry") {
			t.Fatalf("call to a dead server: %v; want code %d saying when to retry", err, gateway.CodeUnavailable)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("refusal took %v; want it at once", took)
		}
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 3 {
		t.Errorf("merged list: %d tools, %v; want demo's 3 with dead left out", len(tools.Tools), err)
	}
	if st := gw.Status().Servers[0]; st.Status != "unavailable" || st.ListError == "" {
		t.Errorf("status of dead: %s, list error %q", st.Status, st.ListError)
	}
}

// SessionsOnly: a 2026-07-28 client falls back to a 2025-11-25 session and
// is served.
func TestSessionsOnly(t *testing.T) {
	demo := newPool(t, mcpool.Config{URL: demoURL(t)})
	_, url := startGateway(t, gateway.Options{SessionsOnly: true, Servers: []gateway.Server{
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(demo)},
	}})
	cs := connect(t, url, "", nil)
	if v := cs.InitializeResult().ProtocolVersion; v >= "2026-07-28" {
		t.Fatalf("negotiated %s; want a 2025-era session", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got, err := call(ctx, cs, "demo__echo", map[string]any{"message": "s"}); err != nil || got != "s" {
		t.Errorf("demo__echo = %q, %v", got, err)
	}
}

// An isolated server's upstream session is closed when its downstream
// session idles out (SessionIdleTimeout), not kept for ever. The timeout
// runs between the client's requests, so it is longer than a loaded
// machine may take between initialize and the first call.
func TestIsolatedSessionIdlesOut(t *testing.T) {
	g := newGate()
	upURL := g.url(t)
	catalog := newPool(t, mcpool.Config{URL: upURL})
	gw, url := startGateway(t, gateway.Options{SessionIdleTimeout: 3 * time.Second, Servers: []gateway.Server{
		{Name: "kv", Mode: gateway.ModeIsolated, Upstream: gateway.PoolUpstream(catalog), Config: mcpool.Config{URL: upURL}, Spares: 1},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs := connect(t, url, "2025-11-25", nil)
	if _, err := call(ctx, cs, "kv__set", map[string]any{"value": "x"}); err != nil {
		t.Fatal(err)
	}
	if st := gw.Status().Servers[0]; st.Sessions != 1 {
		t.Fatalf("%d isolated sessions, want 1", st.Sessions)
	}
	eventually(t, "the idle session's upstream session closed", func() bool {
		return strings.HasPrefix(gw.Status().Servers[0].Detail, "0 downstream sessions")
	})
}

// headers is an http.RoundTripper that sets headers on every request.
type headers map[string]string

func (h headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// An isolated server that is down: once its circuit breaker is open (its
// catalog pool's), a new downstream session's call answers CodeUnavailable
// at once, rather than a fresh upstream pool riding out the failing
// connects again (BreakerOpenAfter) for each new session.
func TestIsolatedBreakerOpenIsUnavailableAtOnce(t *testing.T) {
	const openAfter = 3 * time.Second
	g, err := gateway.New(gateway.Options{Logger: quiet(), Servers: []gateway.Server{
		{Name: "dead", Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp", BreakerOpenAfter: openAfter}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = g.Start(ctx) // fails: the server is down; the gateway serves on
	ts := httptest.NewServer(g.Handler())
	t.Cleanup(func() {
		if err := g.Close(context.Background()); err != nil {
			t.Errorf("gateway Close: %v", err)
		}
		ts.Close()
	})
	eventually(t, "the breaker open", func() bool { return g.Status().Servers[0].Status == "unavailable" })
	for range 2 { // each on a new downstream session: each would need a new upstream pool
		cs := connect(t, ts.URL+"/mcp", "2025-11-25", nil)
		// Shorter than the ride-out a new upstream pool would make: only
		// the refusal from the open breaker comes within it.
		cctx, ccancel := context.WithTimeout(ctx, openAfter-time.Second)
		_, err := call(cctx, cs, "dead__echo", map[string]any{})
		ccancel()
		if rpcCode(err) != gateway.CodeUnavailable || !strings.Contains(err.Error(), "circuit breaker open") {
			t.Fatalf("call to a dead isolated server: %v; want code %d, the breaker open", err, gateway.CodeUnavailable)
		}
	}
}

// A passthrough server is dialed with each caller's credentials only: its
// headers may not carry the gateway's own Authorization or Cookie, nor a
// header the callers forward (the gateway's value would stand in for a
// caller that sent none). Other headers are allowed.
func TestPassthroughRefusesGatewayCredentials(t *testing.T) {
	for _, tc := range []struct {
		headers http.Header
		refused string
	}{
		{http.Header{"Authorization": {"Bearer gateway-own-key"}}, "Authorization"},
		{http.Header{"cookie": {"sid=1"}}, "Cookie"},
		{http.Header{"X-User-Key": {"gateway-default"}}, "X-User-Key"},
		{http.Header{"X-Tenant": {"acme"}}, ""},
	} {
		s := gateway.Server{Name: "p", Mode: gateway.ModePassthrough, ForwardHeaders: []string{"x-user-key"},
			Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp", Headers: tc.headers}}
		g, err := gateway.New(gateway.Options{Logger: quiet(), Servers: []gateway.Server{s}})
		if tc.refused == "" {
			if err != nil {
				t.Errorf("headers %v: %v; want them allowed", tc.headers, err)
			} else {
				g.Close(context.Background())
			}
			continue
		}
		if err == nil {
			g.Close(context.Background())
		}
		if err == nil || !strings.Contains(err.Error(), "headers set "+tc.refused) || strings.Contains(err.Error(), "gateway-own-key") {
			t.Errorf("headers %v: %v; want a refusal naming %s (and no header value)", tc.headers, err, tc.refused)
		}
	}
	// Nor the gateway's own token or sign-in.
	s := gateway.Server{Name: "p", Mode: gateway.ModePassthrough, ForwardHeaders: []string{"x-user-key"},
		Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp", BearerToken: "gateway-own-key"}}
	if _, err := gateway.New(gateway.Options{Logger: quiet(), Servers: []gateway.Server{s}}); err == nil ||
		!strings.Contains(err.Error(), "remove its BearerToken, Token and OAuthHandler") || strings.Contains(err.Error(), "gateway-own-key") {
		t.Errorf("a passthrough server with the gateway's BearerToken: %v; want it refused", err)
	}
}
