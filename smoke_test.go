package mcpool_test

import (
	"context"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
)

func TestSmokeTransports(t *testing.T) {
	ctx := context.Background()
	srv := demoserver.New(demoserver.Options{})
	nt, _ := inMemory(srv)
	cases := map[string]mcpool.Config{
		"memory":         {NewTransport: nt},
		"http-stateful":  {URL: httpServer(t, srv, false)},
		"http-stateless": {URL: httpServer(t, srv, true)},
		"stdio":          {Command: stdioCommand(t)},
		"sse":            {SSEURL: sseServer(t, srv)},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			p := newPool(t, cfg)
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			echo(t, ctx, p, "hi "+name)
			tools, err := p.ListTools(ctx)
			if err != nil || len(tools) != 3 {
				t.Fatalf("ListTools: %d tools, %v", len(tools), err)
			}
			t.Logf("%s: %+v", name, p.Stats())
		})
	}
}

// One params value shared by concurrent calls on sessions of both protocol
// eras: the pool must not let the SDK write into it.
func TestCallToolParamsAreNotShared(t *testing.T) {
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "same"}}
	stateless, _ := inMemory(demoserver.New(demoserver.Options{}))         // negotiates 2026-07-28
	stateful := httpServer(t, demoserver.New(demoserver.Options{}), false) // negotiates 2025-11-25
	pools := []*mcpool.Pool{newPool(t, mcpool.Config{NewTransport: stateless}), newPool(t, mcpool.Config{URL: stateful})}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if _, err := pools[i%2].CallTool(ctx, params); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if params.Meta != nil {
		t.Fatalf("params.Meta written: %v", params.Meta)
	}
}

// sseServer serves srv over the legacy HTTP+SSE transport on loopback.
func sseServer(t *testing.T, srv *mcp.Server) string {
	t.Helper()
	ts := httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	return ts.URL
}
