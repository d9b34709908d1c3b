package mcpool_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A Keyed.Close that returned ErrCloseIncomplete can be called again to
// wait for the teardown, as Pool.Close can.
func TestKeyedCloseWaitsAgain(t *testing.T) {
	proxy, url := partitionedServer(t)
	k, err := mcpool.NewKeyed(mcpool.KeyedConfig{Config: mcpool.Config{URL: url, HealthCheckInterval: -1, Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var pool *mcpool.Pool
	if err := k.With(ctx, "alice", func(ctx context.Context, p *mcpool.Pool) error { pool = p; return p.Start(ctx) }); err != nil {
		t.Fatal(err)
	}
	proxy.Stall() // the session's DELETE hangs until Heal
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := k.Close(short); !errors.Is(err, mcpool.ErrCloseIncomplete) {
		t.Fatalf("first Close against a stalled server: %v, want ErrCloseIncomplete", err)
	}
	proxy.Heal() // resets the DELETE: the teardown ends, with that error
	long, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	if err := k.Close(long); errors.Is(err, mcpool.ErrCloseIncomplete) {
		t.Fatalf("second Close did not wait for the teardown: %v", err)
	}
	if st := pool.Stats(); !st.Closed || st.Sessions != 0 || st.SessionsDestroyed != 1 {
		t.Errorf("after the second Close: %+v", st)
	}
}

// Keyed.Close returns by its ctx's deadline even while an evicted
// identity's pool is still closing against a stalled server, and a later
// Close waits for that teardown.
func TestKeyedCloseBoundedByCtxWithEvictedPool(t *testing.T) {
	proxy, url := partitionedServer(t)
	k, err := mcpool.NewKeyed(mcpool.KeyedConfig{MaxIdentities: 1, Config: mcpool.Config{URL: url, HealthCheckInterval: -1, Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var alice *mcpool.Pool
	if err := k.With(ctx, "alice", func(ctx context.Context, p *mcpool.Pool) error { alice = p; return p.Start(ctx) }); err != nil {
		t.Fatal(err)
	}
	proxy.Stall()
	// bob evicts alice: her pool closes in the background, its DELETE stalled.
	if err := k.With(ctx, "bob", func(context.Context, *mcpool.Pool) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if st := k.Stats(); st.Evicted != 1 {
		t.Fatalf("alice was not evicted: %+v", st)
	}
	eventually(t, "alice's pool closing", func() bool { return alice.Stats().Closed })
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := k.Close(short); !errors.Is(err, mcpool.ErrCloseIncomplete) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with the evicted pool still closing: %v, want ErrCloseIncomplete by the ctx's deadline", err)
	}
	proxy.Heal()
	long, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	if err := k.Close(long); errors.Is(err, mcpool.ErrCloseIncomplete) {
		t.Fatalf("second Close did not wait for the evicted pool: %v", err)
	}
	if st := alice.Stats(); st.Sessions != 0 || st.SessionsDestroyed != 1 {
		t.Errorf("alice's pool after the second Close: %+v", st)
	}
}

// Before: ForIdentity got a shallow copy of the template, so a header one
// identity set reached every identity made after it.
func TestKeyedTemplateIsNotShared(t *testing.T) {
	var mu sync.Mutex
	leaked := map[string]bool{}
	h := demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if v := r.Header.Get("X-Tenant"); v != "" && r.Header.Get("X-Who") == "anon" {
			leaked[v] = true
		}
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	k, err := mcpool.NewKeyed(mcpool.KeyedConfig{
		Config: mcpool.Config{URL: ts.URL, Headers: http.Header{"X-Base": {"1"}}},
		ForIdentity: func(id string, cfg *mcpool.Config) error {
			cfg.Headers.Set("X-Who", id)
			if id != "anon" {
				cfg.Headers.Set("X-Tenant", "secret-of-"+id)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(context.Background())
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}}
	for _, id := range []string{"alice", "anon"} {
		if _, err := k.CallTool(ctx, id, params); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Fatalf("anon's requests carried another identity's header: %v", leaked)
	}
}
