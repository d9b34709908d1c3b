package gateway_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
)

// Unprefixed: a one-server gateway serves the server's own names, and
// routes calls by them; with two servers New refuses it.
func TestUnprefixedOneServer(t *testing.T) {
	demo := newPool(t, mcpool.Config{URL: demoURL(t)})
	naming, err := (&mcpool.GroupConfig{Unprefixed: true, Servers: []mcpool.ServerConfig{{Name: "demo"}}}).Naming()
	if err != nil {
		t.Fatal(err)
	}
	_, url := startGateway(t, gateway.Options{Naming: naming, Servers: []gateway.Server{
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(demo)},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := connect(t, url, "2025-11-25", nil)
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if !slices.Contains(names, "echo") || slices.Contains(names, "demo__echo") {
		t.Errorf("tools/list = %v, want the server's own names (echo, not demo__echo)", names)
	}
	if got, err := call(ctx, cs, "echo", map[string]any{"message": "hi"}); err != nil || got != "hi" {
		t.Errorf("echo = %q, %v; want hi", got, err)
	}

	_, err = (&mcpool.GroupConfig{Unprefixed: true, Servers: []mcpool.ServerConfig{{Name: "a"}, {Name: "b"}}}).Naming()
	if !errors.Is(err, mcpool.ErrInvalidConfig) || !strings.Contains(err.Error(), "exactly one server") {
		t.Errorf("Unprefixed with two servers: %v, want an error asking for exactly one server", err)
	}
	// A server the Naming does not know is refused.
	_, err = gateway.New(gateway.Options{Naming: naming, Logger: quiet(), Servers: []gateway.Server{
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(demo)},
		{Name: "b", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(demo)},
	}})
	if err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("New with a server the Naming does not know: %v, want an error naming it", err)
	}
}
