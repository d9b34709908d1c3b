package gateway_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/config"
	"github.com/mcpool/mcpool/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A reload under load: 16 callers call the servers that stay while one
// server is added, one removed (with a call in flight) and one changed (its
// URL, to another live server). No call to a server that stays fails, the
// added server is listed within a second, downstream sessions hear
// tools/list_changed, and the removed server's call in flight finishes.
func TestReloadUnderLoad(t *testing.T) {
	gone := newGate()
	settings := map[string]config.GatewayServer{
		"a":    {Mode: config.ModeShared},
		"b":    {Mode: config.ModeShared},
		"gone": {Mode: config.ModeShared},
		"iso":  {Mode: config.ModeIsolated},
		"new":  {Mode: config.ModeShared},
	}
	bURL2 := demoURL(t)
	gc := &mcpool.GroupConfig{Logger: quiet(), Servers: []mcpool.ServerConfig{
		{Name: "a", Config: mcpool.Config{URL: demoURL(t)}},
		{Name: "b", Config: mcpool.Config{URL: demoURL(t)}},
		{Name: "gone", Config: mcpool.Config{URL: gone.url(t)}},
		{Name: "iso", Config: mcpool.Config{URL: demoURL(t)}},
	}}
	group, err := mcpool.NewGroup(*gc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = group.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := group.Start(ctx); err != nil {
		t.Fatal(err)
	}
	naming, err := gc.Naming()
	if err != nil {
		t.Fatal(err)
	}
	gw, url := startGateway(t, gateway.Options{Servers: gateway.GroupServers(group, gc, settings), Naming: naming})

	var listChanged atomic.Int64
	watcher := connect(t, url, "2025-11-25", &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { listChanged.Add(1) }})

	// The removed server's call in flight.
	blocked := make(chan error, 1)
	go func() {
		got, err := call(ctx, watcher, "gone__block", map[string]any{})
		if err == nil && got != "done" {
			err = fmt.Errorf("gone__block answered %q", got)
		}
		blocked <- err
	}()
	eventually(t, "the call to the removed server to be in flight", func() bool { return gone.running.Load() == 1 })

	// 16 callers, each with its own downstream session (2025-11-25, so
	// that isolated calls keep their upstream session), on a, b and iso.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	for i := range 16 {
		cs := connect(t, url, "2025-11-25", nil)
		tool := []string{"a__echo", "b__echo", "iso__echo", "a__echo"}[i%4]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got, err := call(ctx, cs, tool, map[string]any{"message": "m"}); err != nil || got != "m" {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %q, %v", tool, got, err))
				}
				calls.Add(1)
			}
		})
	}
	eventually(t, "calls under way", func() bool { return calls.Load() > 64 })

	next := &mcpool.GroupConfig{Logger: quiet(), Servers: []mcpool.ServerConfig{
		{Name: "a", Config: gc.Servers[0].Config},
		{Name: "b", Config: mcpool.Config{URL: bURL2}},
		{Name: "iso", Config: gc.Servers[3].Config},
		{Name: "new", Config: mcpool.Config{URL: demoURL(t)}},
	}}
	nextNaming, err := next.Naming()
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	upd, err := group.Update(ctx, *next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(upd.Added, []string{"new"}) || !slices.Equal(upd.Removed, []string{"gone"}) || !slices.Equal(upd.Replaced, []string{"b"}) {
		t.Fatalf("update added %v, removed %v, replaced %v; want [new], [gone], [b]", upd.Added, upd.Removed, upd.Replaced)
	}
	reloaded := make(chan error, 1)
	before := calls.Load()
	go func() { reloaded <- gw.Reload(ctx, gateway.GroupServers(group, next, settings), nextNaming) }()

	eventually(t, "new__echo listed", func() bool {
		res, err := watcher.ListTools(ctx, nil)
		return err == nil && slices.ContainsFunc(res.Tools, func(tl *mcp.Tool) bool { return tl.Name == "new__echo" })
	})
	// How soon is a figure (measured with -v in cmd/mcpool's
	// TestGatewayReloadOnSIGHUP), not a bound a loaded machine could miss.
	_ = began
	eventually(t, "tools/list_changed", func() bool { return listChanged.Load() > 0 })
	if got, err := call(ctx, watcher, "new__echo", map[string]any{"message": "hi"}); err != nil || got != "hi" {
		t.Errorf("new__echo: %q, %v", got, err)
	}
	select {
	case err := <-reloaded:
		t.Fatalf("Reload returned (%v) while a call to the removed server was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	gone.release()
	if err := <-blocked; err != nil {
		t.Errorf("the removed server's call in flight: %v", err)
	}
	if err := <-reloaded; err != nil {
		t.Errorf("Reload: %v", err)
	}
	if err := upd.Close(ctx); err != nil {
		t.Errorf("closing the old servers: %v", err)
	}
	eventually(t, "calls after the reload", func() bool { return calls.Load() > before+64 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d calls to the servers that stay failed; first: %v", n, calls.Load(), firstErr.Load())
	}
	if st := group.Server("b").ServerStats(); st.Replicas[0].Target != bURL2 || st.Replicas[0].Pool.Acquires == 0 {
		t.Errorf("b after the reload: %s with %d calls; want %s with some", st.Replicas[0].Target, st.Replicas[0].Pool.Acquires, bURL2)
	}
	if _, err := call(ctx, watcher, "gone__block", map[string]any{}); rpcCode(err) != gateway.CodeUnknownName {
		t.Errorf("call to the removed server: %v; want code %d", err, gateway.CodeUnknownName)
	}
	var names []string
	for _, s := range gw.Status().Servers {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"a", "b", "iso", "new"}) {
		t.Errorf("status lists %v", names)
	}
}

// A reload the gateway cannot take leaves its servers as they are.
func TestReloadInvalidKeepsServers(t *testing.T) {
	p := newPool(t, mcpool.Config{URL: demoURL(t)})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, servers := range [][]gateway.Server{
		nil,
		{{Name: "demo", Mode: gateway.ModeShared}}, // no Upstream
		{{Name: "demo", Mode: "sideways", Upstream: gateway.PoolUpstream(p)}},
		{{Name: "x", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}, {Name: "x", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}},
	} {
		if err := gw.Reload(ctx, servers, nil); err == nil {
			t.Errorf("Reload(%+v) succeeded", servers)
		}
	}
	other := &mcpool.GroupConfig{Servers: []mcpool.ServerConfig{{Name: "other"}}}
	naming, _ := other.Naming()
	if err := gw.Reload(ctx, []gateway.Server{{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}, naming); err == nil || !strings.Contains(err.Error(), "Naming") {
		t.Errorf("Reload with a naming without the server: %v", err)
	}
	cs := connect(t, url, "", nil)
	if got, err := call(ctx, cs, "demo__echo", map[string]any{"message": "still"}); err != nil || got != "still" {
		t.Errorf("after the refused reloads: %q, %v", got, err)
	}
	// The same servers again: nothing changes, nothing is closed.
	if err := gw.Reload(ctx, []gateway.Server{{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := call(ctx, cs, "demo__echo", map[string]any{"message": "same"}); err != nil || got != "same" {
		t.Errorf("after an unchanged reload: %q, %v", got, err)
	}
}

// A reload that only tightens a server's tool policy takes effect: the
// denied tool leaves the list and its calls are refused as unknown.
func TestReloadAppliesPolicy(t *testing.T) {
	pool := newPool(t, mcpool.Config{URL: demoURL(t)})
	server := gateway.Server{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(pool)}
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{server}})
	cs := connect(t, url, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := call(ctx, cs, "demo__echo", map[string]any{"message": "hi"}); err != nil {
		t.Fatalf("demo__echo before the reload: %v", err)
	}
	server.Tools = gateway.ToolPolicy{Deny: []string{"echo"}}
	if err := gw.Reload(ctx, []gateway.Server{server}, nil); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(res.Tools, func(tl *mcp.Tool) bool { return tl.Name == "demo__echo" }) {
		t.Error("demo__echo still listed after a reload that denies it")
	}
	if _, err := call(ctx, cs, "demo__echo", map[string]any{"message": "hi"}); rpcCode(err) != gateway.CodeUnknownName {
		t.Errorf("demo__echo after the reload: %v; want code %d as for an unknown tool", err, gateway.CodeUnknownName)
	}
}

// The instructions a client reads when it connects name the servers served
// now, after a Reload as before it, in both protocol eras (initialize,
// server/discover).
func TestReloadUpdatesInstructions(t *testing.T) {
	p := newPool(t, mcpool.Config{URL: demoURL(t)})
	q := newPool(t, mcpool.Config{URL: demoURL(t)})
	gw, url := startGateway(t, gateway.Options{Servers: []gateway.Server{{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, version := range []string{"2025-11-25", ""} {
		if got := connect(t, url, version, nil).InitializeResult().Instructions; !strings.Contains(got, "demo") || strings.Contains(got, "added") {
			t.Errorf("%q before the reload: instructions %q, want the demo server's only", version, got)
		}
	}
	if err := gw.Reload(ctx, []gateway.Server{
		{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)},
		{Name: "added", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(q)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	for _, version := range []string{"2025-11-25", ""} {
		if got := connect(t, url, version, nil).InitializeResult().Instructions; !strings.Contains(got, "added") {
			t.Errorf("%q after the reload: instructions %q do not name the server added", version, got)
		}
	}
}
