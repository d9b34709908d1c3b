package gateway_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// failingLists is an Upstream whose lists fail while failing is set (a unit
// test of the catalog watcher: the pool under it is real).
type failingLists struct {
	gateway.Upstream
	failing atomic.Bool
	failed  atomic.Int64 // lists failed
}

func (f *failingLists) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	if f.failing.Load() {
		f.failed.Add(1)
		return nil, errors.New("listing failed")
	}
	return f.Upstream.ListTools(ctx)
}

// A server whose tool list fails leaves the merged list (as the log says,
// once, not at every poll), and joins it again when it answers.
func TestFailingServerLeavesMergedList(t *testing.T) {
	up := &failingLists{Upstream: gateway.PoolUpstream(newPool(t, mcpool.Config{URL: demoURL(t)}))}
	other := newPool(t, mcpool.Config{URL: demoURL(t)})
	var logs syncBuffer
	gw, url := startGateway(t, gateway.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), CatalogPoll: 5 * time.Millisecond, Servers: []gateway.Server{
		{Name: "flaky", Mode: gateway.ModeShared, Upstream: up},
		{Name: "steady", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(other)},
	}})
	cs := connect(t, url, "2025-11-25", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listed := func(prefix string) bool {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range res.Tools {
			if strings.HasPrefix(tool.Name, prefix) {
				return true
			}
		}
		return false
	}
	if !listed("flaky__") || !listed("steady__") {
		t.Fatal("both servers' tools should be listed at first")
	}
	up.failing.Store(true)
	eventually(t, "the failing server's tools to leave the list", func() bool { return !listed("flaky__") })
	if !listed("steady__") {
		t.Error("the other server's tools left too")
	}
	if st := gw.Status().Servers[0]; st.Tools != 0 || st.ListError == "" {
		t.Errorf("status: %d tools, list error %q; want 0 and the error", st.Tools, st.ListError)
	}
	polls := up.failed.Load()
	eventually(t, "three more polls that fail", func() bool { return up.failed.Load() >= polls+3 })
	if n := strings.Count(logs.String(), "left out of the merged lists"); n != 1 {
		t.Errorf("the failing lists were logged %d times, want once:\n%s", n, logs.String())
	}
	up.failing.Store(false)
	eventually(t, "the server's tools to come back", func() bool { return listed("flaky__") })
	eventually(t, "the log to say the server answers again", func() bool {
		return strings.Contains(logs.String(), "answers again") && strings.Contains(logs.String(), "server=flaky")
	})
}

// A server that is down when the gateway starts does not hold the others
// back: Start returns once a connect to it has failed, long before its
// circuit breaker opens (10 s of failures), with the other server's tools
// listed; when the server comes up, its tools come with list_changed.
func TestStartServesWithoutADeadServer(t *testing.T) {
	late := newLateServer(t)
	dead := newPool(t, mcpool.Config{URL: "http://" + late.addr + "/mcp"})
	live := newPool(t, mcpool.Config{URL: demoURL(t)})
	var logs syncBuffer
	gw, url := startGateway(t, gateway.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Servers: []gateway.Server{
		{Name: "late", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(dead)},
		{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(live)},
	}})
	if st := dead.Stats(); st.Status == mcpool.StatusUnavailable || st.ConnectErrors == 0 {
		t.Fatalf("Start returned with the down server's breaker open or before a connect to it failed: %+v", st)
	}
	if !strings.Contains(logs.String(), "serving without this server's catalog") || !strings.Contains(logs.String(), "server=late") {
		t.Errorf("no warning names the server left out:\n%s", logs.String())
	}

	changed := make(chan struct{}, 16)
	cs := connect(t, url, "2025-11-25", &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := func() string {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tool := range res.Tools {
			out = append(out, tool.Name)
		}
		return strings.Join(out, " ")
	}
	if got := names(); !strings.Contains(got, "up__echo") || strings.Contains(got, "late__") {
		t.Fatalf("tools at first: %s; want the live server's only", got)
	}
	if st := gw.Status().Servers[0]; st.Tools != 0 || !strings.Contains(st.ListError, "not listed yet") {
		t.Errorf("status: the down server has %d tools, list error %q; want 0 and why", st.Tools, st.ListError)
	}

	// The server comes up on its address.
	late.up(t)
	for !strings.Contains(names(), "late__hello") {
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("no list_changed bringing the server's tools: %s", names())
		}
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "late__hello"}); err != nil || text(res) != "hello" {
		t.Errorf("late__hello: %v %v", text(res), err)
	}
	if !strings.Contains(logs.String(), "answers again") {
		t.Errorf("the log does not say the server answers:\n%s", logs.String())
	}
}

// A server down long enough for its circuit breaker to open: the status
// page's "not listed yet" gives way to the pool's error, the listing's
// failure is logged once however many polls fail (its three lists' one
// cause once), and the server's tools come back through the breaker's
// half-open probe when it answers.
func TestDeadServerAcrossItsBreaker(t *testing.T) {
	late := newLateServer(t)
	dead := newPool(t, mcpool.Config{URL: "http://" + late.addr + "/mcp", FailureThreshold: 3, BreakerOpenAfter: 100 * time.Millisecond,
		BreakerCooldown: 50 * time.Millisecond, BackoffInitial: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	var logs syncBuffer
	gw, url := startGateway(t, gateway.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), CatalogPoll: 10 * time.Millisecond, Servers: []gateway.Server{
		{Name: "late", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(dead)},
		{Name: "up", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(newPool(t, mcpool.Config{URL: demoURL(t)}))},
	}})
	eventually(t, "the breaker to open and the listing to fail with the pool's error", func() bool {
		st := gw.Status().Servers[0]
		return dead.Stats().Breaker != "closed" && strings.Contains(st.ListError, "unavailable")
	})
	cycles := dead.Stats().ConnectErrors
	eventually(t, "three more probes that fail", func() bool { return dead.Stats().ConnectErrors >= cycles+3 })
	if n := strings.Count(logs.String(), "left out of the merged lists"); n != 1 {
		t.Errorf("the listing's failure was logged %d times, want once:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "rejected by transport"); n != 1 {
		t.Errorf("the listing's error was logged %d times, want once (each cause once):\n%s", n, logs.String())
	}

	late.up(t)
	cs := connect(t, url, "2025-11-25", nil)
	eventually(t, "the server's tools after the half-open probe", func() bool {
		res, err := cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range res.Tools {
			if tool.Name == "late__hello" {
				return true
			}
		}
		return false
	})
	if st := gw.Status().Servers[0]; st.ListError != "" {
		t.Errorf("status: list error %q after the server answered", st.ListError)
	}
	eventually(t, "the log to say it answers again", func() bool { return strings.Contains(logs.String(), "answers again") })
}

// lateServer is a loopback address that refuses connections until up
// serves a go-sdk server with the tool "hello" on it. Made before the pools
// that dial it, it stops after their Close (cleanups run last first), which
// ends their sessions on it.
type lateServer struct {
	addr string
	stop func()
}

func newLateServer(t *testing.T) *lateServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &lateServer{addr: ln.Addr().String()}
	ln.Close()
	t.Cleanup(func() {
		if l.stop != nil {
			l.stop()
		}
	})
	return l
}

func (l *lateServer) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "late", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "hello", Description: "Says hello."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello"}}}, nil, nil
		})
	ts := httptest.NewUnstartedServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	l.stop = func() { closePeer(s, ts) }
}
