package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// resources/subscribe goes to the owning server; its
// notifications/resources/updated reach the subscribed downstream session
// only; a session that ends releases its subscription upstream.
func TestSubscriptionsShared(t *testing.T) {
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
	cfg := mcpool.Config{URL: ts.URL, MinSessions: 1, MaxSessions: 1}
	cfg.ClientHandlers = gateway.UpstreamHandlers("up", gw.Load)
	p := newPool(t, cfg)
	g, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}})
	gw.Store(g)

	var gotA, gotB atomic.Int64
	a := connect(t, url, "2025-11-25", &mcp.ClientOptions{ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { gotA.Add(1) }})
	b := connect(t, url, "2025-11-25", &mcp.ClientOptions{ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { gotB.Add(1) }})
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
