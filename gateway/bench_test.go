package gateway_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"testing"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// benchGateway serves the demo server over loopback HTTP and a gateway in
// front of it (one shared pool), for the benchmarks below, until b ends.
// It returns the demo server's URL and the gateway's MCP endpoint. The
// gateway's connections, and the goroutines they start (its upstream
// calls' included), carry the pprof label side=gateway: with -cpuprofile
// or -memprofile, go tool pprof -tagfocus side=gateway shows the gateway's
// share of this process's CPU.
func benchGateway(b *testing.B) (direct, endpoint string) {
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	b.Cleanup(ts.Close)
	up, err := mcpool.New(mcpool.Config{URL: ts.URL, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = up.Close(context.Background()) })
	gw, err := gateway.New(gateway.Options{Logger: quiet(), Servers: []gateway.Server{{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up)}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := gw.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	gts := httptest.NewUnstartedServer(gw.Handler())
	gts.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("side", "gateway")))
		}
	}
	gts.Start()
	b.Cleanup(func() { _ = gw.Close(context.Background()); gts.Close() })
	return ts.URL, gts.URL + "/mcp"
}

// BenchmarkHop compares pooled calls to a go-sdk server over loopback HTTP,
// made directly and through the gateway (downstream 2025-11-25 sessions and
// 2026-07-28 stateless requests), with 16×GOMAXPROCS callers. Client,
// gateway and server share this process's CPU.
func BenchmarkHop(b *testing.B) {
	direct, endpoint := benchGateway(b)
	for _, c := range []struct{ name, url, tool, version string }{
		{"direct", direct, "echo", ""},
		{"gateway-2025", endpoint, "demo__echo", "2025-11-25"},
		{"gateway-2026", endpoint, "demo__echo", ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, err := mcpool.New(mcpool.Config{URL: c.url, Logger: quiet(), ProtocolVersion: c.version, MaxSessions: 1, MaxCallsPerSession: 64})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			params := &mcp.CallToolParams{Name: c.tool, Arguments: map[string]any{"message": "hi"}}
			if _, err := p.CallTool(context.Background(), params); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.CallTool(context.Background(), params); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSessionPerCall measures a client that opens a new session for
// every call, as many agents do: connect (a 2026-07-28 client: no
// handshake, the server/discover probe), list tools, call, close, through
// the gateway to a pooled go-sdk server over loopback HTTP, 16×GOMAXPROCS
// such clients at once.
func BenchmarkSessionPerCall(b *testing.B) {
	_, endpoint := benchGateway(b)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	params := &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "hi"}}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
			if err != nil {
				b.Error(err)
				return
			}
			for _, err := range cs.Tools(context.Background(), nil) {
				if err != nil {
					b.Error(err)
				}
			}
			if _, err := cs.CallTool(context.Background(), params); err != nil {
				b.Error(err)
			}
			_ = cs.Close()
		}
	})
}
