package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
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
