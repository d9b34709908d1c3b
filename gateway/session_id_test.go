package gateway_test

import (
	"context"
	"encoding/base64"
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

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/redistest"
	"github.com/mcpool/mcpool/redisstore"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// balancer is a round-robin load balancer with no stickiness, as an
// http.RoundTripper: requests go to the replicas in turn, except GETs (the
// standalone stream), which go to getURL when it is set.
type balancer struct {
	replicas []string // base URLs
	next     atomic.Int64
	getURL   string
	header   http.Header
	gets     atomic.Pointer[string] // overrides getURL
	streams  sync.Map               // base URL -> *atomic.Int64: GET streams opened (200)

	mu   sync.Mutex
	open []io.Closer // GET streams' bodies, for cut
}

// cut breaks the GET streams open through the balancer, as a replica dying
// under them would.
func (b *balancer) cut() {
	b.mu.Lock()
	open := b.open
	b.open = nil
	b.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// streamsTo counts the GET streams opened on the replica at base.
func (b *balancer) streamsTo(base string) int64 {
	n, _ := b.streams.LoadOrStore(base, new(atomic.Int64))
	return n.(*atomic.Int64).Load()
}

func (b *balancer) RoundTrip(r *http.Request) (*http.Response, error) {
	to := b.replicas[int(b.next.Add(1)-1)%len(b.replicas)]
	if r.Method == http.MethodGet && b.getURL != "" {
		to = b.getURL
	}
	if g := b.gets.Load(); r.Method == http.MethodGet && g != nil {
		to = *g
	}
	u, _ := url.Parse(to)
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, ""
	for k, v := range b.header {
		r.Header[k] = v
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
		// The server attaches the stream before it answers.
		n, _ := b.streams.LoadOrStore(to, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		b.mu.Lock()
		b.open = append(b.open, resp.Body)
		b.mu.Unlock()
	}
	return resp, err
}

// portableReplicas starts n gateways sharing a session key, each with its
// own pool of upstream (mode shared) and, when isolated is set, an isolated
// server "iso" too.
func portableReplicas(t *testing.T, n int, upstream, isolated string) []string {
	t.Helper()
	urls, _ := portableGateways(t, n, upstream, isolated)
	return urls
}

func portableGateways(t *testing.T, n int, upstream, isolated string) ([]string, []*gateway.Gateway) {
	t.Helper()
	var urls []string
	var gws []*gateway.Gateway
	for range n {
		var gw atomic.Pointer[gateway.Gateway]
		p := newPool(t, mcpool.Config{URL: upstream, OnListChanged: func(kind string) {
			if g := gw.Load(); g != nil {
				g.ListChanged("up", kind)
			}
		}})
		servers := []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}
		if isolated != "" {
			servers = append(servers, gateway.Server{Name: "iso", Mode: gateway.ModeIsolated, Config: mcpool.Config{URL: isolated}, Spares: -1})
		}
		g, u := startGateway(t, gateway.Options{
			Servers:     servers,
			SessionKeys: [][]byte{[]byte("a key of 32 bytes for the tests!")},
			CatalogPoll: 50 * time.Millisecond,
		})
		gw.Store(g)
		urls = append(urls, strings.TrimSuffix(u, "/mcp"))
		gws = append(gws, g)
	}
	return urls, gws
}

// echoUpstream is an upstream server with an echo tool; add registers
// another tool, which sends list_changed to its sessions.
func echoUpstream(t *testing.T) (url string, add func(name string)) {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	echo := func(ctx context.Context, req *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text}}}, nil, nil
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, echo)
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	return ts.URL, func(name string) { mcp.AddTool(s, &mcp.Tool{Name: name}, echo) }
}

// balancedClient connects a 2025-11-25 session through b, a test balancer
// over replicas.
func balancedClient(t *testing.T, b http.RoundTripper, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "downstream", Version: "1"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: "http://balancer/mcp", HTTPClient: &http.Client{Transport: b}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect through the balancer: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// A 2025-11-25 session behind a round-robin balancer over three replicas:
// every request after initialize lands on a replica that did not create the
// session, which adopts it from its id.
func TestPortableSessionsAnyReplicaServes(t *testing.T) {
	up, _ := echoUpstream(t)
	b := &balancer{replicas: portableReplicas(t, 3, up, "")}
	cs := balancedClient(t, b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 30 {
		got, err := call(ctx, cs, "up__echo", map[string]any{"text": fmt.Sprint(i)})
		if err != nil || got != fmt.Sprint(i) {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
	}
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("tools/list: %v", err)
	}
}

// rawPost sends a tools/list on session id to url with auth (may be empty)
// and returns the status.
func rawPost(t *testing.T, url, id, authz string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Mcp-Session-Id", id)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Session ids never stand in for credentials, and only the deployment's
// own ids open sessions: forged and tampered ids get 404 (the client starts
// a new session), an id sent with another caller's credential 403.
func TestPortableSessionsRefuseForgedIDsAndOtherCallers(t *testing.T) {
	up, _ := echoUpstream(t)
	urls := portableReplicas(t, 2, up, "")
	b := &balancer{replicas: urls[:1], header: http.Header{"Authorization": {"Bearer alice"}}}
	cs := balancedClient(t, b, nil)
	id := cs.ID()
	if id == "" {
		t.Fatal("no session id")
	}
	// The other replica adopts it, for its owner only.
	if got := rawPost(t, urls[1], id, "Bearer alice"); got != http.StatusOK {
		t.Fatalf("owner on another replica: %d, want 200", got)
	}
	for i, u := range urls {
		if got := rawPost(t, u, id, "Bearer mallory"); got != http.StatusForbidden {
			t.Errorf("replica %d, another caller's credential: %d, want 403", i, got)
		}
		if got := rawPost(t, u, id, ""); got != http.StatusForbidden {
			t.Errorf("replica %d, no credential: %d, want 403", i, got)
		}
	}
	raw, _ := base64.RawURLEncoding.DecodeString(id)
	raw[len(raw)/2] ^= 1
	tampered := base64.RawURLEncoding.EncodeToString(raw)
	forged := base64.RawURLEncoding.EncodeToString(append([]byte{1}, make([]byte, 80)...))
	for name, bad := range map[string]string{"tampered": tampered, "forged": forged, "random": "0123456789"} {
		for i, u := range urls {
			if got := rawPost(t, u, bad, "Bearer alice"); got != http.StatusNotFound {
				t.Errorf("%s id on replica %d: %d, want 404", name, i, got)
			}
		}
	}
}

// list_changed from the upstream reaches a session whose GET stream is on a
// replica other than the one that created it and the ones its calls use.
func TestPortableSessionsListChangedReachesTheStreamsReplica(t *testing.T) {
	up, add := echoUpstream(t)
	urls := portableReplicas(t, 3, up, "")
	b := &balancer{replicas: urls[:2], getURL: urls[2]}
	var changed atomic.Int64
	cs := balancedClient(t, b, &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
		changed.Add(1)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := call(ctx, cs, "up__echo", map[string]any{"text": "x"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the GET stream on the third replica", func() bool { return b.streamsTo(urls[2]) > 0 })
	add("added")
	eventually(t, "list_changed on the session's GET stream", func() bool { return changed.Load() > 0 })
	// Each replica refreshes its catalog when it hears of the change: a
	// list on another replica may precede that by a moment.
	eventually(t, "the new tool listed", func() bool {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tl := range res.Tools {
			if tl.Name == "up__added" {
				return true
			}
		}
		return false
	})
}

// An isolated server that is not streamable HTTP (stdio, or here an
// in-process transport) keeps its upstream session on the replica that
// created the downstream session: elsewhere, the call gets
// CodeSessionLost, which tells the client to start a new session. (An HTTP
// server's upstream session travels in the id: resume_test.go.)
func TestPortableSessionsIsolatedStateLostElsewhere(t *testing.T) {
	s := newGate().server()
	urls := resumeReplicas(t, 2, mcpool.Config{NewTransport: func(ctx context.Context) (mcp.Transport, error) {
		ct, st := mcp.NewInMemoryTransports()
		if _, err := s.Connect(ctx, st, nil); err != nil {
			return nil, err
		}
		return ct, nil
	}}, -1)
	home := &balancer{replicas: urls[:1]}
	cs := balancedClient(t, home, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := call(ctx, cs, "iso__set", map[string]any{"value": "v"}); err != nil {
		t.Fatalf("isolated call on the session's own replica: %v", err)
	}
	// The same session through the other replica.
	other := &balancer{replicas: urls[1:]}
	req, _ := http.NewRequest(http.MethodPost, urls[1]+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"iso__get","arguments":{}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Mcp-Session-Id", cs.ID())
	resp, err := other.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err != nil || strings.Contains(body.String(), `"id":7`) {
			break
		}
	}
	if !strings.Contains(body.String(), fmt.Sprint(gateway.CodeSessionLost)) || !strings.Contains(body.String(), "start a new session") {
		t.Fatalf("isolated call on another replica answered %d %s; want CodeSessionLost", resp.StatusCode, body.String())
	}
	if got, err := call(ctx, cs, "iso__get", nil); err != nil || got != "value=v" {
		t.Fatalf("back on its own replica: %q, %v", got, err)
	}
}

// A passthrough server's list_changed is heard only by the replica holding
// the caller's upstream session; through Redis it reaches the session's GET
// stream on a replica that never dialled that server for the caller.
func TestPortableSessionsListChangedRelayedThroughRedis(t *testing.T) {
	rs := redistest.Start(t)
	up, add := echoUpstream(t)
	var urls []string
	for range 2 {
		store, err := redisstore.New(redisstore.Options{URL: rs.URL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		_, u := startGateway(t, gateway.Options{
			Servers: []gateway.Server{{Name: "p", Mode: gateway.ModePassthrough, ForwardHeaders: []string{"X-Upstream-Key"},
				Config: mcpool.Config{URL: up, CatalogStore: store, CatalogKey: "server:p"}}},
			SessionKeys: [][]byte{[]byte("a key of 32 bytes for the tests!")},
		})
		urls = append(urls, strings.TrimSuffix(u, "/mcp"))
	}
	var changed atomic.Int64
	b := &balancer{replicas: urls[:1], getURL: urls[1], header: http.Header{"X-Upstream-Key": {"alice"}}}
	cs := balancedClient(t, b, &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
		changed.Add(1)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, err := call(ctx, cs, "p__echo", map[string]any{"text": "x"}); err != nil || got != "x" {
		t.Fatalf("passthrough call: %q, %v", got, err)
	}
	eventually(t, "the GET stream on the second replica", func() bool { return b.streamsTo(urls[1]) > 0 })
	add("added")
	eventually(t, "list_changed relayed to the replica holding the GET stream", func() bool { return changed.Load() > 0 })
}

// A draining replica stops the GET streams it holds with a retry hint: the
// client reconnects, through the balancer, to another replica, which
// adopts the session; notifications reach it there.
func TestPortableSessionsDrainMovesTheStream(t *testing.T) {
	up, add := echoUpstream(t)
	urls, gws := portableGateways(t, 2, up, "")
	b := &balancer{replicas: urls[1:], getURL: urls[0]}
	var changed atomic.Int64
	cs := balancedClient(t, b, &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
		changed.Add(1)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually(t, "the GET stream on the first replica", func() bool { return b.streamsTo(urls[0]) > 0 })
	b.gets.Store(&urls[1]) // the balancer sees the first replica leave
	if err := gws[0].Drain(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the GET stream moved to the other replica", func() bool { return b.streamsTo(urls[1]) > 0 })
	add("after-drain")
	eventually(t, "list_changed after the drain", func() bool { return changed.Load() > 0 })
	if got, err := call(ctx, cs, "up__echo", map[string]any{"text": "still here"}); err != nil || got != "still here" {
		t.Fatalf("call after the drain: %q, %v", got, err)
	}
}

// A deleted session's id gets 404 afterwards: on the replica that took the
// DELETE and, through Redis, on the replicas that had adopted it.
func TestPortableSessionsDeletedEverywhere(t *testing.T) {
	rs := redistest.Start(t)
	up, _ := echoUpstream(t)
	var urls []string
	for range 2 {
		store, err := redisstore.New(redisstore.Options{URL: rs.URL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		p := newPool(t, mcpool.Config{URL: up, CatalogStore: store, CatalogKey: "server:up"})
		_, u := startGateway(t, gateway.Options{
			// As the command configures it: the servers' pools share the
			// store, which the gateway uses too.
			Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p),
				Config: mcpool.Config{URL: up, CatalogStore: store, CatalogKey: "server:up"}}},
			SessionKeys: [][]byte{[]byte("a key of 32 bytes for the tests!")},
		})
		urls = append(urls, strings.TrimSuffix(u, "/mcp"))
	}
	b := &balancer{replicas: urls}
	cs := balancedClient(t, b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 4 { // both replicas hold the session
		if _, err := call(ctx, cs, "up__echo", map[string]any{"text": "x"}); err != nil {
			t.Fatal(err)
		}
	}
	id := cs.ID()
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	for i, u := range urls {
		eventually(t, fmt.Sprintf("404 on replica %d after DELETE", i), func() bool { return rawPost(t, u, id, "") == http.StatusNotFound })
	}
}

// A session's GET stream broken seven times over (replicas dying under it)
// reconnects every time: each stream opens with a fresh event id, which the
// client counts as progress (the go-sdk client gives up after five
// reconnections without progress).
func TestPortableSessionsOutliveManyBrokenStreams(t *testing.T) {
	up, add := echoUpstream(t)
	urls := portableReplicas(t, 2, up, "")
	b := &balancer{replicas: urls}
	var changed atomic.Int64
	cs := balancedClient(t, b, &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
		changed.Add(1)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opened := func() int64 { return b.streamsTo(urls[0]) + b.streamsTo(urls[1]) }
	for i := range 7 {
		eventually(t, fmt.Sprintf("GET stream %d", i+1), func() bool { return opened() > int64(i) })
		b.cut()
	}
	eventually(t, "GET stream 8", func() bool { return opened() > 7 })
	add("added")
	eventually(t, "list_changed after seven broken streams", func() bool { return changed.Load() > 0 })
	if got, err := call(ctx, cs, "up__echo", map[string]any{"text": "ok"}); err != nil || got != "ok" {
		t.Fatalf("call after seven broken streams: %q, %v", got, err)
	}
}
