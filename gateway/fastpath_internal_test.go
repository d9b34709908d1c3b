package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
)

// A relayed call that meets the drain after the guard let it in (the guard
// checked before the drain began) is refused as the guard refuses: 503 with
// Retry-After, which a load balancer retries on another replica; a
// JSON-RPC error in a 200 would reach the client instead.
func TestRelayRefusesDrainingAsTheGuard(t *testing.T) {
	ts := httptest.NewServer(demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0))
	defer ts.Close()
	pool, err := mcpool.New(mcpool.Config{URL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(context.Background())
	g, err := New(Options{Servers: []Server{{Name: "demo", Mode: ModeShared, Upstream: PoolUpstream(pool)}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())

	g.draining.Store(true) // after the guard, before the call
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"demo__echo","arguments":{"message":"hi"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	r.Header.Set("Mcp-Method", "tools/call")
	r.Header.Set("Mcp-Name", "demo__echo")
	w := httptest.NewRecorder()
	g.relayHandler(http.NotFoundHandler()).ServeHTTP(w, r)
	if g.fast.handled.Load() != 1 {
		t.Fatalf("the relay did not take the call (answer %d %s)", w.Code, w.Body)
	}
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Errorf("answer %d, Retry-After %q: %s; want 503 with Retry-After 1", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

func TestRefusedDraining(t *testing.T) {
	if !refusedDraining(draining("demo")) {
		t.Error("the draining error is not recognised")
	}
	// A call the drain's end cancelled was started: it is answered as it
	// is, never as a refusal a load balancer would retry elsewhere.
	for _, err := range []error{errors.New("gateway is shutting down"), rpcError(CodeUnavailable, "unavailable", ErrorData{Reason: "unavailable"}), drainCancelled("demo")} {
		if refusedDraining(err) {
			t.Errorf("%v taken for a drain refusal", err)
		}
	}
}

// plainID passes the ids the relay may echo byte for byte, and leaves the
// rest to the SDK.
func TestPlainID(t *testing.T) {
	for id, want := range map[string]bool{
		`7`: true, `-3`: true, `"abc"`: true, `"é"`: true,
		``: false, `-`: false, `1.5`: false, `"a\"b"`: false, `"a\\nb"`: false, "\"\xff\"": false, `null`: false,
		`1234567890123456789`: false,
	} {
		if got := plainID([]byte(id)); got != want {
			t.Errorf("plainID(%q) = %v, want %v", id, got, want)
		}
	}
}
