package gateway_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/proctest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Both protocol eras downstream, against a go-sdk server over HTTP and
// server-everything over stdio upstream: namespaced catalogs, and calls,
// prompts and resources routed to the right server.
func TestCatalogAndCallsBothEras(t *testing.T) {
	demo := newPool(t, mcpool.Config{URL: demoURL(t)})
	every := newPool(t, mcpool.Config{Command: everythingStdio(t)})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(demo)},
		{Name: "everything", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(every)},
	}})
	// The demo server has no prompts or resources: an empty list, not a
	// failure that would leave it out.
	for _, st := range gw.Status().Servers {
		if st.ListError != "" || st.Tools == 0 {
			t.Errorf("server %s: list error %q, %d tools", st.Name, st.ListError, st.Tools)
		}
	}
	for _, version := range []string{"2025-11-25", ""} {
		t.Run("version="+version, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cs := connect(t, url, version, nil)
			if version == "" {
				if got := cs.InitializeResult().ProtocolVersion; got < "2026-07-28" {
					t.Fatalf("default client negotiated %q, want the stateless era", got)
				}
			}
			tools, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tl := range tools.Tools {
				names = append(names, tl.Name)
			}
			for _, want := range []string{"demo__echo", "demo__sleep", "everything__echo", "everything__get-sum"} {
				if !slices.Contains(names, want) {
					t.Errorf("tools/list lacks %s (got %v)", want, names)
				}
			}
			if got, err := call(ctx, cs, "demo__echo", map[string]any{"message": "hi"}); err != nil || got != "hi" {
				t.Errorf("demo__echo = %q, %v", got, err)
			}
			if got, err := call(ctx, cs, "everything__get-sum", map[string]any{"a": 2, "b": 3}); err != nil || !strings.Contains(got, "5") {
				t.Errorf("everything__get-sum = %q, %v", got, err)
			}
			_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "nowhere__echo"})
			if rpcCode(err) != gateway.CodeUnknownName || !strings.Contains(err.Error(), "demo") {
				t.Errorf("unknown server: err = %v, want code %d listing the servers", err, gateway.CodeUnknownName)
			}

			prompts, err := cs.ListPrompts(ctx, nil)
			if err != nil || len(prompts.Prompts) == 0 {
				t.Fatalf("prompts/list: %v, %d prompts", err, len(prompts.Prompts))
			}
			p := prompts.Prompts[0]
			if !strings.HasPrefix(p.Name, "everything__") {
				t.Errorf("prompt %q is not namespaced", p.Name)
			}
			args := map[string]string{}
			for _, a := range p.Arguments {
				if a.Required {
					args[a.Name] = "x"
				}
			}
			if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: p.Name, Arguments: args}); err != nil {
				t.Errorf("prompts/get %s: %v", p.Name, err)
			}
			res, err := cs.ListResources(ctx, nil)
			if err != nil || len(res.Resources) == 0 {
				t.Fatalf("resources/list: %v", err)
			}
			read, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: res.Resources[0].URI})
			if err != nil || len(read.Contents) == 0 {
				t.Errorf("resources/read %s: %v", res.Resources[0].URI, err)
			}
		})
	}
}

// Isolated mode: state one client sets on a stateful server is never seen by
// another, while the same client sees its own; shared mode, for contrast,
// leaks it (which is why sharing must be asked for).
func TestIsolatedStateNeverLeaks(t *testing.T) {
	g := newGate()
	upURL := g.url(t)
	catalog := newPool(t, mcpool.Config{URL: upURL})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "kv", Mode: gateway.ModeIsolated, Upstream: gateway.PoolUpstream(catalog), Config: mcpool.Config{URL: upURL}, Spares: 2},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually(t, "spares warm", func() bool { return strings.Contains(gw.Status().Servers[0].Detail, "2 spares") })

	a := connect(t, url, "2025-11-25", nil)
	b := connect(t, url, "2025-11-25", nil)
	if _, err := call(ctx, a, "kv__set", map[string]any{"value": "secret-of-a"}); err != nil {
		t.Fatal(err)
	}
	if got, err := call(ctx, a, "kv__get", map[string]any{}); err != nil || got != "value=secret-of-a" {
		t.Fatalf("a reads %q, %v: want its own value", got, err)
	}
	// Concurrent calls from b too: b has its own upstream session, and no
	// state of a's.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got, err := call(ctx, b, "kv__get", map[string]any{}); err != nil || got != "value=" {
				t.Errorf("b reads %q, %v: want nothing", got, err)
			}
		})
	}
	wg.Wait()
	if st := gw.Status().Servers[0]; st.Sessions != 2 {
		t.Errorf("isolated sessions = %d, want 2 (one per downstream session)", st.Sessions)
	}
	// A downstream session that ends frees its upstream session.
	_ = b.Close()
	eventually(t, "b's upstream session closed", func() bool { return gw.Status().Servers[0].Sessions == 1 })

	// Shared, for contrast: one client's state is the next one's.
	shared := newPool(t, mcpool.Config{URL: upURL, MinSessions: 1, MaxSessions: 1})
	_, url2 := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "kv", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(shared)}}})
	c, d := connect(t, url2, "2025-11-25", nil), connect(t, url2, "2025-11-25", nil)
	if _, err := call(ctx, c, "kv__set", map[string]any{"value": "c"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := call(ctx, d, "kv__get", map[string]any{}); got != "value=c" {
		t.Errorf("shared mode: d reads %q; the contrast case expects the leak isolated mode prevents", got)
	}
}

// Overload: more callers than MaxInFlight + MaxQueued. The excess is refused
// at once with CodeOverloaded (nothing piles up), and the accepted calls all
// finish once the server answers.
func TestOverloadRefusesAtOnce(t *testing.T) {
	g := newGate()
	up := newPool(t, mcpool.Config{URL: g.url(t), MaxCallsPerSession: 64})
	gw, url := startGateway(t, gateway.Options{MaxInFlight: 4, Servers: []gateway.Server{
		{Name: "gate", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up), MaxQueued: 4},
	}})
	cs := connect(t, url, "2025-11-25", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const callers = 20
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := call(ctx, cs, "gate__block", map[string]any{})
			errs <- err
		}()
	}
	// 4 run, 4 queue, 12 are refused without waiting for the gate.
	var refused int
	for range callers - 8 {
		err := <-errs
		if rpcCode(err) != gateway.CodeOverloaded || !strings.Contains(err.Error(), "retry") {
			t.Fatalf("refused call: err = %v, want code %d saying when to retry", err, gateway.CodeOverloaded)
		}
		refused++
	}
	eventually(t, "4 calls running upstream", func() bool { return g.running.Load() == 4 })
	if st := gw.Status(); st.InFlight != 4 || st.Servers[0].Waiters < 4 || st.Servers[0].Refused != int64(refused) {
		t.Errorf("status: in flight %d, waiters %d, refused %d; want 4, ≥4, %d", st.InFlight, st.Servers[0].Waiters, st.Servers[0].Refused, refused)
	}
	g.release()
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("accepted call failed: %v", err)
		}
	}
}

// The HTTP layer refuses POSTs beyond MaxRequests with 429 and Retry-After
// before reading them, and checks the token in constant time.
func TestHTTPRefusalsAndToken(t *testing.T) {
	g := newGate()
	up := newPool(t, mcpool.Config{URL: g.url(t)})
	_, url := startGateway(t, gateway.Options{MaxRequests: 2, Token: "s3cret", Servers: []gateway.Server{
		{Name: "gate", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up)},
	}})
	resp, err := http.Post(url, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: status %d, want 401", resp.StatusCode)
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "d", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer("s3cret")}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect with the token: %v", err)
	}
	defer cs.Close()
	done := make(chan error, 2)
	for range 2 {
		go func() { _, err := call(ctx, cs, "gate__block", map[string]any{}); done <- err }()
	}
	eventually(t, "2 requests in flight", func() bool { return g.running.Load() == 2 })
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("beyond MaxRequests: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	g.release()
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// Drain: readiness drops, new calls are refused, calls in flight finish and
// none is lost.
func TestDrainLosesNoAcceptedCall(t *testing.T) {
	g := newGate()
	up := newPool(t, mcpool.Config{URL: g.url(t)})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "gate", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(up)}}})
	base := strings.TrimSuffix(url, "/mcp")
	cs := connect(t, url, "2025-11-25", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() { _, err := call(ctx, cs, "gate__block", map[string]any{}); errs <- err }()
	}
	eventually(t, "calls in flight", func() bool { return g.running.Load() == n })
	drained := make(chan error, 1)
	go func() { drained <- gw.Drain(ctx) }()
	eventually(t, "readiness dropped", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if _, err := call(ctx, cs, "gate__block", map[string]any{}); err == nil {
		t.Error("a new call during drain was accepted")
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) with calls in flight", err)
	default:
	}
	g.release()
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("accepted call lost: %v", err)
		}
	}
	if g.finished.Load() != n {
		t.Errorf("%d calls finished upstream, want %d", g.finished.Load(), n)
	}
}

// Progress travels down and cancellation up, in both eras, with
// server-everything's long-running operation and the gate server's block.
func TestProgressDownCancelUp(t *testing.T) {
	var gw *gateway.Gateway
	relay := func(ctx context.Context, r *mcp.ProgressNotificationClientRequest) { gw.OnProgress(ctx, r) }
	every := newPool(t, mcpool.Config{Command: everythingStdio(t), OnProgress: relay})
	g := newGate()
	gatePool := newPool(t, mcpool.Config{URL: g.url(t)})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "everything", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(every)},
		{Name: "gate", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(gatePool)},
	}})
	for _, version := range []string{"2025-11-25", ""} {
		t.Run("version="+version, func(t *testing.T) {
			var mu sync.Mutex
			var got []float64
			cs := connect(t, url, version, &mcp.ClientOptions{ProgressNotificationHandler: func(ctx context.Context, r *mcp.ProgressNotificationClientRequest) {
				if r.Params.ProgressToken != "mine" {
					t.Errorf("progress token %v, want the caller's own", r.Params.ProgressToken)
				}
				mu.Lock()
				got = append(got, r.Params.Progress)
				mu.Unlock()
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			params := &mcp.CallToolParams{Name: "everything__trigger-long-running-operation", Arguments: map[string]any{"duration": 1, "steps": 4}}
			params.SetProgressToken("mine")
			if _, err := cs.CallTool(ctx, params); err != nil {
				t.Fatal(err)
			}
			// The server's last notification can reach the gateway after
			// the result (the SDK dispatches notifications apart from
			// responses), when the call's stream is gone: at least the
			// others arrive.
			eventually(t, "progress notifications", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 2 })

			before := g.cancelled.Load()
			cctx, ccancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { _, err := call(cctx, cs, "gate__block", map[string]any{}); done <- err }()
			eventually(t, "the call running upstream", func() bool { return g.running.Load() == 1 })
			ccancel()
			<-done
			eventually(t, "the upstream call cancelled", func() bool { return g.cancelled.Load() == before+1 })
			eventually(t, "no call running upstream", func() bool { return g.running.Load() == 0 })
		})
	}
}

// stdio upstream children are reaped when their pools close: the gateway
// leaves no process behind (isolated sessions included).
func TestIsolatedStdioChildrenReaped(t *testing.T) {
	cmd := everythingStdio(t)
	catalog := newPool(t, mcpool.Config{Command: cmd})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{
		{Name: "e", Mode: gateway.ModeIsolated, Upstream: gateway.PoolUpstream(catalog), Config: mcpool.Config{Command: cmd}, Spares: 1},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := connect(t, url, "2025-11-25", nil)
	if got, err := call(ctx, cs, "e__echo", map[string]any{"message": "x"}); err != nil || !strings.Contains(got, "x") {
		t.Fatalf("e__echo = %q, %v", got, err)
	}
	_ = cs.Close()
	if err := gw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := catalog.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no child left", func() bool {
		pids, err := proctest.Children("")
		return err == nil && len(pids) == 0
	})
}
