package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// everythingStdio is server-everything over stdio, from testdata/npm
// (installed by scripts/test). The tests fail, never skip, when it is
// missing.
func everythingStdio(t *testing.T) *mcpool.Command {
	t.Helper()
	js, err := filepath.Abs("../testdata/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(js); err != nil {
		t.Fatalf("server-everything is not installed (%v): run scripts/test, which runs npm ci --prefix testdata/npm", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH: %v", err)
	}
	return &mcpool.Command{Path: "node", Args: []string{js, "stdio"}}
}

// newPool makes a pool and closes it when the test ends.
func newPool(t *testing.T, cfg mcpool.Config) *mcpool.Pool {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	p, err := mcpool.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("pool Close: %v", err)
		}
	})
	return p
}

// demoURL serves the demo server (echo, sleep, structured) over HTTP.
func demoURL(t *testing.T) string {
	t.Helper()
	s := demoserver.New(demoserver.Options{})
	ts := httptest.NewServer(demoserver.Handler(s, false, 0))
	t.Cleanup(func() { closePeer(s, ts) })
	return ts.URL
}

// closePeer stops a test's upstream server: its sessions first (a session
// whose client went away without a DELETE would otherwise stay open), then
// the listener.
func closePeer(s *mcp.Server, ts *httptest.Server) {
	for ss := range s.Sessions() {
		_ = ss.Close()
	}
	ts.Close()
}

// gate is a test server's tools: set and get keep a value per upstream
// session (a stateful server), and block waits until the gate opens or the
// call is cancelled, counting both.
type gate struct {
	open      chan struct{}
	once      sync.Once
	running   atomic.Int64
	cancelled atomic.Int64
	finished  atomic.Int64
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

type kv struct {
	Value string `json:"value,omitempty"`
}

func (g *gate) server() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "gate", Version: "1"}, nil)
	var mu sync.Mutex
	state := map[*mcp.ServerSession]string{}
	mcp.AddTool(s, &mcp.Tool{Name: "set", Description: "Stores a value in this session."},
		func(ctx context.Context, req *mcp.CallToolRequest, in kv) (*mcp.CallToolResult, any, error) {
			mu.Lock()
			state[req.Session] = in.Value
			mu.Unlock()
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "get", Description: "Returns this session's value."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			mu.Lock()
			v := state[req.Session]
			mu.Unlock()
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "value=" + v}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "block", Description: "Waits for the test to open the gate."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			g.running.Add(1)
			defer g.running.Add(-1)
			select {
			case <-g.open:
				g.finished.Add(1)
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
			case <-ctx.Done():
				g.cancelled.Add(1)
				return nil, nil, ctx.Err()
			}
		})
	return s
}

// gateURL serves the gate server over HTTP, one upstream session per
// client session.
func (g *gate) url(t *testing.T) string {
	t.Helper()
	s := g.server()
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() { closePeer(s, ts) })
	return ts.URL
}

// startGateway starts a gateway over HTTP on loopback and shuts it down when
// the test ends.
func startGateway(t *testing.T, opts gateway.Options) (*gateway.Gateway, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ts := httptest.NewServer(g.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Errorf("gateway Close: %v", err)
		}
		ts.Close()
	})
	return g, ts.URL + "/mcp"
}

// connect opens a downstream go-sdk client session to the gateway, pinned to
// version ("" means the SDK's default, 2026-07-28).
func connect(t *testing.T, url, version string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "downstream", Version: "1"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect to the gateway: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func text(res *mcp.CallToolResult) string {
	if res == nil || len(res.Content) == 0 {
		return ""
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); ok {
		return tc.Text
	}
	b, _ := json.Marshal(res.Content[0])
	return string(b)
}

// rpcCode returns the JSON-RPC error code in err, or 0.
func rpcCode(err error) int64 {
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		return je.Code
	}
	return 0
}

func call(ctx context.Context, cs *mcp.ClientSession, name string, args any) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %s", text(res))
	}
	return text(res), nil
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var _ = io.Discard
