package mcpool_test

import (
	"context"
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
