package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool/internal/demoserver"
)

// A passthrough server is dialled only with a client's credentials: the
// gateway's Group never connects to it with the gateway's own, so a
// per-user-auth server sees no request until a client calls.
func TestGatewayPassthroughNotDialledAtStart(t *testing.T) {
	s := demoserver.New(demoserver.Options{})
	h := demoserver.Handler(s, false, 0)
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer func() {
		for ss := range s.Sessions() {
			_ = ss.Close()
		}
		ts.Close()
	}()
	url, stop, logs := startGateway(t, fmt.Sprintf(`{
  "mcpServers": {"user": {"type": "http", "url": %q}},
  "gateway": {"servers": {"user": {"mode": "passthrough", "forwardHeaders": ["X-User-Key"]}}}
}`, ts.URL))
	// The URL is logged after the Group and the gateway have started.
	if n := hits.Load(); n != 0 {
		t.Errorf("the passthrough server got %d requests with the gateway's credentials at start, want 0", n)
	}
	// Its figures come from the gateway's keyed pool.
	resp, err := http.Get(strings.TrimSuffix(url, "/mcp") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mcpool_calls_in_flight{server="user"} 0`, `mcpool_gateway_calls_in_flight{server="user"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code := stop(); code != 0 {
		t.Errorf("gateway exit status %d: %s", code, logs.String())
	}
}

// SIGTERM while the gateway is still starting (an upstream hangs in its
// connect) stops it with exit status 0, as a SIGTERM later does.
func TestGatewaySIGTERMWhileStartingExitsZero(t *testing.T) {
	var hits atomic.Int64
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
		http.Error(w, "gone", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	defer close(release)
	path := filepath.Join(t.TempDir(), "mcp.json")
	config := fmt.Sprintf(`{
  "mcpServers": {"slow": {"type": "http", "url": %q}},
  "gateway": {"servers": {"slow": {"mode": "shared"}}}
}`, ts.URL)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &lockedBuffer{}
	status := make(chan int, 1)
	go func() {
		status <- runContext(ctx, []string{"gateway", "--config", path, "--listen", "127.0.0.1:0", "--drain-timeout", "20s"}, os.Stdout, logs)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for hits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never connected upstream: %s", logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel() // what SIGTERM does
	select {
	case code := <-status:
		if code != 0 {
			t.Errorf("exit status %d after SIGTERM while starting, want 0: %s", code, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("gateway did not stop after SIGTERM while starting: %s", logs.String())
	}
}
