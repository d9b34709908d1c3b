package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool/oauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer sets a fixed Authorization header on every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// TestGoSDKServerSeesIdentity: a go-sdk MCP server behind the middleware
// reads the caller's identity in its tool handler, a session is bound to
// its subject, and a client without a valid token cannot connect.
func TestGoSDKServerSeesIdentity(t *testing.T) {
	t.Parallel()
	key := newECKey(t, "k")
	as := newAuthServer(t, key)
	rs, _ := newRS(t, as, nil)

	server := mcp.NewServer(&mcp.Implementation{Name: "whoami", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		id, ok := oauth.IdentityFromRequest(req)
		if !ok {
			return nil, nil, errors.New("no identity")
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: id.Subject + " via " + id.ClientID}}}, nil, nil
	})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	srv := httptest.NewServer(rs.Middleware(handler))
	defer srv.Close()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	connect := func(token string) (*mcp.ClientSession, error) {
		c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
		return c.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint:   srv.URL,
			HTTPClient: &http.Client{Transport: bearer{token, tr}},
		}, nil)
	}
	aliceTok := key.sign(t, as.claims())
	cs, err := connect(aliceTok)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.IsError {
		t.Fatalf("%v %+v", err, res)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "alice via test-app" {
		t.Errorf("tool saw %q", got)
	}

	// Bob, with a valid token of his own, cannot use Alice's session.
	bobClaims := as.claims()
	bobClaims["sub"] = "bob"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{}}`))
	req.Header.Set("Authorization", "Bearer "+key.sign(t, bobClaims))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", cs.ID())
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("another subject on alice's session: HTTP %d, want 403", resp.StatusCode)
	}

	expired := as.claims()
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	if _, err := connect(key.sign(t, expired)); err == nil {
		t.Error("connected with an expired token")
	}
}

// TestNoPassthroughThroughAGatewayChain: a go-sdk server behind the
// middleware calls an upstream go-sdk server per subject through the
// exchanger's transport; the upstream receives only tokens exchanged for
// it, per subject, never the token the client sent.
func TestNoPassthroughThroughAGatewayChain(t *testing.T) {
	t.Parallel()
	key := newECKey(t, "k")
	as := newAuthServer(t, key)
	rs, _ := newRS(t, as, nil)
	e := &exchangeEndpoint{t: t, expires: 3600}
	as.setToken(e.serve)
	x := &oauth.Exchanger{TokenURL: as.URL + "/token", ClientID: "gateway", ClientSecret: exchangeSecret,
		Audience: "https://upstream.example/mcp", Scopes: []string{"repo", "read:org"}}

	// The upstream records every Authorization header it receives.
	var mu sync.Mutex
	seen := map[string]int{}
	upstream := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	mcp.AddTool(upstream, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: req.Extra.Header.Get("Authorization")}}}, nil, nil
	})
	upHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return upstream }, nil)
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
		upHandler.ServeHTTP(w, r)
	}))
	defer upSrv.Close()

	upTr := &http.Transport{}
	defer upTr.CloseIdleConnections()
	var sessMu sync.Mutex
	sessions := map[string]*mcp.ClientSession{}
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	gateway := mcp.NewServer(&mcp.Implementation{Name: "gateway", Version: "1"}, nil)
	mcp.AddTool(gateway, &mcp.Tool{Name: "relay"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		id, ok := oauth.IdentityFromRequest(req)
		if !ok {
			return nil, nil, errors.New("no identity")
		}
		ctx = oauth.WithIdentity(ctx, id)
		sessMu.Lock()
		defer sessMu.Unlock()
		cs := sessions[id.Subject]
		if cs == nil { // one upstream session per subject
			c := mcp.NewClient(&mcp.Implementation{Name: "gw", Version: "1"}, nil)
			var err error
			cs, err = c.Connect(oauth.WithIdentity(context.Background(), id), &mcp.StreamableClientTransport{
				Endpoint: upSrv.URL, HTTPClient: &http.Client{Transport: x.Transport(upTr)}}, nil)
			if err != nil {
				return nil, nil, err
			}
			sessions[id.Subject] = cs
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo"})
		return res, nil, err
	})
	gwHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return gateway }, nil)
	gwSrv := httptest.NewServer(rs.Middleware(gwHandler))
	defer gwSrv.Close()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var clientTokens []string
	for _, sub := range []string{"alice", "bob"} {
		c := as.claims()
		c["sub"] = sub
		tok := key.sign(t, c)
		clientTokens = append(clientTokens, tok)
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, nil).Connect(ctx,
			&mcp.StreamableClientTransport{Endpoint: gwSrv.URL, HTTPClient: &http.Client{Transport: bearer{tok, tr}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "relay"})
			if err != nil || res.IsError {
				t.Fatalf("%s: %v %+v", sub, err, res)
			}
			if got, want := res.Content[0].(*mcp.TextContent).Text, "Bearer up-"+sub+"-1"; got != want {
				t.Errorf("%s: upstream saw %q, want %q", sub, got, want)
			}
		}
		cs.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	for h := range seen {
		for _, tok := range clientTokens {
			if strings.Contains(h, tok) {
				t.Fatalf("the client's token reached the upstream")
			}
		}
		if h != "Bearer up-alice-1" && h != "Bearer up-bob-1" {
			t.Errorf("upstream saw Authorization %q", h)
		}
	}
	if e.issued.Load() != 2 {
		t.Errorf("%d exchanges for two subjects", e.issued.Load())
	}
}
