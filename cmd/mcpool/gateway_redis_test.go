package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/mcpool/mcpool/internal/redistest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Two `mcpool gateway` replicas with the config's gateway.redis: the
// upstream answers one tools/list between them, any replica answers any
// request (no Mcp-Session-Id), and the status reports the store.
func TestGatewayReplicasShareRedis(t *testing.T) {
	rs := redistest.Start(t)
	var lists atomic.Int64
	s := demoserver.New(demoserver.Options{})
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				lists.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	up := httptest.NewServer(demoserver.Handler(s, false, 0))
	defer up.Close()
	config := fmt.Sprintf(`{
  "mcpServers": {"demo": {"type": "http", "url": %q}},
  "gateway": {"redis": %q, "servers": {"demo": {"mode": "shared"}}}
}`, up.URL, rs.URL())
	var urls []string
	for range 2 {
		url, stop, logs := startGateway(t, config)
		defer func() {
			if code := stop(); code != 0 {
				t.Errorf("gateway exit status %d, want 0: %s", code, logs.String())
			}
		}()
		urls = append(urls, url)
	}
	for _, url := range urls {
		r := runCLI(t, "tools", "--url", url)
		if r.code != 0 || !slices.Contains(toolNames(t, r), "demo__echo") {
			t.Fatalf("tools through %s: %d %s", url, r.code, r.stderr)
		}
	}
	var storeErrors uint64
	for _, url := range urls {
		resp, err := http.Get(strings.TrimSuffix(url, "/mcp") + "/status.json")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Store       string `json:"store"`
			StoreErrors uint64 `json:"storeErrors"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || st.Store == "" {
			t.Fatalf("status.json of %s: store %q, %v", url, st.Store, err)
		}
		storeErrors += st.StoreErrors
	}
	if n := lists.Load(); n < 1 || uint64(n) > 1+storeErrors {
		t.Fatalf("upstream answered %d tools/list for two replicas sharing Redis (%d store errors), want 1", n, storeErrors)
	}
	// Stateless: an initialize gets no session id, so the next request may
	// go to the other replica.
	req, _ := http.NewRequest(http.MethodPost, urls[0], strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") != "" {
		t.Fatalf("initialize: status %d, Mcp-Session-Id %q; want 200 and none (stateless)", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"))
	}
	r := runCLI(t, "call", "--url", urls[1], "demo__echo", `{"message":"hi"}`)
	if r.code != 0 || !strings.Contains(r.stdout, "hi") {
		t.Fatalf("call through the second replica: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestGatewayRedisUsage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(`{"mcpServers": {"demo": {"type": "http", "url": "http://127.0.0.1:1/mcp"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "gateway", "--config", path, "--redis", "http://x", "--listen", "127.0.0.1:0")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--redis") || strings.Count(r.stderr, "mcpool:") != 1 {
		t.Fatalf("bad --redis: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, "gateway", "--config", path, "--stateless", "--sessions-only", "--listen", "127.0.0.1:0")
	if r.code != exitUsage || !strings.Contains(r.stderr, "exclude each other") {
		t.Fatalf("--stateless --sessions-only: exit %d, stderr %q", r.code, r.stderr)
	}
}
