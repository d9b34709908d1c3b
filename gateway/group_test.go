package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/mcpool/mcpool/gateway"
)

// A Group's servers through the gateway: calls to a server with two
// replicas are balanced by the Group, and the status shows each replica.
func TestGroupServersWithReplicas(t *testing.T) {
	gc := &mcpool.GroupConfig{Logger: quiet(), Servers: []mcpool.ServerConfig{
		{Name: "demo", Replicas: []mcpool.Config{{URL: demoURL(t)}, {URL: demoURL(t)}}},
		{Name: "kv", Config: mcpool.Config{URL: newGate().url(t)}},
	}}
	group, err := mcpool.NewGroup(*gc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = group.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := group.Start(ctx); err != nil {
		t.Fatal(err)
	}
	gw, url := startGateway(t, gateway.Options{Servers: gateway.GroupServers(group, gc, map[string]config.GatewayServer{
		"demo": {Mode: config.ModeShared},
	})})
	cs := connect(t, url, "", nil)
	for i := range 40 {
		if got, err := call(ctx, cs, "demo__echo", map[string]any{"message": "m"}); err != nil || got != "m" {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
	}
	// kv is isolated by default: a 2026-07-28 client has no session, so
	// each request has its own upstream session and sees no state.
	if _, err := call(ctx, cs, "kv__set", map[string]any{"value": "v"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := call(ctx, cs, "kv__get", map[string]any{}); got != "value=" {
		t.Errorf("stateless request saw %q", got)
	}
	st := gw.Status().Servers[0]
	if len(st.Replicas) != 2 || st.TotalCalls != 40 || st.Mode != gateway.ModeShared {
		t.Fatalf("status of demo: %d replicas, %d calls, mode %s; want 2, 40, shared", len(st.Replicas), st.TotalCalls, st.Mode)
	}
	for _, r := range st.Replicas {
		if !strings.HasPrefix(r.Name, "http://127.0.0.1:") || r.Sessions == 0 {
			t.Errorf("replica row %+v: want its URL and its sessions", r)
		}
	}
	if m := gw.Status().Servers[1].Mode; m != gateway.ModeIsolated {
		t.Errorf("kv mode %s, want isolated (the default)", m)
	}
}
