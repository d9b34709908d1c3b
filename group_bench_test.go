package mcpool_test

import (
	"context"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// What the group adds to a call and to a cached list: routing by the
// namespaced name, the replica choice, the merged catalog. Compare with
// BenchmarkCallTool/memory/pool.
func BenchmarkGroup(b *testing.B) {
	ctx := context.Background()
	one, _ := inMemory(demoserver.New(demoserver.Options{}))
	two, _ := inMemory(demoserver.New(demoserver.Options{}))
	g, err := mcpool.NewGroup(mcpool.GroupConfig{Logger: quiet, Servers: []mcpool.ServerConfig{
		{Name: "one", Config: mcpool.Config{NewTransport: one, Logger: quiet}},
		{Name: "two", Replicas: []mcpool.Config{{NewTransport: two, Logger: quiet}, {NewTransport: two, Logger: quiet}}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Close(ctx) })
	if err := g.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := g.ListTools(ctx); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, tool string }{{"CallTool/one-replica", "one__echo"}, {"CallTool/two-replicas", "two__echo"}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.CallTool(ctx, &mcp.CallToolParams{Name: tc.tool, Arguments: map[string]any{"message": "hello"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("ListTools/cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.ListTools(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
