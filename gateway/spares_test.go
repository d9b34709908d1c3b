package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
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

// slowInitServer serves a go-sdk server over loopback HTTP whose
// initialize takes hold: a server slow to start.
func slowInitServer(t *testing.T, hold time.Duration) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "slow-init", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(ctx context.Context, _ *mcp.CallToolRequest, in struct {
		Message string `json:"message"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Message}}}, nil, nil
	})
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "initialize" {
				select {
				case <-time.After(hold):
				case <-ctx.Done():
				}
			}
			return next(ctx, method, req)
		}
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(ts.Close)
	return ts.URL
}

func sparesWarm(g *gateway.Gateway) int {
	var sessions, spares int
	_, _ = fmt.Sscanf(g.Status().Servers[0].Detail, "%d downstream sessions with their own upstream session, %d spares warm", &sessions, &spares)
	return spares
}

// Isolated spares follow the arrival of new downstream sessions: after a
// burst of sessions arriving faster than one connect takes (a second
// here: a server slow to start), the gateway warms more than Spares; once
// arrivals stop, it lets the extra ones go. The spares warm are watched
// from the burst's start until there are more than Spares, not only
// during the burst: on a loaded machine arriving sessions take each spare
// as soon as it is warm, and the extra spares show only once they stop.
func TestIsolatedSparesAdapt(t *testing.T) {
	url := slowInitServer(t, time.Second)
	g, gwURL := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "slow", Spares: 1,
		Config: mcpool.Config{URL: url, ProtocolVersion: "2025-11-25"}}}})
	eventually(t, "one spare warm", func() bool { return sparesWarm(g) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var peak atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			if n := int64(sparesWarm(g)); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	// Sessions arrive, each for one call, several at a time.
	var calls sync.WaitGroup
	for range 8 {
		calls.Go(func() {
			for range 3 {
				cs := connect(t, gwURL, "2025-11-25", nil)
				if _, err := call(ctx, cs, "slow__echo", map[string]any{"message": "hi"}); err != nil {
					t.Errorf("call: %v", err)
				}
				_ = cs.Close()
			}
		})
	}
	calls.Wait()
	eventually(t, "more than Spares (1) warm after the burst", func() bool { return peak.Load() >= 2 })
	close(stop)
	wg.Wait()
	t.Logf("peak spares warm: %d", peak.Load())
	// The arrival rate decays with a 5s time constant and extra spares
	// close one a second: allow a minute.
	for deadline := time.Now().Add(time.Minute); sparesWarm(g) != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d spares warm a minute after arrivals stopped, want Spares (1)", sparesWarm(g))
		}
	}
}

// levelCount is a slog handler that counts records by level and message
// prefix.
type levelCount struct {
	mu     sync.Mutex
	counts map[string]int // "LEVEL message"
}

func (h *levelCount) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCount) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[string]int{}
	}
	h.counts[r.Level.String()+" "+r.Message]++
	return nil
}
func (h *levelCount) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCount) WithGroup(string) slog.Handler      { return h }

// count returns how many records at level have a message starting with
// prefix.
func (h *levelCount) count(level slog.Level, prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for k, c := range h.counts {
		if strings.HasPrefix(k, level.String()+" "+prefix) {
			n += c
		}
	}
	return n
}

// An isolated server that is down warns once, not once per spare it
// retries: each retry connects a new pool, which used to log its own
// "connect failed" warning, beside the gateway's own for the spare, every
// pause (up to 30s apart) for as long as the server stayed down. When it
// comes back, one line says so.
func TestIsolatedDeadServerWarnsOnce(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	starting, up := demoserver.Starting(demoserver.Handler(srv, false, 0))
	down := httptest.NewServer(starting)
	t.Cleanup(func() { closePeer(srv, down) })
	logs := &levelCount{}
	g, err := gateway.New(gateway.Options{Logger: slog.New(logs), Servers: []gateway.Server{{Name: "down",
		// The breaker opens after FailureThreshold failures rather than
		// after 10s of them: a warm-up then fails in a fraction of a
		// second, and the retry after the first pause finds it back.
		Config: mcpool.Config{URL: down.URL, BreakerOpenAfter: -1}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = g.Start(ctx) // fails: the server is down; the gateway serves on and retries
	t.Cleanup(func() {
		if err := g.Close(context.Background()); err != nil {
			t.Errorf("gateway Close: %v", err)
		}
	})
	const spareFailed = "isolated: warming a spare failed"
	// Both spares (DefaultSpares) connect, retry and fail.
	eventually(t, "two failed spares", func() bool {
		return logs.count(slog.LevelWarn, spareFailed)+logs.count(slog.LevelDebug, spareFailed) >= 2
	})
	if n := logs.count(slog.LevelWarn, spareFailed); n != 1 {
		t.Errorf("%d warnings that a spare failed, want 1 (the retries at debug level)", n)
	}
	if n := logs.count(slog.LevelWarn, "mcpool: connect failed"); n > 1 {
		t.Errorf("%d warnings that a connect failed, want at most 1 (the catalog's pool; the spares' at debug level)", n)
	}
	up()
	eventually(t, "the line that a spare connected again", func() bool {
		return logs.count(slog.LevelInfo, "isolated: a spare connected again") > 0
	})
	eventually(t, "both spares warm", func() bool { return sparesWarm(g) == gateway.DefaultSpares })
	if n := logs.count(slog.LevelInfo, "isolated: a spare connected again"); n != 1 {
		t.Errorf("%d lines that a spare connected again, want 1", n)
	}
}

// A server that no retry cures (its program does not exist) is logged as
// such, once: not as a wait with backoff.
func TestIsolatedMisconfiguredSaysSo(t *testing.T) {
	logs := &levelCount{}
	g, err := gateway.New(gateway.Options{Logger: slog.New(logs), Servers: []gateway.Server{{Name: "typo",
		Config: mcpool.Config{Command: &mcpool.Command{Path: "/nonexistent/mcp-server"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = g.Start(ctx) // fails: the gateway serves on without the server
	t.Cleanup(func() {
		if err := g.Close(context.Background()); err != nil {
			t.Errorf("gateway Close: %v", err)
		}
	})
	const cured = "retrying will not cure it"
	eventually(t, "a failed spare", func() bool { return logs.count(slog.LevelWarn, "isolated: warming a spare failed, and "+cured) > 0 })
	if n := logs.count(slog.LevelWarn, "retrying with backoff"); n != 0 {
		t.Errorf("%d warnings speak of retrying with backoff for a program that does not exist", n)
	}
	// A client's call is refused at once, saying not to retry, without
	// the path the gateway met.
	ts := httptest.NewServer(g.Handler())
	t.Cleanup(ts.Close) // after the client session's close, registered later
	eventually(t, "the breaker open", func() bool { return g.Status().Servers[0].Status == "unavailable" })
	cs := connect(t, ts.URL+"/mcp", "2025-11-25", nil)
	_, err = call(ctx, cs, "typo__echo", map[string]any{})
	var data gateway.ErrorData
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != gateway.CodeUnavailable || json.Unmarshal(je.Data, &data) != nil || data.Reason != "misconfigured" || data.RetryAfterMs != 0 {
		t.Fatalf("call: %v; want code %d with reason misconfigured and no retry", err, gateway.CodeUnavailable)
	}
	if strings.Contains(err.Error(), "nonexistent") || strings.Contains(err.Error(), "retry in") {
		t.Errorf("call: %v: tells the client the gateway's path, or to retry", err)
	}
}
