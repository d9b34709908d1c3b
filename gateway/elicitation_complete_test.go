package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// urlServer is an upstream whose "url" tool asks for a URL-mode
// elicitation with id "id-TAG" and whose "required" tool fails with
// URLElicitationRequired for id "req-TAG"; sessions[tag] is the upstream
// session that served the tag, to send the completion on later.
type urlServer struct {
	mu       sync.Mutex
	sessions map[string]*mcp.ServerSession
}

func (u *urlServer) url(t *testing.T) string {
	t.Helper()
	u.sessions = map[string]*mcp.ServerSession{}
	s := mcp.NewServer(&mcp.Implementation{Name: "url", Version: "1"}, nil)
	type in struct {
		Tag string `json:"tag"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "url"}, func(ctx context.Context, req *mcp.CallToolRequest, in in) (*mcp.CallToolResult, any, error) {
		u.mu.Lock()
		u.sessions[in.Tag] = req.Session
		u.mu.Unlock()
		r, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Mode: "url", Message: "sign in", URL: "https://example.test/" + in.Tag, ElicitationID: "id-" + in.Tag})
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: r.Action}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "now"}, func(ctx context.Context, req *mcp.CallToolRequest, in in) (*mcp.CallToolResult, any, error) {
		// Completed before the call ends, on the call's stream.
		r, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Mode: "url", Message: "sign in", URL: "https://example.test/" + in.Tag, ElicitationID: "now-" + in.Tag})
		if err != nil {
			return nil, nil, err
		}
		if err := req.Session.NotifyElicitationComplete(ctx, &mcp.ElicitationCompleteParams{ElicitationID: "now-" + in.Tag}); err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: r.Action}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "required"}, func(ctx context.Context, req *mcp.CallToolRequest, in in) (*mcp.CallToolResult, any, error) {
		u.mu.Lock()
		u.sessions[in.Tag] = req.Session
		u.mu.Unlock()
		return nil, nil, mcp.URLElicitationRequiredError([]*mcp.ElicitParams{{Mode: "url", Message: "sign in", URL: "https://example.test/" + in.Tag, ElicitationID: "req-" + in.Tag}})
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	return ts.URL
}

// complete sends the completion of id on the session that served tag,
// outside any call.
func (u *urlServer) complete(t *testing.T, tag, id string) {
	t.Helper()
	u.mu.Lock()
	ss := u.sessions[tag]
	u.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ss.NotifyElicitationComplete(ctx, &mcp.ElicitationCompleteParams{ElicitationID: id}); err != nil {
		t.Fatalf("upstream NotifyElicitationComplete: %v", err)
	}
}

// completions is a downstream client that accepts URL elicitations and
// records the completions it is sent.
type completions struct {
	mu  sync.Mutex
	ids []string
}

func (c *completions) options() *mcp.ClientOptions {
	return &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept"}, nil
		},
		ElicitationCompleteHandler: func(_ context.Context, req *mcp.ElicitationCompleteNotificationRequest) {
			c.mu.Lock()
			c.ids = append(c.ids, req.Params.ElicitationID)
			c.mu.Unlock()
		},
	}
}

func (c *completions) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

// notifications/elicitation/complete reaches the client that was given
// the URL elicitation (by elicitation/create, or by a
// URLElicitationRequired error), after its call has ended, through one
// shared upstream session carrying two clients; never the other client.
func TestElicitationCompleteShared(t *testing.T) {
	var up urlServer
	var gw atomic.Pointer[gateway.Gateway]
	cfg := mcpool.Config{URL: up.url(t), MinSessions: 1, MaxSessions: 1, Logger: quiet()}
	cfg.ClientHandlers = gateway.UpstreamHandlers("up", gw.Load)
	cfg.HTTPClient = gateway.RelayHTTPClient(nil, 8)
	p := newPool(t, cfg)
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}})
	gw.Store(g)
	var ca, cb completions
	a := connect(t, url, "2025-11-25", ca.options())
	b := connect(t, url, "2025-11-25", cb.options())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		cs  *mcp.ClientSession
		tag string
	}{{a, "a"}, {b, "b"}} {
		if got, err := call(ctx, c.cs, "up__url", map[string]any{"tag": c.tag}); err != nil || got != "accept" {
			t.Fatalf("client %s: %q, %v", c.tag, got, err)
		}
		_, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "up__required", Arguments: map[string]any{"tag": c.tag}})
		if rpcCode(err) != mcp.CodeURLElicitationRequired {
			t.Fatalf("client %s: URLElicitationRequired came through as %v", c.tag, err)
		}
	}
	up.complete(t, "b", "id-b")
	up.complete(t, "a", "req-a")
	up.complete(t, "a", "id-a")
	up.complete(t, "b", "req-b")
	eventually(t, "both clients' completions", func() bool { return len(ca.got()) == 2 && len(cb.got()) == 2 })
	if got := ca.got(); !slices.Equal(got, []string{"req-a", "id-a"}) {
		t.Errorf("client a got completions %q, want [req-a id-a]", got)
	}
	if got := cb.got(); !slices.Equal(got, []string{"id-b", "req-b"}) {
		t.Errorf("client b got completions %q, want [id-b req-b]", got)
	}
	// Completed while the call is in flight: on its way, to its client.
	var wg sync.WaitGroup
	for _, c := range []struct {
		cs  *mcp.ClientSession
		tag string
	}{{a, "a"}, {b, "b"}} {
		wg.Go(func() {
			if got, err := call(ctx, c.cs, "up__now", map[string]any{"tag": c.tag}); err != nil || got != "accept" {
				t.Errorf("client %s: %q, %v", c.tag, got, err)
			}
		})
	}
	wg.Wait()
	eventually(t, "the in-call completions", func() bool { return len(ca.got()) == 3 && len(cb.got()) == 3 })
	if ga, gb := ca.got(), cb.got(); ga[2] != "now-a" || gb[2] != "now-b" {
		t.Errorf("in-call completions: a got %q, b got %q", ga[2], gb[2])
	}
	// A completion no client was given goes to no one: a round trip
	// later, each still has its two.
	up.complete(t, "a", "id-unknown")
	if _, err := a.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if len(ca.got()) != 3 || len(cb.got()) != 3 {
		t.Errorf("an unplaceable completion reached a client: a %q, b %q", ca.got(), cb.got())
	}
}

// In isolated mode a completion the gateway cannot relate to an
// elicitation still reaches the downstream session of the upstream session
// that sent it, and no other.
func TestElicitationCompleteIsolated(t *testing.T) {
	var up urlServer
	_, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeIsolated, Spares: -1, Config: mcpool.Config{URL: up.url(t)}}}})
	var ca, cb completions
	a := connect(t, url, "2025-11-25", ca.options())
	b := connect(t, url, "2025-11-25", cb.options())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		cs  *mcp.ClientSession
		tag string
	}{{a, "a"}, {b, "b"}} {
		if got, err := call(ctx, c.cs, "up__url", map[string]any{"tag": c.tag}); err != nil || got != "accept" {
			t.Fatalf("client %s: %q, %v", c.tag, got, err)
		}
	}
	up.complete(t, "a", "id-a")
	up.complete(t, "b", "elsewhere-b") // not an elicitation the gateway relayed
	eventually(t, "both clients' completions", func() bool { return len(ca.got()) == 1 && len(cb.got()) == 1 })
	if got := ca.got(); got[0] != "id-a" {
		t.Errorf("client a got %q, want [id-a]", got)
	}
	if got := cb.got(); got[0] != "elsewhere-b" {
		t.Errorf("client b got %q, want [elsewhere-b]", got)
	}
}
