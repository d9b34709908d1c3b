package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// askServer is an upstream whose tools ask the client: "ask" logs, then
// elicits a name and returns it; "sample" asks the client's model.
func askServer(t *testing.T) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "ask", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "ask"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Tag string `json:"tag"`
	}) (*mcp.CallToolResult, any, error) {
		_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "asking " + in.Tag})
		r, err := req.Session.Elicit(ctx, &mcp.ElicitParams{
			Message: "your name?",
			RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{
				"name": map[string]any{"type": "string"},
			}},
		})
		if je := (*jsonrpc.Error)(nil); errors.As(err, &je) {
			return nil, nil, fmt.Errorf("code %d: %w", je.Code, err) // what the client answered, code and all
		}
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s:%v", r.Action, r.Content["name"])}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		r, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10,
			Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}})
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "model=" + r.Model}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	return ts.URL
}

// sharedAskGateway serves askServer in ModeShared through ONE upstream
// session.
func sharedAskGateway(t *testing.T) string {
	t.Helper()
	var gw atomic.Pointer[gateway.Gateway]
	cfg := mcpool.Config{URL: askServer(t), MinSessions: 1, MaxSessions: 1, MaxCallsPerSession: 64, Logger: quiet()}
	cfg.ClientHandlers = gateway.UpstreamHandlers("up", gw.Load)
	cfg.HTTPClient = gateway.RelayHTTPClient(nil, 64)
	p := newPool(t, cfg)
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}})
	gw.Store(g)
	return url
}

// Two clients call at once through one shared upstream session, each
// answering its own elicitation with its own value: each gets its own
// answer back, never the other's.
func TestRelayElicitationTwoClientsSharedSession(t *testing.T) {
	url := sharedAskGateway(t)
	answerer := func(name string) *mcp.ClientOptions {
		return &mcp.ClientOptions{ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": name}}, nil
		}}
	}
	a := connect(t, url, "2025-11-25", answerer("alice"))
	b := connect(t, url, "2025-11-25", answerer("bob"))
	const rounds = 200
	var crossed, failed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range rounds {
		var wg sync.WaitGroup
		for _, c := range []struct {
			cs   *mcp.ClientSession
			want string
		}{{a, "accept:alice"}, {b, "accept:bob"}} {
			wg.Go(func() {
				got, err := call(ctx, c.cs, "up__ask", map[string]any{"tag": fmt.Sprint(i)})
				switch {
				case err != nil:
					failed.Add(1)
					t.Errorf("round %d: %v", i, err)
				case got != c.want:
					crossed.Add(1)
					t.Errorf("round %d: got %q, want %q", i, got, c.want)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			break
		}
	}
	if crossed.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("%d crossed answers, %d failed calls in %d rounds", crossed.Load(), failed.Load(), rounds)
	}
}

// Sampling goes to the caller's client; a client that did not declare
// elicitation gets the upstream's error at once, not a hang; logs reach
// the caller only, at the level it set.
func TestRelaySamplingCapabilityAndLogs(t *testing.T) {
	url := sharedAskGateway(t)
	var logsA, logsB atomic.Int64
	a := connect(t, url, "2025-11-25", &mcp.ClientOptions{
		CreateMessageHandler: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "model-a", Role: "assistant", Content: &mcp.TextContent{Text: "hello"}}, nil
		},
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
		LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) { logsA.Add(1) },
	})
	b := connect(t, url, "2025-11-25", &mcp.ClientOptions{
		LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) { logsB.Add(1) },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cs := range []*mcp.ClientSession{a, b} {
		if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatalf("logging/setLevel through the gateway: %v", err)
		}
	}
	if got, err := call(ctx, a, "up__sample", nil); err != nil || got != "model=model-a" {
		t.Fatalf("sampling through the gateway: %q, %v", got, err)
	}
	if got, err := call(ctx, a, "up__ask", map[string]any{"tag": "x"}); err != nil || got != "decline:<nil>" {
		t.Fatalf("declined elicitation through the gateway: %q, %v", got, err)
	}
	eventually(t, "a's log message", func() bool { return logsA.Load() == 1 })
	start := time.Now()
	_, err := call(ctx, b, "up__ask", map[string]any{"tag": "y"})
	if err == nil || !strings.Contains(err.Error(), "elicitation") || !strings.Contains(err.Error(), "code -32601") {
		t.Fatalf("elicitation for a client without the capability: %v, want method not found (-32601) naming elicitation", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refusal took %v", d)
	}
	eventually(t, "b's log message", func() bool { return logsB.Load() == 1 })
	if logsA.Load() != 1 {
		t.Errorf("client a got %d log messages, want its own 1", logsA.Load())
	}
}

// server-everything over stdio in ModeIsolated: it samples and elicits
// while serving a call, and logs on its own (session-level logs): each
// reaches the go-sdk client downstream, whose answers go back upstream.
func TestRelayEverythingStdioIsolated(t *testing.T) {
	_, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "everything", Mode: gateway.ModeIsolated, Spares: -1,
		Config: mcpool.Config{Command: everythingStdio(t)}}}})
	var logs atomic.Int64
	cs := connect(t, url, "2025-11-25", &mcp.ClientOptions{
		CreateMessageHandler: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "relay-model", Role: "assistant", Content: &mcp.TextContent{Text: "sampled"}}, nil
		},
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada Lovelace", "check": true}}, nil
		},
		LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) { logs.Add(1) },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatalf("logging/setLevel: %v", err)
	}
	got, err := call(ctx, cs, "everything__trigger-sampling-request", map[string]any{"prompt": "hi", "maxTokens": 5})
	if err != nil || !strings.Contains(got, "relay-model") {
		t.Fatalf("sampling through the gateway: %q, %v", got, err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything__trigger-elicitation-request"})
	if err != nil {
		t.Fatalf("elicitation through the gateway: %v", err)
	}
	var all strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			all.WriteString(tc.Text)
		}
	}
	if !strings.Contains(all.String(), "Ada Lovelace") {
		t.Fatalf("elicitation through the gateway: the answer is not in the result: %s", all.String())
	}
	if _, err := call(ctx, cs, "everything__toggle-simulated-logging", nil); err != nil {
		t.Fatalf("toggle-simulated-logging: %v", err)
	}
	eventually(t, "a session-level log message from the isolated upstream session", func() bool { return logs.Load() > 0 })
}

// Under 2026-07-28 a request carries Mcp-Method and Mcp-Name headers that
// must match its body (SEP-2243): toward the upstream they name the
// server's own tool, not the gateway's name for it.
func TestUpstreamHeadersMatchRenamedBody(t *testing.T) {
	s := newGate().server()
	var mu sync.Mutex
	var names []string
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Mcp-Method") == "tools/call" {
			mu.Lock()
			names = append(names, r.Header.Get("Mcp-Name"))
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closePeer(s, ts) })
	p := newPool(t, mcpool.Config{URL: ts.URL, ProtocolVersion: "2026-07-28"})
	_, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}})
	cs := connect(t, url, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := call(ctx, cs, "up__get", nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 1 || names[0] != "get" {
		t.Fatalf("Mcp-Name toward the upstream: %q, want [\"get\"]", names)
	}
}

// In isolated mode the upstream session declares to its server only the
// capabilities its client declared (spares included: they follow the
// clients served).
func TestIsolatedDeclaresTheClientsCapabilities(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "caps", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "caps"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		c := req.Session.InitializeParams().Capabilities
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("elicitation=%t sampling=%t", c.Elicitation != nil, c.Sampling != nil)}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	_, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeIsolated, Spares: 1, Config: mcpool.Config{URL: ts.URL}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	elicit := &mcp.ClientOptions{ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		return &mcp.ElicitResult{Action: "decline"}, nil
	}}
	for i, c := range []struct {
		opts *mcp.ClientOptions
		want string
	}{{nil, "elicitation=false sampling=false"}, {elicit, "elicitation=true sampling=false"}, {nil, "elicitation=false sampling=false"}} {
		cs := connect(t, url, "2025-11-25", c.opts)
		if got, err := call(ctx, cs, "up__caps", nil); err != nil || got != c.want {
			t.Errorf("client %d: the upstream saw %q, %v; want %q", i, got, err, c.want)
		}
	}
}

// roots/list from an upstream serving a call is answered by the call's
// client, in shared and isolated mode.
func TestRelayRoots(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "roots", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "roots"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		r, err := req.Session.ListRoots(ctx, nil)
		if err != nil {
			return nil, nil, err
		}
		var uris []string
		for _, root := range r.Roots {
			uris = append(uris, root.URI)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Join(uris, ",")}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	var gw atomic.Pointer[gateway.Gateway]
	cfg := mcpool.Config{URL: ts.URL, MaxSessions: 1}
	cfg.ClientHandlers = gateway.UpstreamHandlers("shared", gw.Load)
	cfg.HTTPClient = gateway.RelayHTTPClient(nil, 8)
	p := newPool(t, cfg)
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "shared", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)},
		{Name: "iso", Mode: gateway.ModeIsolated, Spares: -1, Config: mcpool.Config{URL: ts.URL}},
	}})
	gw.Store(g)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, name := range []string{"a", "b"} {
		c := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, nil)
		c.AddRoots(&mcp.Root{URI: "file:///" + name})
		cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.Close() })
		for _, tool := range []string{"shared__roots", "iso__roots"} {
			if got, err := call(ctx, cs, tool, nil); err != nil || got != "file:///"+name {
				t.Errorf("client %s, %s: %q, %v; want its own root", name, tool, got, err)
			}
		}
	}
}

// A 2026-07-28 upstream sends logs only at the level a request's _meta
// asks: the gateway asks for every level, and its client gets those at or
// above the level it set.
func TestRelayLogsFrom2026Upstream(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "logs", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "log"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "debug", Data: "below"})
		_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "warning", Data: "above"})
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(func() { closePeer(s, ts) })
	var gw atomic.Pointer[gateway.Gateway]
	cfg := mcpool.Config{URL: ts.URL, ProtocolVersion: "2026-07-28"}
	cfg.ClientHandlers = gateway.UpstreamHandlers("up", gw.Load)
	cfg.HTTPClient = gateway.RelayHTTPClient(nil, 8)
	p := newPool(t, cfg)
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}})
	gw.Store(g)
	var mu sync.Mutex
	var got []string
	cs := connect(t, url, "2025-11-25", &mcp.ClientOptions{LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) {
		mu.Lock()
		got = append(got, fmt.Sprint(req.Params.Data))
		mu.Unlock()
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	if _, err := call(ctx, cs, "up__log", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the warning", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "above" {
		t.Fatalf("logs %q, want [above]", got)
	}
}

// A downstream client's notifications/roots/list_changed reaches its own
// isolated upstream session, whose server then lists the client's new
// roots; a shared upstream session, which serves every client, is not
// told (it declares roots without listChanged).
func TestRootsListChangedForwarded(t *testing.T) {
	type seen struct {
		mu    sync.Mutex
		lists []string
	}
	rootsServer := func(sn *seen) string {
		s := mcp.NewServer(&mcp.Implementation{Name: "roots", Version: "1"}, &mcp.ServerOptions{
			RootsListChangedHandler: func(ctx context.Context, req *mcp.RootsListChangedRequest) {
				go func() { // not inside the notification's handler
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					r, err := req.Session.ListRoots(ctx, nil)
					var uris []string
					if err != nil {
						uris = []string{"error: " + err.Error()}
					} else {
						for _, root := range r.Roots {
							uris = append(uris, root.URI)
						}
					}
					sn.mu.Lock()
					sn.lists = append(sn.lists, strings.Join(uris, ","))
					sn.mu.Unlock()
				}()
			},
		})
		mcp.AddTool(s, &mcp.Tool{Name: "caps"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			c := req.Session.InitializeParams().Capabilities
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("listChanged=%t", c.RootsV2 != nil && c.RootsV2.ListChanged)}}}, nil, nil
		})
		ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
		t.Cleanup(func() { closePeer(s, ts) })
		return ts.URL
	}
	var iso, shared seen
	var gw atomic.Pointer[gateway.Gateway]
	cfg := mcpool.Config{URL: rootsServer(&shared), MaxSessions: 1}
	cfg.ClientHandlers = gateway.UpstreamHandlers("shared", gw.Load)
	cfg.HTTPClient = gateway.RelayHTTPClient(nil, 8)
	p := newPool(t, cfg)
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "shared", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)},
		{Name: "iso", Mode: gateway.ModeIsolated, Spares: -1, Config: mcpool.Config{URL: rootsServer(&iso)}},
	}})
	gw.Store(g)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "a", Version: "1"}, nil)
	c.AddRoots(&mcp.Root{URI: "file:///a"})
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	for tool, want := range map[string]string{"iso__caps": "listChanged=true", "shared__caps": "listChanged=false"} {
		if got, err := call(ctx, cs, tool, nil); err != nil || got != want {
			t.Errorf("%s: the upstream saw %q, %v; want %q", tool, got, err, want)
		}
	}
	c.AddRoots(&mcp.Root{URI: "file:///b"})
	eventually(t, "the isolated server listing the new roots", func() bool {
		iso.mu.Lock()
		defer iso.mu.Unlock()
		return len(iso.lists) > 0
	})
	iso.mu.Lock()
	if iso.lists[0] != "file:///a,file:///b" {
		t.Errorf("the isolated server listed %q, want the client's new roots", iso.lists[0])
	}
	iso.mu.Unlock()
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if len(shared.lists) != 0 {
		t.Errorf("the shared server was told of one client's roots: %q", shared.lists)
	}
}
