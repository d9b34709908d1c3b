package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// resources/subscribe goes to the owning server; its
// notifications/resources/updated reach the subscribed downstream session
// only; a session that ends releases its subscription upstream. Under
// 2026-07-28, where a client subscribes with subscriptions/listen, the
// gateway's subscription upstream is itself a listen.
func TestSubscriptionsShared(t *testing.T) {
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) { testSubscriptionsShared(t, version) })
	}
}

func testSubscriptionsShared(t *testing.T, version string) {
	var subs, unsubs atomic.Int64
	s := mcp.NewServer(&mcp.Implementation{Name: "watch", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { subs.Add(1); return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { unsubs.Add(1); return nil },
	})
	const uri = "test://watched"
	s.AddResource(&mcp.Resource{Name: "watched", URI: uri}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, Text: "v"}}}, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })

	var gw atomic.Pointer[gateway.Gateway]
	cfg := mcpool.Config{URL: ts.URL, MinSessions: 1, MaxSessions: 1, ProtocolVersion: version}
	cfg.ClientHandlers = gateway.UpstreamHandlers("up", gw.Load)
	p := newPool(t, cfg)
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}})
	gw.Store(g)

	var gotA, gotB atomic.Int64
	a := connect(t, url, version, &mcp.ClientOptions{ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { gotA.Add(1) }})
	b := connect(t, url, version, &mcp.ClientOptions{ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { gotB.Add(1) }})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	eventually(t, "the resource in the gateway's catalog", func() bool {
		res, err := b.ListResources(ctx, nil)
		return err == nil && len(res.Resources) == 1
	})
	if err := a.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
		t.Fatalf("subscribe through the gateway: %v", err)
	}
	if subs.Load() != 1 {
		t.Fatalf("upstream saw %d subscribes, want 1", subs.Load())
	}
	if err := s.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: uri}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the subscriber's notification", func() bool { return gotA.Load() == 1 })
	// b is not subscribed: a round trip after the update, it has none.
	if _, err := b.ListResources(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if gotB.Load() != 0 {
		t.Errorf("a session that did not subscribe got %d notifications", gotB.Load())
	}
	_ = a.Close()
	eventually(t, "the upstream unsubscribe after the subscriber left", func() bool { return unsubs.Load() == 1 })
}

// In isolated mode each downstream session subscribes its own upstream
// session, and an update that one upstream session sends reaches its own
// downstream session only, although both subscribed to the URI.
func TestSubscriptionsIsolatedOwnUpdatesOnly(t *testing.T) {
	const uri = "test://watched"
	var mu sync.Mutex
	var servers []*mcp.Server // one per upstream session
	newServer := func() *mcp.Server {
		s := mcp.NewServer(&mcp.Implementation{Name: "watch", Version: "1"}, &mcp.ServerOptions{
			SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
			UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
		})
		mu.Lock()
		i := len(servers)
		servers = append(servers, s)
		mu.Unlock()
		s.AddResource(&mcp.Resource{Name: "watched", URI: uri}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, Text: "v"}}}, nil
		})
		mcp.AddTool(s, &mcp.Tool{Name: "whoami"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strconv.Itoa(i)}}}, nil, nil
		})
		return s
	}
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return newServer() }, nil))
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range servers {
			for ss := range s.Sessions() {
				_ = ss.Close()
			}
		}
		ts.Close()
	})
	_, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeIsolated, Spares: -1, Config: mcpool.Config{URL: ts.URL}}}})
	var gotA, gotB atomic.Int64
	a := connect(t, url, "2025-11-25", &mcp.ClientOptions{ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { gotA.Add(1) }})
	b := connect(t, url, "2025-11-25", &mcp.ClientOptions{ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { gotB.Add(1) }})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	eventually(t, "the resource in the gateway's catalog", func() bool {
		res, err := a.ListResources(ctx, nil)
		return err == nil && len(res.Resources) == 1
	})
	idx := map[string]int{}
	for name, cs := range map[string]*mcp.ClientSession{"a": a, "b": b} {
		if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
			t.Fatalf("client %s: subscribe through the gateway: %v", name, err)
		}
		got, err := call(ctx, cs, "up__whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		idx[name], _ = strconv.Atoi(got)
	}
	if idx["a"] == idx["b"] {
		t.Fatalf("clients a and b share upstream session %d in isolated mode", idx["a"])
	}
	mu.Lock()
	sa, sb := servers[idx["a"]], servers[idx["b"]]
	mu.Unlock()
	if err := sa.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: uri}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's notification", func() bool { return gotA.Load() == 1 })
	if err := sb.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: uri}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b's notification", func() bool { return gotB.Load() == 1 })
	// A round trip each after both updates: no copy of the other's.
	for _, cs := range []*mcp.ClientSession{a, b} {
		if _, err := cs.ListResources(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if gotA.Load() != 1 || gotB.Load() != 1 {
		t.Errorf("notifications: a got %d, b got %d; want 1 each (its own upstream session's)", gotA.Load(), gotB.Load())
	}
}
