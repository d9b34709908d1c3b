package mcpoolprom_test

import (
	"context"
	"testing"

	"github.com/mcpool/mcpool"
	mcpoolprom "github.com/mcpool/mcpool/prom"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
)

var _ mcpoolprom.Servers = (*mcpool.Group)(nil)

// TestRealGroup exports an *mcpool.Group: one server label per server,
// its replicas summed, agreeing with each replica's Stats.
func TestRealGroup(t *testing.T) {
	ts := demoHTTP(t)
	cfg := mcpool.Config{URL: ts.URL, Logger: quiet(), HealthCheckInterval: -1}
	g, err := mcpool.NewGroup(mcpool.GroupConfig{Logger: quiet(), Servers: []mcpool.ServerConfig{
		{Name: "a", Replicas: []mcpool.Config{cfg, cfg}},
		{Name: "b", Config: cfg},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	c := mcpoolprom.New(mcpoolprom.Options{})
	if err := c.AddGroup(g); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	ctx := context.Background()
	for _, server := range []string{"a", "a", "b"} {
		if _, err := g.CallTool(ctx, &mcp.CallToolParams{Name: server + "__echo", Arguments: map[string]any{"message": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for server, want := range map[string]float64{"a": 2, "b": 1} {
		if got := value(families, "mcpool_calls_total", map[string]string{"server": server}); got != want {
			t.Errorf("calls of %s: %v, want %v", server, got, want)
		}
		var acquires uint64
		for _, p := range g.Replicas(server) {
			acquires += p.Stats().Acquires
		}
		if got := value(families, "mcpool_acquires_total", map[string]string{"server": server}); got != float64(acquires) {
			t.Errorf("acquires of %s: %v, Stats say %d", server, got, acquires)
		}
	}
}

// A group is read at every scrape: a server an Update adds is exported
// with its calls counted from the start (SyncGroups after the update), and
// a server it removes is not exported any more, its call counters
// included.
func TestGroupUpdateExported(t *testing.T) {
	ts := demoHTTP(t)
	cfg := mcpool.Config{URL: ts.URL, Logger: quiet(), HealthCheckInterval: -1}
	g, err := mcpool.NewGroup(mcpool.GroupConfig{Logger: quiet(), Servers: []mcpool.ServerConfig{{Name: "a", Config: cfg}, {Name: "b", Config: cfg}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	c := mcpoolprom.New(mcpoolprom.Options{})
	if err := c.AddGroup(g); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	ctx := context.Background()
	// b's calls are counted while it is in the group.
	if _, err := g.CallTool(ctx, &mcp.CallToolParams{Name: "b__echo", Arguments: map[string]any{"message": "x"}}); err != nil {
		t.Fatal(err)
	}
	if families, err := reg.Gather(); err != nil || value(families, "mcpool_calls_total", map[string]string{"server": "b"}) != 1 {
		t.Fatalf("b's call before the update: %v", err)
	}
	upd, err := g.Update(ctx, mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "a", Config: cfg}, {Name: "c", Config: cfg}}})
	if err != nil {
		t.Fatal(err)
	}
	c.SyncGroups()
	if err := upd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, server := range []string{"a", "c", "c"} {
		if _, err := g.CallTool(ctx, &mcp.CallToolParams{Name: server + "__echo", Arguments: map[string]any{"message": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for server, want := range map[string]float64{"a": 1, "c": 2} {
		if got := value(families, "mcpool_calls_total", map[string]string{"server": server}); got != want {
			t.Errorf("calls of %s: %v, want %v", server, got, want)
		}
		if acquires := g.Pool(server).Stats().Acquires; value(families, "mcpool_acquires_total", map[string]string{"server": server}) != float64(acquires) {
			t.Errorf("acquires of %s: %v, Stats say %d", server, value(families, "mcpool_acquires_total", map[string]string{"server": server}), acquires)
		}
	}
	for _, f := range families {
		if f.GetName() != "mcpool_acquires_total" && f.GetName() != "mcpool_calls_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "server" && l.GetValue() == "b" {
					t.Errorf("server b, removed by the update, is still in %s", f.GetName())
				}
			}
		}
	}
}
