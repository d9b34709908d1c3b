package redisstore_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/mcpool/mcpool/internal/redistest"
	"github.com/mcpool/mcpool/redisstore"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// go-redis logs dial failures itself; the tests kill Redis on purpose.
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func newStore(t *testing.T, url string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(redisstore.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLoadSaveLockInvalidate(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newStore(t, srv.URL()), newStore(t, srv.URL())
	ctx := context.Background()

	if _, _, ok, err := a.Load(ctx, "k"); ok || err != nil {
		t.Fatalf("Load of a missing key: ok %v, err %v", ok, err)
	}
	if err := a.Save(ctx, "k", []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	v, ttl, ok, err := b.Load(ctx, "k")
	if err != nil || !ok || string(v) != "v1" || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("Load: %q %v %v %v", v, ttl, ok, err)
	}

	// A key of another type reads as absent, and Save replaces it.
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	raw.LPush(ctx, "mcpool:wrong", "x")
	if _, _, ok, err := a.Load(ctx, "wrong"); ok || err != nil {
		t.Fatalf("Load of a list key: ok %v, err %v; want absent, no error", ok, err)
	}
	if err := a.Save(ctx, "wrong", []byte("v"), time.Minute); err != nil {
		t.Fatalf("Save over a list key: %v", err)
	}

	// The lock is exclusive, and unlock frees only the holder's own lock.
	unlock, ok, err := a.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	if _, ok, err := b.TryLock(ctx, "k", time.Minute); ok || err != nil {
		t.Fatalf("second TryLock: ok %v, err %v; want refused", ok, err)
	}
	unlock()
	unlock2, ok, err := b.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock after unlock: %v %v", ok, err)
	}
	unlock() // a stale unlock must not free b's lock
	if _, ok, _ := a.TryLock(ctx, "k", time.Minute); ok {
		t.Fatal("a stale unlock freed another holder's lock")
	}
	unlock2()

	// Invalidate deletes the key and reaches every subscriber.
	got := make(chan string, 4)
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { b.Subscribe(sctx, func(k string) { got <- k }) })
	// Subscriptions are asynchronous: publish until one arrives.
	deadline := time.Now().Add(10 * time.Second)
	var k string
wait:
	for {
		if err := a.Invalidate(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		select {
		case k = <-got:
			break wait
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no invalidation reached the subscriber")
			}
		}
	}
	cancel()
	wg.Wait()
	if k != "k" {
		t.Fatalf("invalidated key %q, want k", k)
	}
	if _, _, ok, _ := b.Load(ctx, "k"); ok {
		t.Fatal("the key survived Invalidate")
	}
}

// upstream is a go-sdk demo server over loopback HTTP that counts the
// tools/list requests it answers.
type upstream struct {
	srv   *mcp.Server
	url   string
	lists atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{srv: demoserver.New(demoserver.Options{})}
	u.srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				u.lists.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	ts := httptest.NewServer(demoserver.Handler(u.srv, false, 0))
	t.Cleanup(ts.Close)
	u.url = ts.URL
	return u
}

// replica is one process's pool of the upstream, sharing the catalog
// through store.
func replica(t *testing.T, url string, store mcpool.CatalogStore) *mcpool.Pool {
	t.Helper()
	p, err := mcpool.New(mcpool.Config{
		URL: url, CatalogStore: store, CatalogKey: "demo",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func toolNames(t *testing.T, p *mcpool.Pool) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tools, err := p.ListTools(ctx)
	if err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	var names []string
	for _, tl := range tools {
		names = append(names, tl.Name)
	}
	return names
}

// Three replicas (each its own store client, as separate processes have)
// and 300 listings between them: the server answers one tools/list.
func TestReplicasShareOneFetch(t *testing.T) {
	rs := redistest.Start(t)
	up := newUpstream(t)
	var pools []*mcpool.Pool
	for range 3 {
		pools = append(pools, replica(t, up.url, newStore(t, rs.URL())))
	}
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			if names := toolNames(t, pools[i%3]); !slices.Contains(names, "echo") {
				t.Errorf("listing %d: %v has no echo", i, names)
			}
		})
	}
	wg.Wait()
	// One fetch for all. A store operation that overran its bound (a Redis
	// slowed by a loaded machine) makes its replica fall back to the server,
	// as it must: each extra fetch has to be explained by a counted error.
	var storeErrors uint64
	for _, p := range pools {
		storeErrors += p.Stats().StoreErrors
	}
	if n := up.lists.Load(); n < 1 || uint64(n) > 1+storeErrors {
		for i, p := range pools {
			t.Logf("replica %d: %+v", i, p.Stats())
		}
		t.Fatalf("server answered %d tools/list for 300 listings on 3 replicas with %d store errors, want 1", n, storeErrors)
	}
	var hits uint64
	for _, p := range pools {
		hits += p.Stats().StoreHits
	}
	if hits+storeErrors < 2 {
		t.Fatalf("StoreHits across replicas %d, want at least 2 (the replicas that did not fetch)", hits)
	}
}

// A list_changed seen by one replica reaches the others through the store:
// the second replica, which holds no session to be told itself, serves the
// new list.
func TestListChangedReachesEveryReplica(t *testing.T) {
	rs := redistest.Start(t)
	up := newUpstream(t)
	a := replica(t, up.url, newStore(t, rs.URL()))
	b := replica(t, up.url, newStore(t, rs.URL()))
	toolNames(t, a) // a connects and fetches
	toolNames(t, b) // b is served from the store: no session
	if st := b.Stats(); st.Sessions != 0 || st.StoreHits != 1 {
		t.Fatalf("replica b: %d sessions, %d store hits; want 0 and 1", st.Sessions, st.StoreHits)
	}
	// Keep a's session busy-free but alive, then change the server's list.
	mcp.AddTool(up.srv, &mcp.Tool{Name: "added"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	})
	changed := time.Now()
	deadline := changed.Add(10 * time.Second)
	for !slices.Contains(toolNames(t, b), "added") {
		if time.Now().After(deadline) {
			t.Fatal("replica b never served the changed list")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("replica b served the new list %v after the change", time.Since(changed).Round(time.Millisecond))
	if !slices.Contains(toolNames(t, a), "added") {
		t.Fatal("replica a does not serve the changed list")
	}
}

// Garbage in Redis under a list's key is ignored and overwritten.
func TestGarbageIsIgnoredAndOverwritten(t *testing.T) {
	rs := redistest.Start(t)
	up := newUpstream(t)
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer raw.Close()
	ctx := context.Background()
	raw.Set(ctx, "mcpool:catalog:demo:tools", "{not json", time.Minute)
	a := replica(t, up.url, newStore(t, rs.URL()))
	if names := toolNames(t, a); !slices.Contains(names, "echo") {
		t.Fatalf("tools %v", names)
	}
	if a.Stats().StoreHits != 0 {
		t.Fatal("garbage was served from the store")
	}
	b := replica(t, up.url, newStore(t, rs.URL()))
	if names := toolNames(t, b); !slices.Contains(names, "echo") || b.Stats().StoreHits != 1 {
		t.Fatalf("second replica: tools %v, store hits %d; want the list a saved over the garbage", names, b.Stats().StoreHits)
	}
}

// Redis killed during load: calls and listings keep working from the local
// cache and the server, the failures are counted; Redis back: sharing
// resumes.
func TestRedisDownIsNotAnOutage(t *testing.T) {
	rs := redistest.Start(t)
	up := newUpstream(t)
	a := replica(t, up.url, newStore(t, rs.URL()))
	toolNames(t, a)

	stop := make(chan struct{})
	var failed, calls atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }); wg.Wait() }
	defer halt() // before the pools close, even when the test fails
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := a.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}})
				if err == nil {
					_, err = a.ListTools(ctx)
				}
				cancel()
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					t.Errorf("call with Redis down: %v", err)
				}
			}
		})
	}
	rs.Kill()
	// Force listings to miss the local cache, so the store is tried.
	deadline := time.Now().Add(20 * time.Second)
	for a.Stats().StoreErrors == 0 {
		a.InvalidateTools()
		toolNames(t, a)
		if time.Now().After(deadline) {
			t.Fatal("no store error counted with Redis down")
		}
	}
	if st := a.Stats(); st.Store != "failing" {
		t.Fatalf("Stats.Store = %q with Redis down, want failing", st.Store)
	}
	rs.Restart()
	// Sharing resumes: the restarted Redis is empty, so a new replica
	// fetches and saves, and a later one is served from the store. a may
	// still delete the stored copy once (the invalidations it could not
	// publish while Redis was down go out when it is back), so a few new
	// replicas may have to fetch for themselves first.
	for i := 0; ; i++ {
		b := replica(t, up.url, newStore(t, rs.URL()))
		toolNames(t, b)
		if b.Stats().StoreHits == 1 {
			break
		}
		if i == 9 || time.Now().After(deadline.Add(20*time.Second)) {
			t.Fatalf("sharing did not resume after Redis came back (%d new replicas fetched for themselves)", i+1)
		}
	}
	halt()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d calls failed while Redis was down", failed.Load(), calls.Load())
	}
}

// A stalled Redis (SIGSTOP: connections open, no answer) costs an
// operation the caller's deadline, not the client's read timeout.
func TestStalledRedisKeepsTheDeadline(t *testing.T) {
	rs := redistest.Start(t)
	s := newStore(t, rs.URL())
	ctx := context.Background()
	if err := s.Save(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	rs.Pause()
	defer rs.Resume()
	for name, op := range map[string]func(context.Context) error{
		"Load":    func(ctx context.Context) error { _, _, _, err := s.Load(ctx, "k"); return err },
		"Save":    func(ctx context.Context) error { return s.Save(ctx, "k", []byte("v"), time.Minute) },
		"TryLock": func(ctx context.Context) error { _, _, err := s.TryLock(ctx, "k", time.Second); return err },
	} {
		octx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		start := time.Now()
		err := op(octx)
		cancel()
		// The client's own read timeout is 1 s (and go-redis's default 3 s):
		// returning well before it shows the context's deadline was kept.
		if err == nil || time.Since(start) > 900*time.Millisecond {
			t.Errorf("%s on a stalled Redis: %v after %v; want an error by the 250ms deadline", name, err, time.Since(start))
		}
	}
}

// A process's own invalidation comes back to it through the store's
// channel: it must not make the pool report the list changed twice.
func TestOwnInvalidationIsNotReportedTwice(t *testing.T) {
	rs := redistest.Start(t)
	up := newUpstream(t)
	type counts struct{ tools, resources atomic.Int64 }
	var ca, cb counts
	shared := newStore(t, rs.URL()) // one client, as two pools of one process share
	mk := func(c *counts) *mcpool.Pool {
		p, err := mcpool.New(mcpool.Config{
			URL: up.url, CatalogStore: shared, CatalogKey: "demo",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnListChanged: func(kind string) {
				switch kind {
				case "tools":
					c.tools.Add(1)
				case "resources":
					c.resources.Add(1)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close(context.Background()) })
		return p
	}
	a, b := mk(&ca), mk(&cb)
	toolNames(t, a) // a holds a session: the server tells it of changes
	toolNames(t, b) // b, served from the store, holds none
	wait := func(what string, cond func() bool) {
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (tools changes: a %d, b %d)", what, ca.tools.Load(), cb.tools.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	other := newStore(t, rs.URL())
	ctx := context.Background()
	// Subscriptions start asynchronously: publish a marker until a hears it.
	wait("the subscription", func() bool {
		_ = other.Invalidate(ctx, "catalog:demo:resources")
		return ca.resources.Load() > 0
	})
	mcp.AddTool(up.srv, &mcp.Tool{Name: "added"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	})
	wait("b to hear of the change through the store", func() bool { return cb.tools.Load() == 1 })
	// Another process's invalidation, then a marker: the channel delivers in
	// order, so once a has the marker it has had its own echo and the
	// other process's invalidation.
	if err := other.Invalidate(ctx, "catalog:demo:tools"); err != nil {
		t.Fatal(err)
	}
	r0 := ca.resources.Load()
	if err := other.Invalidate(ctx, "catalog:demo:resources"); err != nil {
		t.Fatal(err)
	}
	wait("the marker", func() bool { return ca.resources.Load() > r0 })
	if got := ca.tools.Load(); got != 2 {
		t.Fatalf("a reported %d tools changes for its own list_changed and another process's; want 2 (its own echo ignored)", got)
	}
	if got := cb.tools.Load(); got != 2 {
		t.Fatalf("b reported %d tools changes; want 2 (a's and the other process's)", got)
	}
}
