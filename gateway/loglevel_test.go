package gateway_test

import (
	"context"
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
	"github.com/mcpool/mcpool/internal/redistest"
	"github.com/mcpool/mcpool/redisstore"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A client's logging/setLevel, taken by one replica, reaches the session's
// copies on the others through Redis: one that held a copy already, and
// one that adopts the session afterwards. Each then relays the upstream's
// log messages at or above the level, and only those.
func TestPortableLogLevelTravels(t *testing.T) {
	rs := redistest.Start(t)
	s := mcp.NewServer(&mcp.Implementation{Name: "logs", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "log"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "debug", Data: "below"})
		_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "warning", Data: "above"})
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(func() { closePeer(s, ts) })
	var urls []string
	for range 3 {
		store, err := redisstore.New(redisstore.Options{URL: rs.URL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		var gw atomic.Pointer[gateway.Gateway]
		cfg := mcpool.Config{URL: ts.URL, ProtocolVersion: "2026-07-28", CatalogStore: store, CatalogKey: "server:up"}
		cfg.ClientHandlers = gateway.UpstreamHandlers("up", gw.Load)
		cfg.HTTPClient = gateway.RelayHTTPClient(nil, 8)
		p := newPool(t, cfg)
		g, u := startGateway(t, gateway.Options{
			Servers:     []gateway.Server{{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p), Config: cfg}},
			SessionKeys: [][]byte{[]byte("a key of 32 bytes for the tests!")},
		})
		gw.Store(g)
		urls = append(urls, strings.TrimSuffix(u, "/mcp"))
	}
	var mu sync.Mutex
	var got []string
	logs := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
	b := newRotation(urls[0])
	c := mcp.NewClient(&mcp.Implementation{Name: "downstream", Version: "1"}, &mcp.ClientOptions{LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) {
		mu.Lock()
		got = append(got, fmt.Sprint(req.Params.Data))
		mu.Unlock()
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: "http://balancer/mcp", HTTPClient: &http.Client{Transport: b}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	// The second replica holds a copy before the level is set.
	if code := rawPost(t, urls[1], cs.ID(), ""); code != http.StatusOK {
		t.Fatalf("the session on the second replica: %d", code)
	}
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	b.set(urls[1])
	eventually(t, "the level on the second replica's copy", func() bool {
		if _, err := call(ctx, cs, "up__log", nil); err != nil {
			t.Fatal(err)
		}
		return len(logs()) > 0
	})
	// The third adopts the session now.
	b.set(urls[2])
	before := len(logs())
	if _, err := call(ctx, cs, "up__log", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a log on the third replica", func() bool { return len(logs()) > before })
	for _, l := range logs() {
		if l != "above" {
			t.Fatalf("logs %q: want only those at or above the level set (above)", logs())
		}
	}
}
