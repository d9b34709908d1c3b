package gateway_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/gateway"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/mcpool/mcpool/internal/redistest"
	"github.com/mcpool/mcpool/redisstore"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// countedDemo serves the demo server over HTTP and counts the tools/list
// requests it answers.
func countedDemo(t *testing.T) (*mcp.Server, string, *atomic.Int64) {
	t.Helper()
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
	ts := httptest.NewServer(demoserver.Handler(s, false, 0))
	t.Cleanup(func() { closePeer(s, ts) })
	return s, ts.URL, &lists
}

// gatewayReplica is one gateway process of several: its own pool of the
// upstream and, with redisURL, its own client of the shared catalog store.
type gatewayReplica struct {
	gw   *gateway.Gateway
	url  string
	pool *mcpool.Pool
}

func startReplica(t *testing.T, upstream, redisURL string) *gatewayReplica {
	t.Helper()
	cfg := mcpool.Config{URL: upstream, Logger: quiet()}
	if redisURL != "" {
		store, err := redisstore.New(redisstore.Options{URL: redisURL})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		cfg.CatalogStore, cfg.CatalogKey = store, "server:demo"
	}
	// The pool tells the gateway of list changes, as the command wires a
	// Group's OnListChanged.
	var gw atomic.Pointer[gateway.Gateway]
	cfg.OnListChanged = func(kind string) {
		if g := gw.Load(); g != nil {
			g.ListChanged("demo", kind)
		}
	}
	p := newPool(t, cfg)
	g, url := startGateway(t, gateway.Options{
		Servers:     []gateway.Server{{Name: "demo", Mode: gateway.ModeShared, Upstream: gateway.PoolUpstream(p)}},
		Stateless:   true,
		CatalogPoll: 50 * time.Millisecond,
	})
	gw.Store(g)
	return &gatewayReplica{gw: g, url: url, pool: p}
}

func listNames(ctx context.Context, t *testing.T, url string) []string {
	t.Helper()
	cs := connect(t, url, "2025-11-25", nil)
	defer cs.Close()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Errorf("tools/list: %v", err)
		return nil
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// Three gateway replicas and 300 downstream sessions spread across them,
// each listing tools: with the catalog shared through Redis the server
// answers one tools/list; without, one per replica.
func TestReplicasShareTheCatalogThroughRedis(t *testing.T) {
	rs := redistest.Start(t)
	for _, shared := range []bool{true, false} {
		name := map[bool]string{true: "redis", false: "alone"}[shared]
		t.Run(name, func(t *testing.T) {
			_, upstream, lists := countedDemo(t)
			redisURL := ""
			if shared {
				redisURL = rs.URL()
			}
			var replicas []*gatewayReplica
			for range 3 {
				replicas = append(replicas, startReplica(t, upstream, redisURL))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			sem := make(chan struct{}, 16)
			for i := range 300 {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					if names := listNames(ctx, t, replicas[i%3].url); !slices.Contains(names, "demo__echo") {
						t.Errorf("session %d listed %v", i, names)
					}
				})
			}
			wg.Wait()
			var storeErrors uint64
			for _, r := range replicas {
				storeErrors += r.gw.Status().StoreErrors
			}
			got := lists.Load()
			t.Logf("%s: the server answered %d tools/list for 300 sessions on 3 replicas (%d store errors)", name, got, storeErrors)
			want := int64(3)
			if shared {
				// A store operation past its bound (a loaded machine) makes
				// a replica fetch for itself, as it must: each extra fetch
				// has to be explained by a counted error.
				if got < 1 || uint64(got) > 1+storeErrors {
					t.Fatalf("server answered %d tools/list, want 1 (store errors %d)", got, storeErrors)
				}
				if st := replicas[0].gw.Status(); st.Store == "" {
					t.Fatalf("status reports no catalog store: %+v", st)
				}
				return
			}
			if got != want {
				t.Fatalf("server answered %d tools/list without Redis, want %d (one per replica)", got, want)
			}
		})
	}
}

// An upstream list_changed reaches every replica's downstream listing.
func TestListChangedReachesEveryGatewayReplica(t *testing.T) {
	rs := redistest.Start(t)
	srv, upstream, _ := countedDemo(t)
	var replicas []*gatewayReplica
	for range 3 {
		replicas = append(replicas, startReplica(t, upstream, rs.URL()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mcp.AddTool(srv, &mcp.Tool{Name: "added"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	})
	changed := time.Now()
	for i, r := range replicas {
		eventually(t, "the new tool on every replica", func() bool {
			return slices.Contains(listNames(ctx, t, r.url), "demo__added")
		})
		t.Logf("replica %d served the new list %v after the change", i, time.Since(changed).Round(time.Millisecond))
	}
}

// Redis killed during load: no call fails, the status page shows the
// fallback; Redis restarted: sharing resumes.
func TestRedisDownGatewayKeepsServing(t *testing.T) {
	rs := redistest.Start(t)
	_, upstream, _ := countedDemo(t)
	a := startReplica(t, upstream, rs.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }); wg.Wait() }
	defer halt()
	var calls, failed atomic.Int64
	for range 4 {
		wg.Go(func() {
			cs := connect(t, a.url, "2025-11-25", nil)
			for {
				select {
				case <-stop:
					return
				default:
				}
				calls.Add(1)
				if _, err := call(ctx, cs, "demo__echo", map[string]any{"message": "x"}); err != nil {
					failed.Add(1)
					t.Errorf("call with Redis down: %v", err)
					return
				}
				if _, err := cs.ListTools(ctx, nil); err != nil {
					failed.Add(1)
					t.Errorf("tools/list with Redis down: %v", err)
					return
				}
			}
		})
	}
	rs.Kill()
	// The gateway's catalog watcher lists every 50ms; an emptied cache
	// sends it to the store, which fails.
	eventually(t, "a store error on the status page", func() bool {
		a.pool.InvalidateTools()
		st := a.gw.Status()
		return st.StoreErrors > 0 && st.Store == "failing"
	})
	rs.Restart()
	// Sharing resumes: Redis came back empty, so a new replica fetches and
	// saves the list and a later one reads it from the store (a few may
	// fetch first: a publishes the invalidations it could not send while
	// Redis was down).
	for i := 0; ; i++ {
		r := startReplica(t, upstream, rs.URL())
		if r.gw.Status().StoreHits > 0 {
			break
		}
		if i == 9 {
			t.Fatal("sharing did not resume after Redis came back")
		}
	}
	halt()
	if failed.Load() != 0 || calls.Load() == 0 {
		t.Fatalf("%d of %d calls failed with Redis down", failed.Load(), calls.Load())
	}
}

// Isolated sessions are per client: server-everything's list_changed on
// every new session is that session's own and must not invalidate the
// catalog the replicas share.
func TestIsolatedSessionsDoNotInvalidateTheSharedCatalog(t *testing.T) {
	rs := redistest.Start(t)
	store, err := redisstore.New(redisstore.Options{URL: rs.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := mcpool.Config{Command: everythingStdio(t), CatalogStore: store, CatalogKey: "server:every", Logger: quiet()}
	_, url := startGateway(t, gateway.Options{
		Servers:   []gateway.Server{{Name: "every", Mode: gateway.ModeIsolated, Config: cfg, Upstream: gateway.PoolUpstream(newPool(t, cfg))}},
		Stateless: true,
	})
	// Everything published on the invalidation channel, as another
	// replica would hear it.
	heard := make(chan string, 64)
	sctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { store.Subscribe(sctx, func(k string) { heard <- k }) })
	defer func() { stop(); wg.Wait() }()
	marker := func(key string) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if err := store.Invalidate(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			select {
			case k := <-heard:
				if k == key {
					return
				}
				t.Fatalf("an isolated session published an invalidation of %q", k)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("the marker never came back")
			}
		}
	}
	marker("marker:start")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 3 {
		cs := connect(t, url, "2025-11-25", nil)
		if _, err := call(ctx, cs, "every__echo", map[string]any{"message": "x"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		cs.Close()
	}
	marker("marker:end") // fails if anything else was published meanwhile
}
