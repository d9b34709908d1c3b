package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/oauthtest"
	"github.com/mcpool/mcpool/oauth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// recorder is an upstream MCP server on loopback that records the
// Authorization header of every HTTP request it receives. Its tools:
// whoami (answers the Authorization header), secret_delete (counts calls).
type recorder struct {
	url      string
	mu       sync.Mutex
	auth     []string
	sessions credLog
	deletes  atomic.Int64
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	up := mcp.NewServer(&mcp.Implementation{Name: "recorder", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "whoami"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		a := req.Extra.Header.Get("Authorization")
		rec.sessions.note(req.Session.ID(), a)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a}}}, nil, nil
	})
	mcp.AddTool(up, &mcp.Tool{Name: "secret_delete"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		rec.deletes.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted"}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.auth = append(rec.auth, r.Header.Get("Authorization"))
		rec.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closePeer(up, ts) })
	rec.url = ts.URL
	return rec
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.auth)
}

// startSecure starts a gateway that is a resource server for as, on a
// listener made first so that the audience is its /mcp URL.
func startSecure(t *testing.T, as *oauthtest.Server, opts gateway.Options, scopes ...string) (*gateway.Gateway, string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	url := "http://" + ts.Listener.Addr().String() + "/mcp"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := oauth.New(ctx, oauth.Config{Issuer: as.Issuer, Audience: url, Scopes: scopes, Logger: quiet(), JWKSMinRefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	opts.Auth = rs
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = g.Handler()
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Errorf("gateway Close: %v", err)
		}
		ts.Close()
		rs.Close()
	})
	return g, url
}

// connectAs opens a session to the gateway with token.
func connectAs(t *testing.T, url, token string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer(token)}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tl := range res.Tools {
		out = append(out, tl.Name)
	}
	return out
}

func errorData(err error) gateway.ErrorData {
	var je *jsonrpc.Error
	var d gateway.ErrorData
	if errors.As(err, &je) {
		_ = json.Unmarshal(je.Data, &d)
	}
	return d
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`

// The gateway is a resource server: it serves its Protected Resource
// Metadata, refuses every bad token with 401 and resource_metadata, a
// token without the required scope with 403, serves a valid one, and
// follows a key rotation.
func TestGatewayResourceServer(t *testing.T) {
	as := oauthtest.New(t)
	up := newRecorder(t)
	_, url := startSecure(t, as, gateway.Options{Servers: []gateway.Server{
		{Name: "a", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(newPool(t, mcpool.Config{URL: up.url}))},
	}}, "mcp:tools")
	base := strings.TrimSuffix(url, "/mcp")
	for _, p := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		var prm struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			Scopes               []string `json:"scopes_supported"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&prm)
		resp.Body.Close()
		if resp.StatusCode != 200 || prm.Resource != url || !slices.Equal(prm.AuthorizationServers, []string{as.Issuer}) || !slices.Equal(prm.Scopes, []string{"mcp:tools"}) {
			t.Errorf("GET %s: %d %+v; want the metadata of %s", p, resp.StatusCode, prm, url)
		}
	}
	post := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(initBody))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := as.Claims(url, "alice", "mcp:tools")
		edit(c)
		return c
	}
	unsigned, _ := jwt.NewWithClaims(jwt.SigningMethodNone, as.Claims(url, "alice", "mcp:tools")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, c := range []struct{ name, token string }{
		{"none", ""},
		{"no signature", unsigned},
		{"foreign key", oauthtest.NewKey("k1").Sign(as.Claims(url, "alice", "mcp:tools"))},
		{"wrong audience", as.Key().Sign(claims(func(c jwt.MapClaims) { c["aud"] = "http://other.example/mcp" }))},
		{"wrong issuer", as.Key().Sign(claims(func(c jwt.MapClaims) { c["iss"] = "http://evil.example" }))},
		{"expired", as.Key().Sign(claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))},
		{"malformed", "not-a-token"},
	} {
		code, chal := post(c.token)
		if code != http.StatusUnauthorized || !strings.Contains(chal, `resource_metadata="`+base+`/.well-known/oauth-protected-resource/mcp"`) {
			t.Errorf("%s: %d %q; want 401 with resource_metadata", c.name, code, chal)
		}
	}
	if code, chal := post(as.Token(url, "alice")); code != http.StatusForbidden || !strings.Contains(chal, "insufficient_scope") || !strings.Contains(chal, `scope="mcp:tools"`) {
		t.Errorf("token without scope: %d %q; want 403 insufficient_scope naming mcp:tools", code, chal)
	}
	if code, _ := post(as.Token(url, "alice", "mcp:tools")); code != http.StatusOK {
		t.Errorf("valid token: %d, want 200", code)
	}
	if got := toolNames(t, connectAs(t, url, as.Token(url, "alice", "mcp:tools"))); !slices.Contains(got, "a__whoami") {
		t.Errorf("valid token lists %v", got)
	}
	// Rotation: a token signed with a new key is served once the key set
	// has it; the old key is gone.
	old := as.Key()
	as.SetKeys(oauthtest.NewKey("k2"))
	if code, _ := post(as.Token(url, "alice", "mcp:tools")); code != http.StatusOK {
		t.Errorf("token signed with the rotated-in key: %d, want 200", code)
	}
	if code, _ := post(old.Sign(as.Claims(url, "alice", "mcp:tools"))); code != http.StatusUnauthorized {
		t.Errorf("token signed with the rotated-out key: %d, want 401", code)
	}
}

// The upstream never receives the gateway's token, in any mode; with
// tokenExchange it receives a token issued for it, per subject, and
// upstream sessions never cross subjects.
func TestNoTokenPassthroughAnyMode(t *testing.T) {
	as := oauthtest.New(t)
	shared, isolated, exch := newRecorder(t), newRecorder(t), newRecorder(t)
	_, url := startSecure(t, as, gateway.Options{Servers: []gateway.Server{
		{Name: "s", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(newPool(t, mcpool.Config{URL: shared.url}))},
		{Name: "i", Mode: gateway.ModeIsolated, Spares: -1, Config: mcpool.Config{URL: isolated.url}},
		{Name: "x", Mode: gateway.ModePassthrough, Config: mcpool.Config{URL: exch.url},
			TokenExchange: &oauth.Exchanger{TokenURL: as.URL + "/token", ClientID: "gw", ClientSecret: "gw-secret", Audience: "urn:upstream:x"}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tokens := map[string]string{}
	for _, user := range []string{"alice", "bob", "alice"} {
		tok := as.Token(url, user)
		tokens[tok] = user
		cs := connectAs(t, url, tok)
		for _, srv := range []string{"s", "i", "x"} {
			got, err := call(ctx, cs, srv+"__whoami", map[string]any{})
			if err != nil {
				t.Fatalf("%s: %s__whoami: %v", user, srv, err)
			}
			if srv == "x" && got != "Bearer xchg."+user+".urn:upstream:x" {
				t.Errorf("%s: the exchanging server got %q; want the token exchanged for %s", user, got, user)
			}
		}
		cs.Close()
	}
	for name, r := range map[string]*recorder{"shared": shared, "isolated": isolated, "exchange": exch} {
		seen := r.seen()
		if len(seen) == 0 {
			t.Errorf("%s upstream saw no request", name)
		}
		for _, a := range seen {
			if _, gw := tokens[strings.TrimPrefix(a, "Bearer ")]; gw && a != "" {
				t.Errorf("%s upstream received the gateway's token (of %s)", name, tokens[strings.TrimPrefix(a, "Bearer ")])
			}
		}
	}
	if n := exch.sessions.tokensPerSession(); n != 1 {
		t.Errorf("an upstream session of the exchanging server carried %d subjects' tokens; want 1", n)
	}
	// A failed exchange: -32041 with the reason, never the token.
	as.OnExchange(func(subject, audience string) (string, int) { return "", http.StatusForbidden })
	tok := as.Token(url, "carol")
	_, err := call(ctx, connectAs(t, url, tok), "x__whoami", map[string]any{})
	if rpcCode(err) != gateway.CodeUnauthorized || errorData(err).Reason != "exchange_failed" || strings.Contains(err.Error(), tok) {
		t.Errorf("failed exchange: %v; want code %d reason exchange_failed without the token", err, gateway.CodeUnauthorized)
	}
}

// Passthrough never forwards Authorization, and a passthrough server with
// nothing per caller to send is refused with what to do.
func TestPassthroughRefusesAuthorization(t *testing.T) {
	for _, s := range []gateway.Server{
		{Name: "p", Mode: gateway.ModePassthrough, ForwardHeaders: []string{"authorization"}, Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp"}},
		{Name: "p", Mode: gateway.ModePassthrough, Config: mcpool.Config{URL: "http://127.0.0.1:1/mcp"}},
	} {
		_, err := gateway.New(gateway.Options{Logger: quiet(), Servers: []gateway.Server{s}})
		if err == nil || !strings.Contains(err.Error(), "tokenExchange") {
			t.Errorf("passthrough forwarding %v: %v; want an error pointing at tokenExchange", s.ForwardHeaders, err)
		}
	}
}

// A denied tool is neither listed nor callable (and never reaches the
// upstream); an identity without access sees nothing of a server.
func TestToolPolicyAndAccess(t *testing.T) {
	as := oauthtest.New(t)
	up := newRecorder(t)
	pool := newPool(t, mcpool.Config{URL: up.url})
	_, url := startSecure(t, as, gateway.Options{Servers: []gateway.Server{
		{Name: "a", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool), Tools: gateway.ToolPolicy{Deny: []string{"secret_*"}}},
		{Name: "b", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool), Access: gateway.Access{Subjects: []string{"admin-*"}, Scopes: []string{"admin"}}},
		{Name: "c", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool), Tools: gateway.ToolPolicy{Allow: []string{"who*"}, Deny: []string{"whoami"}}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := connectAs(t, url, as.Token(url, "alice", "admin"))
	if got := toolNames(t, alice); !slices.Equal(got, []string{"a__whoami"}) {
		t.Errorf("alice lists %v; want a__whoami only (secret_* denied, b not hers, c's allow overruled by deny)", got)
	}
	for _, name := range []string{"a__secret_delete", "b__whoami", "c__whoami"} {
		if _, err := call(ctx, alice, name, map[string]any{}); rpcCode(err) != gateway.CodeUnknownName {
			t.Errorf("alice calls %s: %v; want code %d as for an unknown tool", name, err, gateway.CodeUnknownName)
		}
	}
	if n := up.deletes.Load(); n != 0 {
		t.Errorf("the denied tool ran %d times upstream", n)
	}
	carol := connectAs(t, url, as.Token(url, "admin-carol", "admin"))
	if got := toolNames(t, carol); !slices.Contains(got, "b__whoami") || !slices.Contains(got, "b__secret_delete") {
		t.Errorf("admin-carol lists %v; want b's tools", got)
	}
	if got := toolNames(t, connectAs(t, url, as.Token(url, "admin-dave"))); slices.Contains(got, "b__whoami") {
		t.Errorf("admin-dave without the admin scope lists %v; want none of b", got)
	}
	if _, err := call(ctx, carol, "b__whoami", map[string]any{}); err != nil {
		t.Errorf("admin-carol calls b__whoami: %v", err)
	}
}

// A rate-limited identity gets -32029 with retryAfterMs; another is
// unaffected; the audit log has one line per call.
func TestRateLimitAndAudit(t *testing.T) {
	as := oauthtest.New(t)
	up := newRecorder(t)
	var audit syncBuffer
	gw, url := startSecure(t, as, gateway.Options{
		RateLimit: &gateway.RateLimit{Rate: 0.001, Burst: 2},
		Audit:     oauth.NewAuditor(&audit),
		Servers: []gateway.Server{
			{Name: "a", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(newPool(t, mcpool.Config{URL: up.url}))},
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := connectAs(t, url, as.Token(url, "alice"))
	for i := range 2 {
		if _, err := call(ctx, alice, "a__whoami", map[string]any{}); err != nil {
			t.Fatalf("alice call %d: %v", i, err)
		}
	}
	_, err := call(ctx, alice, "a__whoami", map[string]any{})
	if d := errorData(err); rpcCode(err) != gateway.CodeOverloaded || d.Reason != "rate_limited" || d.RetryAfterMs <= 0 {
		t.Errorf("alice's third call: %v (%+v); want code %d, rate_limited, retryAfterMs", err, d, gateway.CodeOverloaded)
	}
	if _, err := call(ctx, connectAs(t, url, as.Token(url, "bob")), "a__whoami", map[string]any{}); err != nil {
		t.Errorf("bob is limited by alice's calls: %v", err)
	}
	if n := gw.RateLimited("a"); n != 1 {
		t.Errorf("RateLimited(a) = %d, want 1", n)
	}
	lines := strings.Split(strings.TrimSpace(audit.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("audit log has %d lines for 4 calls:\n%s", len(lines), audit.String())
	}
	var outcomes []string
	for _, l := range lines {
		var c map[string]any
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		outcomes = append(outcomes, c["subject"].(string)+":"+c["outcome"].(string))
		// The answer's size, also when the result was relayed undecoded:
		// {"content":[{"type":"text","text":""}]} at least.
		if n, _ := c["bytes"].(float64); c["outcome"] == "ok" && n < 39 {
			t.Errorf("audit line %q: bytes %v, want the result's size", l, c["bytes"])
		}
	}
	if want := []string{"alice:ok", "alice:ok", "alice:rate_limited", "bob:ok"}; !slices.Equal(outcomes, want) {
		t.Errorf("audit outcomes %v, want %v", outcomes, want)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Two clients of one user, with different scopes, each get the token
// exchanged for their own (RFC 8693 section 2.1), in turn and at once, and
// never share an upstream session: the weaker client never rides on the
// stronger one's grant.
func TestTokenExchangePerClient(t *testing.T) {
	as := oauthtest.New(t)
	exch := newRecorder(t)
	_, url := startSecure(t, as, gateway.Options{Servers: []gateway.Server{
		{Name: "x", Mode: gateway.ModePassthrough, Config: mcpool.Config{URL: exch.url},
			TokenExchange: &oauth.Exchanger{TokenURL: as.URL + "/token", ClientID: "gw", ClientSecret: "gw-secret", Audience: "urn:upstream:x"}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	power := connectAs(t, url, as.Token(url, "alice", "read", "write"))
	plugin := connectAs(t, url, as.Token(url, "alice", "read"))
	want := map[*mcp.ClientSession]string{power: "Bearer xchg.alice.urn:upstream:x.read+write", plugin: "Bearer xchg.alice.urn:upstream:x.read"}
	check := func(cs *mcp.ClientSession) {
		if got, err := call(ctx, cs, "x__whoami", map[string]any{}); err != nil || got != want[cs] {
			t.Errorf("upstream got %q (%v); want %q", got, err, want[cs])
		}
	}
	check(power)
	check(plugin)
	var wg sync.WaitGroup
	for range 8 {
		for _, cs := range []*mcp.ClientSession{power, plugin} {
			wg.Go(func() { check(cs) })
		}
	}
	wg.Wait()
	if n := exch.sessions.tokensPerSession(); n != 1 {
		t.Errorf("an upstream session carried %d clients' tokens; want 1", n)
	}
}
