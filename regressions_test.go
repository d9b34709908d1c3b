package mcpool_test

// Regression tests for defects a code review found (each names what went
// wrong before the fix).

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpool/mcpool"
	"github.com/mcpool/mcpool/internal/demoserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Before: with the breaker half-open and its one probe connect out, the
// loops that start connects spun under the pool's lock until the probe
// ended, so Stats (and every Acquire) blocked for seconds.
func TestHalfOpenBreakerDoesNotSpin(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	var n atomic.Int64
	probing := make(chan struct{})
	release := make(chan struct{})
	p := newPool(t, mcpool.Config{
		NewTransport: func(ctx context.Context) (mcp.Transport, error) {
			switch n.Add(1) {
			case 1:
				return nil, errors.New("refused")
			case 2: // the half-open probe connect: a slow handshake
				close(probing)
				<-release
			}
			ct, st := mcp.NewInMemoryTransports()
			if _, err := srv.Connect(ctx, st, nil); err != nil {
				return nil, err
			}
			return ct, nil
		},
		MinSessions: 1, MaxSessions: 4, MaxCallsPerSession: 1, AcquireTimeout: -1,
		FailureThreshold: 1, BreakerOpenAfter: -1, BreakerCooldown: 20 * time.Millisecond, BackoffInitial: time.Millisecond,
		HealthCheckInterval: -1,
	})
	_ = p.Start(context.Background()) // fails: the breaker opens
	<-probing                         // cool-down passed; the probe connect hangs
	// Waiters now outnumber what the one probe connect will bring.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			l, err := p.Acquire(context.Background())
			if err == nil {
				l.Release()
			}
		})
	}
	eventually(t, "waiters queued", func() bool { return p.Stats().Waiters == 3 })
	start := time.Now()
	for range 20 {
		p.Stats()
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("20 Stats calls took %v: the pool's lock is held by a spinning loop", took)
	}
	close(release)
	wg.Wait()
}

// Before: a session that died right after connecting reset the failure
// count, so a server that accepts initialize and drops the session at once
// got a tight reconnect loop (48 connects a second), with no backoff and no
// breaker.
func TestFlappingSessionsBackOff(t *testing.T) {
	srv := demoserver.New(demoserver.Options{})
	var connects atomic.Int64
	var last atomic.Pointer[mcp.ServerSession]
	p := newPool(t, mcpool.Config{
		NewTransport: func(ctx context.Context) (mcp.Transport, error) {
			connects.Add(1)
			ct, st := mcp.NewInMemoryTransports()
			ss, err := srv.Connect(ctx, st, nil)
			if err != nil {
				return nil, err
			}
			go func() { _ = ss.Wait() }()
			last.Store(ss)
			return ct, nil
		},
		MinSessions: 1, HealthCheckInterval: -1, FailureThreshold: 3, BreakerOpenAfter: -1, BreakerCooldown: time.Hour,
		BackoffInitial: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		// 2025-11-25: a 2026-07-28 client opens subscriptions/listen right
		// after connecting, and go-sdk v1.8.0's ServerSession.Close can
		// deadlock against a listen arriving at that moment (Close cancels
		// the listens it knows of, then waits for every request in flight),
		// so the server's drop would never reach the client.
		ProtocolVersion: "2025-11-25",
	})
	// The server drops each session as soon as the handshake is over: the
	// moment the pool reports the connect done (a timer started with the
	// transport could fire mid-handshake on a loaded machine).
	p.Observe(mcpool.Observer{Connect: func(e mcpool.ConnectEvent) {
		if ss := last.Load(); e.Err == nil && ss != nil {
			go ss.Close()
		}
	}})
	_ = p.Start(context.Background())
	eventually(t, "the breaker to open on flapping sessions", func() bool { return p.Stats().Breaker == "open" })
	if n := connects.Load(); n > 4 {
		t.Fatalf("%d connects before the breaker opened at 3 failures", n)
	}
	_, err := p.Acquire(context.Background())
	mustIs(t, err, mcpool.ErrServerUnavailable)
}

// Before: a 401 on a call (a revoked token, no refresh possible) came back
// as an untyped "Unauthorized" or a SessionLostError that may have run.
func TestUnauthorizedCallIsTyped(t *testing.T) {
	var revoked atomic.Bool
	h := demoserver.Handler(demoserver.New(demoserver.Options{}), false, 0)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if revoked.Load() && r.Method == http.MethodPost {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	p := newPool(t, mcpool.Config{URL: ts.URL, BearerToken: "tok", HealthCheckInterval: -1})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	_, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}})
	mustIs(t, err, mcpool.ErrUnauthorized)
	revoked.Store(false) // let Close delete the session
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

// Before: when a server restart broke a session, a tool with side effects
// still running on it was retired with the 404 of another call's request,
// taken as proof that it never ran, and run again.
func TestPendingCallIsNotRerunAfterRestart(t *testing.T) {
	var runs atomic.Int64
	started := make(chan struct{}, 1)
	finish := make(chan struct{}) // closing a server session waits for its handlers
	newServer := func() (*mcp.Server, http.Handler) {
		s := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
		mcp.AddTool(s, &mcp.Tool{Name: "charge"}, func(ctx context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
			if runs.Add(1) > 1 { // the side effect, run again: the bug
				return &mcp.CallToolResult{}, nil, nil
			}
			if tok := req.Params.GetProgressToken(); tok != nil {
				// Flushes the response stream: the client now knows the
				// server accepted the request.
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: 1})
			}
			select {
			case started <- struct{}{}:
			default:
			}
			select {
			case <-ctx.Done():
			case <-finish:
			}
			return &mcp.CallToolResult{}, nil, nil
		})
		mcp.AddTool(s, &mcp.Tool{Name: "echo", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, func(context.Context, *mcp.CallToolRequest, map[string]any) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{}, nil, nil
		})
		return s, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)})
	}
	first, h := newServer()
	var cur atomic.Value
	cur.Store(h)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	p := newPool(t, mcpool.Config{URL: ts.URL, ProtocolVersion: "2025-11-25", MinSessions: 1, MaxSessions: 2, HealthCheckInterval: -1})
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := p.CallTool(ctx, &mcp.CallToolParams{Name: "charge", Meta: mcp.Meta{"progressToken": "t1"}})
		errc <- err
	}()
	<-started
	// "Restart": a fresh server with no sessions; the old one's are gone.
	second, h2 := newServer()
	cur.Store(h2)
	ts.CloseClientConnections()
	// Another request on the same session now gets 404.
	_, _ = p.CallTool(ctx, &mcp.CallToolParams{Name: "echo"})
	err := <-errc
	if n := runs.Load(); n != 1 {
		t.Fatalf("a tool with side effects ran %d times (call error: %v)", n, err)
	}
	var sl *mcpool.SessionLostError
	if err != nil && (!errors.As(err, &sl) || !sl.MayHaveRun) {
		t.Fatalf("want nil or a SessionLostError that may have run, got %v", err)
	}
	close(finish)
	for _, s := range []*mcp.Server{first, second} {
		for ss := range s.Sessions() {
			ss.Close()
		}
	}
}
