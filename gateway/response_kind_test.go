package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// lastContentType records the Content-Type of the answer to the last
// tools/call POST that went through it.
type lastContentType struct {
	mu   sync.Mutex
	last string
}

func (l *lastContentType) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodPost && r.Header.Get("Mcp-Method") == "tools/call" {
		l.mu.Lock()
		l.last = resp.Header.Get("Content-Type")
		l.mu.Unlock()
	}
	return resp, err
}

func (l *lastContentType) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// A stateless (2026-07-28) call gets one application/json answer unless it
// may need a stream: a progressToken, or a body too large to check. A plain
// call (escapes included: the relay decodes the body, so a \u escape cannot
// hide a progressToken from it) is answered by the relay. Every call works
// either way.
func TestStatelessResponseKind(t *testing.T) {
	up := newPool(t, mcpool.Config{URL: demoURL(t)})
	_, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up)}}})
	rec := &lastContentType{}
	c := mcp.NewClient(&mcp.Implementation{Name: "downstream", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: rec}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if v := cs.InitializeResult().ProtocolVersion; v < "2026-07-28" {
		t.Fatalf("negotiated %s, want a stateless era", v)
	}
	for _, tc := range []struct {
		name, message, want string
		progress            bool
	}{
		{"plain", "hi", "application/json", false},
		{"progressToken", "hi", "text/event-stream", true},
		{"escaped", "caf\u00e9\u2028", "application/json", false},
		{"large", strings.Repeat("x", 70<<10), "text/event-stream", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": tc.message}}
			if tc.progress {
				params.SetProgressToken("p1")
			}
			res, err := cs.CallTool(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if got := text(res); !strings.Contains(got, tc.message) {
				t.Errorf("echo answered %.40q, want the message back", got)
			}
			if got := rec.get(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("Content-Type %q, want %s", got, tc.want)
			}
		})
	}
}
