package mcpool_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// listGate counts tools/list requests at the server and can hold them.
type listGate struct {
	lists atomic.Int64
	hold  chan struct{} // nil: let requests through
}

func (g *listGate) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "tools/list" {
			g.lists.Add(1)
			if g.hold != nil {
				<-g.hold
			}
		}
		return next(ctx, method, req)
	}
}

func catalogPool(t *testing.T, pageSize int, ttl time.Duration, g *listGate) (*mcpool.Pool, *mcp.Server) {
	srv := demoserver.New(demoserver.Options{PageSize: pageSize})
	srv.AddReceivingMiddleware(g.middleware)
	nt, _ := inMemory(srv)
	return newPool(t, mcpool.Config{NewTransport: nt, ToolCacheTTL: ttl}), srv
}

func toolNames(tools []*mcp.Tool) []string {
	var names []string
	for _, t := range tools {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	return names
}

// ListTools walks every page (3 tools, one per page) and then serves from
// the cache.
func TestListToolsPaginatesAndCaches(t *testing.T) {
	ctx := context.Background()
	g := &listGate{}
	p, _ := catalogPool(t, 1, time.Hour, g)
	tools, err := p.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(tools); !slices.Equal(got, []string{"echo", "sleep", "structured"}) {
		t.Fatalf("tools %v", got)
	}
	if n := g.lists.Load(); n != 3 {
		t.Fatalf("%d tools/list requests, want 3 pages", n)
	}
	for range 5 {
		if _, err := p.ListTools(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.lists.Load(); n != 3 {
		t.Fatalf("cached ListTools went to the server: %d requests", n)
	}
	st := p.Stats()
	if st.CacheHits != 5 || st.CacheMisses != 1 || st.CacheHitRate != 5.0/6 {
		t.Fatalf("cache stats %+v", st)
	}
	tool, err := p.Tool(ctx, "echo")
	if err != nil || tool == nil || tool.Annotations == nil || !tool.Annotations.ReadOnlyHint {
		t.Fatalf("Tool(echo) = %+v, %v", tool, err)
	}
	if tool, err := p.Tool(ctx, "nope"); tool != nil || err != nil {
		t.Fatalf("Tool(nope) = %v, %v", tool, err)
	}
	p.InvalidateTools()
	if _, err := p.ListTools(ctx); err != nil {
		t.Fatal(err)
	}
	if n := g.lists.Load(); n != 6 {
		t.Fatalf("after InvalidateTools: %d requests, want 6", n)
	}
}

// Concurrent callers on a miss share one fetch, and a caller that gives up
// does not fail the others.
func TestListToolsSharedFetch(t *testing.T) {
	g := &listGate{hold: make(chan struct{})}
	p, _ := catalogPool(t, 0, time.Hour, g)
	const callers = 50
	quitter, quit := context.WithCancel(context.Background())
	quitErr := make(chan error, 1)
	go func() { _, err := p.ListTools(quitter); quitErr <- err }()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			tools, err := p.ListTools(context.Background())
			if err != nil || len(tools) != 3 {
				t.Errorf("ListTools: %d tools, %v", len(tools), err)
			}
		})
	}
	eventually(t, "every caller on the fetch", func() bool { return p.Stats().CacheMisses == callers+1 })
	eventually(t, "the fetch at the server", func() bool { return g.lists.Load() == 1 })
	quit()
	mustIs(t, <-quitErr, context.Canceled)
	close(g.hold)
	wg.Wait()
	if n := g.lists.Load(); n != 1 {
		t.Fatalf("%d tools/list requests for %d concurrent callers, want 1", n, callers)
	}
}

// A tool added at run time reaches ListTools through
// notifications/tools/list_changed, long before the TTL.
func TestListToolsInvalidatedByListChanged(t *testing.T) {
	ctx := context.Background()
	g := &listGate{}
	for _, transport := range []string{"memory", "http"} {
		t.Run(transport, func(t *testing.T) {
			srv := demoserver.New(demoserver.Options{})
			srv.AddReceivingMiddleware(g.middleware)
			cfg := mcpool.Config{ToolCacheTTL: time.Hour}
			if transport == "http" {
				cfg.URL = httpServer(t, srv, false)
			} else {
				cfg.NewTransport, _ = inMemory(srv)
			}
			p := newPool(t, cfg)
			tools, err := p.ListTools(ctx)
			if err != nil || len(tools) != 3 {
				t.Fatalf("ListTools: %d, %v", len(tools), err)
			}
			srv.AddTool(&mcp.Tool{Name: "added", InputSchema: map[string]any{"type": "object"}},
				func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return &mcp.CallToolResult{}, nil
				})
			eventually(t, "the added tool in the catalog", func() bool {
				tools, err := p.ListTools(ctx)
				return err == nil && slices.Contains(toolNames(tools), "added")
			})
		})
	}
}

func TestListToolsTTL(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		ttl  time.Duration
		want int64
	}{{30 * time.Millisecond, 2}, {-1, 3}} {
		g := &listGate{}
		p, _ := catalogPool(t, 0, tc.ttl, g)
		if _, err := p.ListTools(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := p.ListTools(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond) // past the TTL: a time-based contract
		if _, err := p.ListTools(ctx); err != nil {
			t.Fatal(err)
		}
		if n := g.lists.Load(); n != tc.want {
			t.Fatalf("TTL %v: %d fetches, want %d", tc.ttl, n, tc.want)
		}
	}
}

// Prompts and resources are cached like tools and invalidated by their own
// list_changed; OnCatalogChange reports what changed.
func TestPromptsResourcesAndCatalogChanges(t *testing.T) {
	ctx := context.Background()
	srv := demoserver.New(demoserver.Options{})
	srv.AddPrompt(&mcp.Prompt{Name: "greet"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{}, nil
	})
	srv.AddResource(&mcp.Resource{URI: "mem://one", Name: "one"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{}, nil
	})
	var mu sync.Mutex
	var changes []mcpool.CatalogChange
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt, ToolCacheTTL: time.Hour, OnCatalogChange: func(c mcpool.CatalogChange) {
		mu.Lock()
		changes = append(changes, c)
		mu.Unlock()
	}})
	for range 2 {
		prompts, err := p.ListPrompts(ctx)
		if err != nil || len(prompts) != 1 {
			t.Fatalf("ListPrompts: %d, %v", len(prompts), err)
		}
		res, err := p.ListResources(ctx)
		if err != nil || len(res) != 1 {
			t.Fatalf("ListResources: %d, %v", len(res), err)
		}
		if _, err := p.ListTools(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.CacheHits != 3 || st.CacheMisses != 3 {
		t.Fatalf("cache stats %+v", st)
	}
	srv.AddPrompt(&mcp.Prompt{Name: "bye"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{}, nil
	})
	eventually(t, "the new prompt listed", func() bool {
		prompts, err := p.ListPrompts(ctx)
		return err == nil && len(prompts) == 2
	})
	srv.RemoveTools("sleep")
	srv.AddTool(&mcp.Tool{Name: "echo", Description: "changed", InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	eventually(t, "the tool changes listed", func() bool {
		tools, err := p.ListTools(ctx)
		return err == nil && !slices.Contains(toolNames(tools), "sleep")
	})
	mu.Lock()
	defer mu.Unlock()
	var sawPrompt, sawTools bool
	for _, c := range changes {
		if c.Kind == "prompts" && slices.Equal(c.Added, []string{"bye"}) {
			sawPrompt = true
		}
		if c.Kind == "tools" && slices.Contains(c.Removed, "sleep") {
			sawTools = true
		}
	}
	if !sawPrompt || !sawTools {
		t.Fatalf("changes reported: %+v", changes)
	}
}

// The server's ttlMs (2026-07-28) shortens the cache when it is shorter
// than ToolCacheTTL.
func TestServerTTLIsHonoured(t *testing.T) {
	ctx := context.Background()
	g := &listGate{}
	srv := demoserver.New(demoserver.Options{})
	srv.AddReceivingMiddleware(g.middleware, func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if lt, ok := res.(*mcp.ListToolsResult); ok {
				lt.TTLMs = 30
			}
			return res, err
		}
	})
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt, ToolCacheTTL: time.Hour})
	if _, err := p.ListTools(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ListTools(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(40 * time.Millisecond) // past the server's ttlMs: a time-based contract
	if _, err := p.ListTools(ctx); err != nil {
		t.Fatal(err)
	}
	if n := g.lists.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (the server's 30ms ttl, not the pool's hour)", n)
	}
}

// A new session that reports another server name or version empties the
// catalog: the server behind the address changed.
func TestServerChangeInvalidatesCatalog(t *testing.T) {
	ctx := context.Background()
	var version atomic.Int64
	version.Store(1)
	newServer := func() mcp.Transport {
		srv := mcp.NewServer(&mcp.Implementation{Name: "svc", Version: fmt.Sprint(version.Load())}, nil)
		srv.AddTool(&mcp.Tool{Name: fmt.Sprintf("v%d", version.Load()), InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{}, nil
			})
		ct, st := mcp.NewInMemoryTransports()
		if _, err := srv.Connect(ctx, st, nil); err != nil {
			t.Error(err)
		}
		return ct
	}
	p := newPool(t, mcpool.Config{
		NewTransport: func(context.Context) (mcp.Transport, error) { return newServer(), nil },
		MaxSessions:  2, MaxCallsPerSession: 1, ToolCacheTTL: time.Hour,
	})
	if _, err := p.ListTools(ctx); err != nil {
		t.Fatal(err)
	}
	version.Store(2)
	a, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire(ctx) // the second session meets version 2
	if err != nil {
		t.Fatal(err)
	}
	a.Release()
	b.Release()
	if st := p.Stats(); st.CacheInvalidations != 3 { // tools, prompts, resources
		t.Fatalf("server change not noticed: %+v", st)
	}
}

// endlessLister returns a go-sdk server whose tools/list never ends: every
// page has one tool and a next cursor, from next(page number). It counts
// the pages asked for. If block is set, each page waits for its request to
// be cancelled (and records that) or for release.
type endlessLister struct {
	pages     atomic.Int64
	cancelled atomic.Int64
	block     bool
	release   chan struct{}
}

func (e *endlessLister) server(next func(n int64) string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "endless", Version: "1"}, nil)
	srv.AddReceivingMiddleware(func(h mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != "tools/list" {
				return h(ctx, method, req)
			}
			n := e.pages.Add(1)
			if e.block {
				select {
				case <-ctx.Done():
					e.cancelled.Add(1)
					return nil, ctx.Err()
				case <-e.release:
				}
			}
			tool := &mcp.Tool{Name: fmt.Sprintf("t%d", n), InputSchema: map[string]any{"type": "object"}}
			return &mcp.ListToolsResult{Tools: []*mcp.Tool{tool}, NextCursor: next(n)}, nil
		}
	})
	return srv
}

// A server that always returns a new next cursor: the listing stops after
// MaxListPages pages with a typed error.
func TestListPageLimit(t *testing.T) {
	e := &endlessLister{}
	srv := e.server(func(n int64) string { return fmt.Sprintf("page-%d", n+1) })
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt, MaxListPages: 5})
	_, err := p.ListTools(context.Background())
	var le *mcpool.ListTooLongError
	if !errors.As(err, &le) || le.Pages != 5 || le.Kind != "tools" || le.RepeatedCursor != "" {
		t.Fatalf("want a ListTooLongError after 5 pages, got %T: %v", err, err)
	}
	mustIs(t, err, mcpool.ErrListTooLong)
	if got := e.pages.Load(); got != 5 {
		t.Fatalf("the server was asked for %d pages, want 5", got)
	}
	// The session answered well: it is not blamed.
	if st := p.Stats(); st.Deaths != 0 || st.Sessions != 1 {
		t.Fatalf("stats after a runaway listing: %+v", st)
	}
}

// A server that sends the same cursor again: the listing stops at once.
func TestListRepeatedCursor(t *testing.T) {
	e := &endlessLister{}
	srv := e.server(func(int64) string { return "same" })
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt})
	_, err := p.ListTools(context.Background())
	var le *mcpool.ListTooLongError
	if !errors.As(err, &le) || le.RepeatedCursor != "same" || le.Pages != 2 {
		t.Fatalf("want a ListTooLongError for the repeated cursor after 2 pages, got %T: %v", err, err)
	}
}

// The default limit holds too (the fetch does not run on for ever).
func TestListDefaultPageLimit(t *testing.T) {
	e := &endlessLister{}
	srv := e.server(func(n int64) string { return fmt.Sprintf("page-%d", n+1) })
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt})
	_, err := p.ListTools(context.Background())
	mustIs(t, err, mcpool.ErrListTooLong)
	if got := e.pages.Load(); got != mcpool.DefaultMaxListPages {
		t.Fatalf("pages %d, want %d", got, mcpool.DefaultMaxListPages)
	}
}

// A shared fetch whose only caller gave up stops: the page it was waiting
// for is cancelled, and no further page is asked for.
func TestListAbandonedFetchStops(t *testing.T) {
	e := &endlessLister{block: true, release: make(chan struct{})}
	srv := e.server(func(n int64) string { return fmt.Sprintf("page-%d", n+1) })
	nt, _ := inMemory(srv)
	p := newPool(t, mcpool.Config{NewTransport: nt, MaxListPages: 1 << 30})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := p.ListTools(ctx); errc <- err }()
	eventually(t, "the first page asked for", func() bool { return e.pages.Load() == 1 })
	cancel()
	mustIs(t, <-errc, context.Canceled)
	eventually(t, "the abandoned fetch cancelling its page", func() bool { return e.cancelled.Load() == 1 })
	if got := e.pages.Load(); got != 1 {
		t.Fatalf("the stopped fetch asked for %d pages, want 1", got)
	}
	close(e.release)
}

// A list the caller gives up on while the server's connects fail says why,
// as a call does: a *ConnectError with the last failure that also matches
// the caller's ctx error, not that error alone.
func TestListToolsServerDownSaysWhy(t *testing.T) {
	p := newPool(t, mcpool.Config{URL: "http://127.0.0.1:1/mcp", Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := p.ListTools(ctx)
		errc <- err
	}()
	eventually(t, "a failed connect", func() bool { return p.Stats().ConnectErrors > 0 })
	cancel()
	err := <-errc
	mustIs(t, err, mcpool.ErrConnectFailed)
	mustIs(t, err, context.Canceled)
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("%v: does not say what the connects met", err)
	}
}

// A server that declares neither prompts nor resources is not asked for
// them (MCP: a client uses only what its server declared): both lists are
// empty, without a request or an error, over either protocol era.
func TestUndeclaredListsNotAsked(t *testing.T) {
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			srv := mcp.NewServer(&mcp.Implementation{Name: "tools-only", Version: "1"}, nil)
			mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{}, nil, nil
			})
			var asked atomic.Int64
			srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
				return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
					if method == "prompts/list" || method == "resources/list" {
						asked.Add(1)
					}
					return next(ctx, method, req)
				}
			})
			p := newPool(t, mcpool.Config{URL: httpServer(t, srv, false), ProtocolVersion: version, Logger: quiet})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for range 3 {
				prompts, perr := p.ListPrompts(ctx)
				resources, rerr := p.ListResources(ctx)
				if perr != nil || rerr != nil || len(prompts)+len(resources) != 0 {
					t.Fatalf("ListPrompts = %v, %v; ListResources = %v, %v; want empty lists", prompts, perr, resources, rerr)
				}
			}
			if n := asked.Load(); n != 0 {
				t.Errorf("the server was asked for lists it did not declare %d times", n)
			}
			if st := p.Stats(); st.Errors != 0 {
				t.Errorf("Stats().Errors = %d; want 0", st.Errors)
			}
		})
	}
}
